//! The disk contract: behaviour the real disk (`engine::env::real`) and `SimDisk` share,
//! checked through `Env::disk()` only. Crash behaviour is not here (the real disk cannot
//! crash on demand); it is `SimDisk`'s own unit tests' job.
//!
//! Runs in a fresh data directory: everything lives under [`BASE`], which must not exist.

use engine::env::{Disk, DiskFile, Env, OpenMode};
use std::fmt::Debug;
use std::io;

/// The directory the contract works in, relative to the environment's data directory.
pub const BASE: &str = "disk-contract";

/// Checks the shared disk behaviour; `Err` names the first step that did not match.
pub async fn disk_contract(env: &Env) -> Result<(), String> {
    let disk = env.disk();
    env.disk_pace().await;
    expect_os(
        "metadata of the base before creating it",
        disk.metadata(BASE),
        2,
    )
    .map_err(|e| format!("{e} (the contract needs a fresh data directory)"))?;
    paths(disk)?;
    env.disk_pace().await;
    directories(disk)?;
    env.disk_pace().await;
    file_io(disk)?;
    env.disk_pace().await;
    open_modes(disk)?;
    env.disk_pace().await;
    namespace(disk)?;
    Ok(())
}

fn path(name: &str) -> String {
    format!("{BASE}/{name}")
}

/// Invalid paths are rejected with `InvalidInput` before touching anything.
fn paths(disk: &dyn Disk) -> Result<(), String> {
    for bad in ["../x", "/abs", "a/../b", "a//b"] {
        expect_kind(
            &format!("open {bad:?}"),
            disk.open(bad, OpenMode::Create),
            io::ErrorKind::InvalidInput,
        )?;
        expect_kind(
            &format!("create_dir_all {bad:?}"),
            disk.create_dir_all(bad),
            io::ErrorKind::InvalidInput,
        )?;
        expect_kind(
            &format!("remove {bad:?}"),
            disk.remove(bad),
            io::ErrorKind::InvalidInput,
        )?;
        expect_kind(
            &format!("rename {bad:?}"),
            disk.rename(bad, "y"),
            io::ErrorKind::InvalidInput,
        )?;
    }
    Ok(())
}

fn directories(disk: &dyn Disk) -> Result<(), String> {
    expect_os(
        "open a file whose parent dir is missing",
        disk.open(&path("f"), OpenMode::Create),
        2,
    )?;
    ok(
        "create_dir_all base/sub/deeper",
        disk.create_dir_all(&path("sub/deeper")),
    )?;
    ok(
        "create_dir_all again (idempotent)",
        disk.create_dir_all(&path("sub/deeper")),
    )?;
    let meta = ok("metadata of a dir", disk.metadata(&path("sub")))?;
    check_eq(
        "metadata of a dir: (is_dir, len)",
        (meta.is_dir, meta.len),
        (true, 0),
    )?;
    check_eq(
        "list base",
        ok("list base", disk.list(BASE))?,
        vec!["sub".to_string()],
    )?;
    expect_os("list a missing dir", disk.list(&path("nope")), 2)?;
    expect_os(
        "open a dir for reading",
        disk.open(&path("sub"), OpenMode::Read),
        21,
    )?;
    expect_os("remove a dir", disk.remove(&path("sub")), 21)?;
    ok("sync_dir base", disk.sync_dir(BASE))?;
    ok("sync_dir of the root \"\"", disk.sync_dir(""))?;
    Ok(())
}

fn file_io(disk: &dyn Disk) -> Result<(), String> {
    let f = ok(
        "open CreateNew base/io",
        disk.open(&path("io"), OpenMode::CreateNew),
    )?;
    check_eq("len of a new file", ok("len", f.len())?, 0)?;
    ok("write_at 0", f.write_at(b"hello", 0))?;
    check_eq(
        "append returns the old end",
        ok("append", f.append(b" world"))?,
        5,
    )?;
    ok("overwrite inside", f.write_at(b"J", 0))?;
    check_eq("len after writes", ok("len", f.len())?, 11)?;
    check_eq(
        "content after writes",
        read_all(&*f)?,
        b"Jello world".to_vec(),
    )?;
    let mut buf = [0u8; 4];
    check_eq(
        "read_at the end",
        ok("read_at end", f.read_at(&mut buf, 11))?,
        0,
    )?;
    check_eq(
        "read_at past the end",
        ok("read_at past", f.read_at(&mut buf, 99))?,
        0,
    )?;
    ok("write past the end", f.write_at(b"!", 13))?;
    check_eq(
        "a gap reads as zeros",
        read_all(&*f)?,
        b"Jello world\0\0!".to_vec(),
    )?;
    ok("set_len shrink", f.set_len(4))?;
    check_eq("content after shrink", read_all(&*f)?, b"Jell".to_vec())?;
    ok("set_len grow", f.set_len(6))?;
    check_eq("content after grow", read_all(&*f)?, b"Jell\0\0".to_vec())?;
    ok("sync_data", f.sync_data())?;
    let meta = ok("metadata of a file", disk.metadata(&path("io")))?;
    check_eq(
        "metadata of a file: (is_dir, len)",
        (meta.is_dir, meta.len),
        (false, 6),
    )?;
    let g = ok(
        "open ReadWrite",
        disk.open(&path("io"), OpenMode::ReadWrite),
    )?;
    check_eq(
        "a second handle sees the data",
        read_all(&*g)?,
        b"Jell\0\0".to_vec(),
    )?;
    Ok(())
}

