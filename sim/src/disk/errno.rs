//! The Linux error numbers the simulated disk returns, so engine code sees the same
//! `raw_os_error()` as on the real disk.

use std::io;

pub(super) const ENOENT: i32 = 2;
pub(super) const EIO: i32 = 5;
pub(super) const EBADF: i32 = 9;
pub(super) const EEXIST: i32 = 17;
pub(super) const ENOTDIR: i32 = 20;
pub(super) const EISDIR: i32 = 21;
pub(super) const EINVAL: i32 = 22;
pub(super) const EMFILE: i32 = 24;
pub(super) const EFBIG: i32 = 27;
pub(super) const ENOSPC: i32 = 28;
pub(super) const ENOTEMPTY: i32 = 39;

pub(super) fn os(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}
