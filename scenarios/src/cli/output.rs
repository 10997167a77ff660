//! Where a command's JSON goes, the same way in every command: `--json` prints it to
//! stdout (and the words for people go to stderr, so the JSON can be piped), `--output
//! FILE` (`-o FILE`) writes it to a file. `sweep --json FILE` and `gate --json FILE`, the
//! older spelling of `--output FILE`, still work with a warning.

use super::CliError;
use std::io::Write;
use std::path::PathBuf;

/// `writeln!` to a command's human output, ignoring a closed pipe (the reader left:
/// there is nobody to tell).
macro_rules! say {
    ($out:expr) => {{
        let _ = writeln!($out);
    }};
    ($out:expr, $($arg:tt)*) => {{
        let _ = writeln!($out, $($arg)*);
    }};
}
pub(crate) use say;

/// The value `--json` takes when given alone (clap's `default_missing_value`); `--json -`
/// means the same, as `-` does for many tools.
pub const JSON_TO_STDOUT: &str = "-";

/// Where the JSON goes.
#[derive(Debug, Default)]
pub struct JsonTargets {
    pub stdout: bool,
    pub file: Option<PathBuf>,
}

impl JsonTargets {
    /// From `--json [FILE]` and `--output FILE`; warns about `--json FILE`.
    pub fn new(json: Option<PathBuf>, output: Option<PathBuf>) -> Result<JsonTargets, CliError> {
        let mut targets = JsonTargets {
            stdout: false,
            file: output,
        };
        match json {
            None => {}
            Some(path) if path.as_os_str() == JSON_TO_STDOUT => targets.stdout = true,
            Some(path) => {
                if let Some(other) = &targets.file {
                    return Err(CliError::new(format!(
                        "--json {} and --output {} both name a file",
                        path.display(),
                        other.display()
                    ))
                    .hint("give the file once, with --output FILE"));
                }
                eprintln!(
                    "warning: `--json FILE` is deprecated: use `--output FILE` (or -o); \
                     `--json` alone prints the JSON to stdout"
                );
                targets.file = Some(path);
            }
        }
        Ok(targets)
    }

    /// Where the words for people go: stderr when stdout carries the JSON.
    pub fn human(&self) -> Box<dyn Write> {
        if self.stdout {
            Box::new(std::io::stderr())
        } else {
            Box::new(std::io::stdout())
        }
    }

    /// Writes `json` (one document, ending in a newline) to every target.
    pub fn write(&self, json: &str) -> Result<(), CliError> {
        if let Some(path) = &self.file {
            super::files::write_text(path, json)?;
        }
        if self.stdout {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(json.as_bytes());
            let _ = out.flush();
        }
        Ok(())
    }
}
