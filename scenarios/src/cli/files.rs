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

/// The file's text, or an error naming it.
pub fn read_text_named(path: &Path) -> Result<String, CliError> {
    read_text(path).map_err(|e| CliError::new(format!("cannot read {}: {e}", path.display())))
}

/// Creates `dir` and its missing parents.
pub fn create_dir(dir: &Path) -> Result<(), CliError> {
    #[allow(
        clippy::disallowed_methods,
        reason = "the CLI writes where the user asked"
    )]
    std::fs::create_dir_all(dir)
        .map_err(|e| CliError::new(format!("cannot create {}: {e}", dir.display())))
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
    std::fs::write(path, text)
        .map_err(|e| CliError::new(format!("cannot write {}: {e}", path.display())))
}
