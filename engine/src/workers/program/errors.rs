//! How I/O failures are reported to the parent: by their OS error number, so a
//! simulated ENOSPC and a real one read the same.

use super::protocol::ErrorCode;
use std::io;

const EPERM: i32 = 1;
const EACCES: i32 = 13;
const ENFILE: i32 = 23;
const EMFILE: i32 = 24;
const ENOSPC: i32 = 28;

pub(super) fn code_for(error: &io::Error) -> ErrorCode {
    match error.raw_os_error() {
        Some(ENOSPC) => ErrorCode::NoSpace,
        Some(EMFILE | ENFILE) => ErrorCode::TooManyFiles,
        Some(EACCES | EPERM) => ErrorCode::AccessDenied,
        _ if error.kind() == io::ErrorKind::PermissionDenied => ErrorCode::AccessDenied,
        _ => ErrorCode::Io,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_map_to_their_codes() {
        let code = |errno| code_for(&io::Error::from_raw_os_error(errno));
        assert_eq!(code(28), ErrorCode::NoSpace);
        assert_eq!(code(24), ErrorCode::TooManyFiles);
        assert_eq!(code(23), ErrorCode::TooManyFiles);
        assert_eq!(code(13), ErrorCode::AccessDenied);
        assert_eq!(code(5), ErrorCode::Io);
        assert_eq!(code_for(&io::Error::other("anything else")), ErrorCode::Io);
    }
}