fn open_modes(disk: &dyn Disk) -> Result<(), String> {
    expect_os(
        "open Read of a missing file",
        disk.open(&path("missing"), OpenMode::Read),
        2,
    )?;
    expect_kind(
        "open ReadWrite of a missing file",
        disk.open(&path("missing"), OpenMode::ReadWrite),
        io::ErrorKind::NotFound,
    )?;
    write_file(disk, "modes", b"data")?;
    expect_os(
        "CreateNew of an existing file",
        disk.open(&path("modes"), OpenMode::CreateNew),
        17,
    )?;
    expect_kind(
        "CreateNew of an existing file (kind)",
        disk.open(&path("modes"), OpenMode::CreateNew),
        io::ErrorKind::AlreadyExists,
    )?;
    drop(ok(
        "open Create of an existing file",
        disk.open(&path("modes"), OpenMode::Create),
    )?);
    check_eq(
        "Create keeps content",
        read_path(disk, "modes")?,
        b"data".to_vec(),
    )?;
    let ro = ok("open Read", disk.open(&path("modes"), OpenMode::Read))?;
    expect_os("write through a read-only handle", ro.write_at(b"x", 0), 9)?;
    drop(ro);
    drop(ok(
        "open Truncate",
        disk.open(&path("modes"), OpenMode::Truncate),
    )?);
    check_eq("Truncate empties", read_path(disk, "modes")?, Vec::new())?;
    expect_os(
        "open through a file as if it were a dir",
        disk.open(&path("modes/x"), OpenMode::Create),
        20,
    )?;
    Ok(())
}

fn namespace(disk: &dyn Disk) -> Result<(), String> {
    ok("create_dir_all base/ns", disk.create_dir_all(&path("ns")))?;
    for (name, data) in [
        ("ns/b", "bee"),
        ("ns/a", "a"),
        ("ns/Z", "zed"),
        ("ns/c", "c"),
    ] {
        write_file(disk, name, data.as_bytes())?;
    }
    let names = ok("list ns", disk.list(&path("ns")))?;
    check_eq(
        "list is sorted by bytes",
        names,
        strings(&["Z", "a", "b", "c"]),
    )?;
    ok("rename b over a", disk.rename(&path("ns/b"), &path("ns/a")))?;
    check_eq(
        "renamed-over content",
        read_path(disk, "ns/a")?,
        b"bee".to_vec(),
    )?;
    expect_os(
        "metadata of the rename source",
        disk.metadata(&path("ns/b")),
        2,
    )?;
    ok(
        "rename into another dir",
        disk.rename(&path("ns/Z"), &path("sub/Z")),
    )?;
    check_eq("moved content", read_path(disk, "sub/Z")?, b"zed".to_vec())?;
    expect_os(
        "rename of a missing file",
        disk.rename(&path("ns/b"), &path("ns/q")),
        2,
    )?;
    ok("remove c", disk.remove(&path("ns/c")))?;
    expect_os("remove of a missing file", disk.remove(&path("ns/c")), 2)?;
    check_eq(
        "list after rename and remove",
        ok("list ns", disk.list(&path("ns")))?,
        strings(&["a"]),
    )?;
    ok("sync_dir ns", disk.sync_dir(&path("ns")))?;
    Ok(())
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn write_file(disk: &dyn Disk, name: &str, data: &[u8]) -> Result<(), String> {
    let f = ok(
        &format!("open Truncate {name}"),
        disk.open(&path(name), OpenMode::Truncate),
    )?;
    ok(&format!("write {name}"), f.write_at(data, 0))?;
    ok(&format!("sync_data {name}"), f.sync_data())
}

fn read_path(disk: &dyn Disk, name: &str) -> Result<Vec<u8>, String> {
    read_all(&*ok(
        &format!("open Read {name}"),
        disk.open(&path(name), OpenMode::Read),
    )?)
}

fn read_all(f: &dyn DiskFile) -> Result<Vec<u8>, String> {
    let len = ok("len before reading", f.len())?;
    let mut buf = vec![0u8; len as usize];
    let n = ok("read_at 0", f.read_at(&mut buf, 0))?;
    check_eq("read_at 0 returns the whole file", n as u64, len)?;
    Ok(buf)
}

fn describe(e: &io::Error) -> String {
    format!("{e} (kind {:?}, os code {:?})", e.kind(), e.raw_os_error())
}

fn ok<T>(step: &str, result: io::Result<T>) -> Result<T, String> {
    result.map_err(|e| format!("{step}: unexpected error {}", describe(&e)))
}

fn expect_os<T>(step: &str, result: io::Result<T>, code: i32) -> Result<(), String> {
    match result {
        Ok(_) => Err(format!("{step}: succeeded, expected os error {code}")),
        Err(e) if e.raw_os_error() == Some(code) => Ok(()),
        Err(e) => Err(format!(
            "{step}: expected os error {code}, got {}",
            describe(&e)
        )),
    }
}

fn expect_kind<T>(step: &str, result: io::Result<T>, kind: io::ErrorKind) -> Result<(), String> {
    match result {
        Ok(_) => Err(format!(
            "{step}: succeeded, expected an error of kind {kind:?}"
        )),
        Err(e) if e.kind() == kind => Ok(()),
        Err(e) => Err(format!(
            "{step}: expected kind {kind:?}, got {}",
            describe(&e)
        )),
    }
}

fn check_eq<T: Debug + PartialEq>(step: &str, got: T, want: T) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{step}: got {got:?}, expected {want:?}"))
    }
}
