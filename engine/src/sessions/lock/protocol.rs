//! The lock service's line protocol. One command per line, one reply line per command,
//! in order, on a connection that stays open:
//!
//! ```text
//! ACQUIRE <key> <owner> <ttl_ms>\n   →  OK\n | BUSY\n
//! RELEASE <key> <owner>\n            →  OK\n | NOT_OWNER\n
//! HOLD <key> <ms>\n                  →  OK\n
//! CHECK <key>\n                      →  CLEAR\n | HELD <ms>\n
//! anything else                      →  ERR <reason>\n
//! ```
//!
//! `HOLD` and `CHECK` share a hold-off among instances: one says no one should act on
//! `key` for `ms` from now (the model API's 429 window, shared by every instance of an
//! account), the others ask how long is left. Durations, not instants, cross the wire,
//! so the instances' clocks need not agree.
//!
//! Keys and owners are 1 to [`TOKEN_BYTES_MAX`] printable ASCII characters without
//! spaces; `ttl_ms` and `ms` are 1 to [`TTL_MS_MAX`]. Fields are separated by single
//! spaces; a trailing `\r` is tolerated. Parsing never panics: a bad line is an `ERR`
//! reply.

use std::fmt;
use std::time::Duration;

/// The longest key or owner.
pub const TOKEN_BYTES_MAX: usize = 200;
/// The longest lease: one hour.
pub const TTL_MS_MAX: u64 = 3_600_000;
/// The longest line the server reads (a longer one gets `ERR`).
pub const LINE_BYTES_MAX: usize = 512;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockCommand {
    /// Take `key` for `owner` for `ttl` (or extend it, if `owner` already holds it).
    Acquire {
        key: String,
        owner: String,
        ttl: Duration,
    },
    /// Give `key` up, if `owner` holds it.
    Release { key: String, owner: String },
    /// No one should act on `key` for `hold` from now (a longer hold already there stays).
    Hold { key: String, hold: Duration },
    /// How much of `key`'s hold is left.
    Check { key: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockReply {
    /// Granted (ACQUIRE) or released (RELEASE).
    Ok,
    /// Someone else holds the key.
    Busy,
    /// RELEASE by an owner that does not hold the key (any more: its lease expired).
    NotOwner,
    /// CHECK: no hold on the key.
    Clear,
    /// CHECK: the key is held this much longer.
    Held(Duration),
    /// The command could not be understood.
    Err(String),
}

/// Checks a key or owner: 1..=TOKEN_BYTES_MAX printable ASCII characters, no spaces.
pub fn check_token(what: &str, token: &str) -> Result<(), String> {
    if token.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if token.len() > TOKEN_BYTES_MAX {
        return Err(format!(
            "{what} is {} bytes long; the limit is {TOKEN_BYTES_MAX}",
            token.len()
        ));
    }
    if let Some(c) = token.bytes().find(|b| !(0x21..=0x7e).contains(b)) {
        return Err(format!(
            "{what} holds byte 0x{c:02x}: only printable ASCII without spaces"
        ));
    }
    Ok(())
}

/// A duration field: whole milliseconds in 1..=TTL_MS_MAX.
fn millis(what: &str, field: &str) -> Result<Duration, String> {
    let ms: u64 = field
        .parse()
        .map_err(|_| format!("{what} {field:?} is not a number"))?;
    if !(1..=TTL_MS_MAX).contains(&ms) {
        return Err(format!("{what} {ms} outside 1..={TTL_MS_MAX}"));
    }
    Ok(Duration::from_millis(ms))
}

fn text(line: &[u8]) -> Result<&str, String> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    std::str::from_utf8(line).map_err(|_| "line is not UTF-8".to_string())
}

impl LockCommand {
    /// Parses one line (without its newline).
    pub fn parse(line: &[u8]) -> Result<LockCommand, String> {
        let line = text(line)?;
        let fields: Vec<&str> = line.split(' ').collect();
        let token = |what: &str, i: usize| -> Result<String, String> {
            check_token(what, fields[i])?;
            Ok(fields[i].to_string())
        };
        // The command's fields after its name, named for the error when they are not
        // exactly these.
        let takes = |names: &[&str]| -> Result<(), String> {
            if fields.len() == names.len() + 1 {
                return Ok(());
            }
            let plural = if names.len() == 1 { "" } else { "s" };
            Err(format!(
                "{} takes {} field{plural} ({}), got {}",
                fields[0],
                names.len(),
                names.join(" "),
                fields.len() - 1
            ))
        };
        match fields[0] {
            "ACQUIRE" => {
                takes(&["key", "owner", "ttl_ms"])?;
                let ttl = millis("ttl_ms", fields[3])?;
                Ok(LockCommand::Acquire {
                    key: token("key", 1)?,
                    owner: token("owner", 2)?,
                    ttl,
                })
            }
            "RELEASE" => {
                takes(&["key", "owner"])?;
                Ok(LockCommand::Release {
                    key: token("key", 1)?,
                    owner: token("owner", 2)?,
                })
            }
            "HOLD" => {
                takes(&["key", "ms"])?;
                let hold = millis("ms", fields[2])?;
                Ok(LockCommand::Hold {
                    key: token("key", 1)?,
                    hold,
                })
            }
            "CHECK" => {
                takes(&["key"])?;
                Ok(LockCommand::Check {
                    key: token("key", 1)?,
                })
            }
            "" => Err("empty command".to_string()),
            other => {
                let shown: String = other.chars().take(32).collect();
                Err(format!(
                    "unknown command {shown:?}: expected ACQUIRE, RELEASE, HOLD or CHECK"
                ))
            }
        }
    }

    /// Whether sending the command twice does what sending it once does (all but a
    /// RELEASE: the second would find the key released and answer `NOT_OWNER`).
    pub fn may_repeat(&self) -> bool {
        !matches!(self, LockCommand::Release { .. })
    }

    /// The command as a line, newline included. The fields must be valid tokens and
    /// the TTL a whole number of milliseconds in range (the client checks before).
    pub fn encode(&self) -> String {
        match self {
            LockCommand::Acquire { key, owner, ttl } => {
                format!("ACQUIRE {key} {owner} {}\n", ttl.as_millis())
            }
            LockCommand::Release { key, owner } => format!("RELEASE {key} {owner}\n"),
            LockCommand::Hold { key, hold } => format!("HOLD {key} {}\n", hold.as_millis()),
            LockCommand::Check { key } => format!("CHECK {key}\n"),
        }
    }
}

impl LockReply {
    /// Parses one reply line (without its newline).
    pub fn parse(line: &[u8]) -> Result<LockReply, String> {
        match text(line)? {
            "OK" => Ok(LockReply::Ok),
            "BUSY" => Ok(LockReply::Busy),
            "NOT_OWNER" => Ok(LockReply::NotOwner),
            "CLEAR" => Ok(LockReply::Clear),
            other => match other.strip_prefix("ERR ") {
                Some(reason) => Ok(LockReply::Err(reason.to_string())),
                None if other.starts_with("HELD ") => {
                    Ok(LockReply::Held(millis("HELD ms", &other["HELD ".len()..])?))
                }
                None => {
                    let shown: String = other.chars().take(32).collect();
                    Err(format!("unknown reply {shown:?}"))
                }
            },
        }
    }

    /// The reply as a line, newline included (an `ERR` reason loses its line breaks).
    pub fn encode(&self) -> String {
        match self {
            LockReply::Ok => "OK\n".to_string(),
            LockReply::Busy => "BUSY\n".to_string(),
            LockReply::NotOwner => "NOT_OWNER\n".to_string(),
            LockReply::Clear => "CLEAR\n".to_string(),
            LockReply::Held(left) => format!("HELD {}\n", left.as_millis()),
            LockReply::Err(reason) => {
                let reason: String = reason
                    .chars()
                    .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
                    .collect();
                format!("ERR {reason}\n")
            }
        }
    }
}

impl fmt::Display for LockReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.encode().trim_end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever arrives on the service's port: a command that encodes back to the
        /// same line's meaning, or a reason; a reply line likewise.
        #[test]
        fn any_line_parses_or_says_why(
            line in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..48),
                "(ACQUIRE|RELEASE|HOLD|CHECK|HELD|CLEAR|OK|ERR)( [!-~]{0,6}){0,3}( [0-9]{1,8})? ?"
                    .prop_map(String::into_bytes),
            ]
        ) {
            match LockCommand::parse(&line) {
                Ok(command) => {
                    let encoded = command.encode();
                    let again = LockCommand::parse(encoded.trim_end_matches('\n').as_bytes());
                    prop_assert_eq!(again, Ok(command));
                }
                Err(reason) => prop_assert!(!reason.is_empty()),
            }
            // A reason's line breaks become spaces on the way out (one line per reply).
            if let Ok(reply) = LockReply::parse(&line)
                && !matches!(&reply, LockReply::Err(r) if r.contains(['\r', '\n']))
            {
                let encoded = reply.encode();
                let line = encoded.strip_suffix('\n').unwrap_or(&encoded);
                prop_assert_eq!(LockReply::parse(line.as_bytes()), Ok(reply));
            }
        }
    }

    #[test]
    fn commands_round_trip() {
        let cmds = [
            LockCommand::Acquire {
                key: "session-7".into(),
                owner: "engine-3#12".into(),
                ttl: Duration::from_millis(30_000),
            },
            LockCommand::Release {
                key: "k".into(),
                owner: "o".into(),
            },
            LockCommand::Hold {
                key: "model-api-429".into(),
                hold: Duration::from_millis(20_000),
            },
            LockCommand::Check { key: "k".into() },
        ];
        for cmd in cmds {
            let line = cmd.encode();
            let parsed = LockCommand::parse(line.trim_end_matches('\n').as_bytes()).unwrap();
            assert_eq!(parsed, cmd);
        }
        assert!(
            LockCommand::parse(b"RELEASE k o\r").is_ok(),
            "a CR is tolerated"
        );
    }

    #[test]
    fn malformed_commands_say_what_is_wrong() {
        let cases: [(&[u8], &str); 14] = [
            (b"HOLD k", "takes 2 fields"),
            (b"HOLD k 0", "outside 1..="),
            (b"CHECK", "takes 1 field"),
            (b"CHECK k x", "takes 1 field"),
            (b"", "empty command"),
            (b"LOCK k o 1", "unknown command"),
            (b"ACQUIRE k o", "takes 3 fields"),
            (b"ACQUIRE k o 10 x", "takes 3 fields"),
            (b"ACQUIRE k o ten", "not a number"),
            (b"ACQUIRE k o 0", "outside 1..="),
            (b"ACQUIRE  o 10", "key is empty"),
            (b"RELEASE k", "takes 2 fields"),
            (b"RELEASE k o\x01", "byte 0x01"),
            (b"ACQUIRE \xff o 1", "not UTF-8"),
        ];
        for (line, expected) in cases {
            let err = LockCommand::parse(line).unwrap_err();
            assert!(
                err.contains(expected),
                "{line:?}: {err:?} lacks {expected:?}"
            );
        }
        assert_eq!(
            LockCommand::parse(b"ACQUIRE k o").unwrap_err(),
            "ACQUIRE takes 3 fields (key owner ttl_ms), got 2"
        );
        let long = format!("RELEASE {} o", "k".repeat(TOKEN_BYTES_MAX + 1));
        assert!(
            LockCommand::parse(long.as_bytes())
                .unwrap_err()
                .contains("limit")
        );
    }

    #[test]
    fn replies_round_trip_and_errors_stay_on_one_line() {
        for reply in [
            LockReply::Ok,
            LockReply::Busy,
            LockReply::NotOwner,
            LockReply::Clear,
            LockReply::Held(Duration::from_millis(1234)),
            LockReply::Err("bad ttl".into()),
        ] {
            let line = reply.encode();
            assert_eq!(LockReply::parse(line.trim_end().as_bytes()).unwrap(), reply);
        }
        assert_eq!(LockReply::Err("a\nb".into()).encode(), "ERR a b\n");
        assert!(LockReply::parse(b"MAYBE").is_err());
        assert!(LockReply::parse(b"HELD soon").is_err());
        assert!(LockReply::parse(b"HELD 0").is_err());
    }
}
