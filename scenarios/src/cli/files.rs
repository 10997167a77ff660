//! The CLI's file I/O: the files the user names, read and written with messages that
//! name them. The only place the CLI touches the file system directly.

use super::CliError;
use std::io;
use std::path::Path;

/// The file's text (the caller decides what a missing file means).
pub fn read_text(path: &Path) -> io::Result<String> {
    #[allow(
        clippy::disallowed_methods,
        reason = "the CLI reads the file the user named"
    )]
    std::fs::read_to_string(path)
}

/// The file's text, or an error naming it and saying what to do: a directory or a
/// binary file (not UTF-8) given where a chaos file belongs gets its own message rather
/// than the OS's.
pub fn read_text_named(path: &Path) -> Result<String, CliError> {
    let name = path.display();
    if path.is_dir() {
        return Err(CliError::new(format!("{name} is a directory, not a file"))
            .hint(format!("name a file in it, for example {name}/sweep.json")));
    }
    read_text(path).map_err(|e| match e.kind() {
        io::ErrorKind::InvalidData => {
            CliError::new(format!("{name} is not a text file (it is not UTF-8)")).hint(
                "give the JSON file chaos wrote (a sweep file, a run record, a shrunk record \
                 or a plan), not a binary or compressed file",
            )
        }
        io::ErrorKind::NotFound => CliError::new(format!("cannot read {name}: {e}"))
            .hint("check the path; relative paths start at the current directory"),
        io::ErrorKind::PermissionDenied => CliError::new(format!("cannot read {name}: {e}"))
            .hint("the file's permissions do not let this user read it"),
        _ => CliError::new(format!("cannot read {name}: {e}"))
            .hint("check that the path names a readable file"),
    })
}

/// Creates `dir` and its missing parents.
pub fn create_dir(dir: &Path) -> Result<(), CliError> {
    #[allow(
        clippy::disallowed_methods,
        reason = "the CLI writes where the user asked"
    )]
    std::fs::create_dir_all(dir).map_err(|e| {
        CliError::new(format!("cannot create {}: {e}", dir.display()))
            .hint("choose a directory this user can write, for example under results/")
    })
}

/// Writes `text` to `path`, creating its directory if needed.
pub fn write_text(path: &Path, text: &str) -> Result<(), CliError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_dir(dir)?;
    }
    #[allow(
        clippy::disallowed_methods,
        reason = "the CLI writes where the user asked"
    )]
    std::fs::write(path, text).map_err(|e| {
        CliError::new(format!("cannot write {}: {e}", path.display()))
            .hint("choose a path this user can write, for example under results/")
    })
}
