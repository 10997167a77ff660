//! The lock service's line protocol. One command per line, one reply line per command,
//! in order, on a connection that stays open:
//!
//! ```text
//! ACQUIRE <key> <owner> <ttl_ms>\n   →  OK\n | BUSY\n
//! RELEASE <key> <owner>\n            →  OK\n | NOT_OWNER\n
//! anything else                      →  ERR <reason>\n
//! ```
//!
//! Keys and owners are 1 to [`TOKEN_BYTES_MAX`] printable ASCII characters without
//! spaces; `ttl_ms` is 1 to [`TTL_MS_MAX`]. Fields are separated by single spaces; a
//! trailing `\r` is tolerated. Parsing never panics: a bad line is an `ERR` reply.

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
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockReply {
    /// Granted (ACQUIRE) or released (RELEASE).
    Ok,
    /// Someone else holds the key.
    Busy,
    /// RELEASE by an owner that does not hold the key (any more: its lease expired).
    NotOwner,
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
        match fields[0] {
            "ACQUIRE" => {
                if fields.len() != 4 {
                    return Err(format!(
                        "ACQUIRE takes 3 fields (key owner ttl_ms), got {}",
                        fields.len() - 1
                    ));
                }
                let ttl_ms: u64 = fields[3]
                    .parse()
                    .map_err(|_| format!("ttl_ms {:?} is not a number", fields[3]))?;
                if !(1..=TTL_MS_MAX).contains(&ttl_ms) {
                    return Err(format!("ttl_ms {ttl_ms} outside 1..={TTL_MS_MAX}"));
                }
                Ok(LockCommand::Acquire {
                    key: token("key", 1)?,
                    owner: token("owner", 2)?,
                    ttl: Duration::from_millis(ttl_ms),
                })
            }
            "RELEASE" => {
                if fields.len() != 3 {
                    return Err(format!(
                        "RELEASE takes 2 fields (key owner), got {}",
                        fields.len() - 1
                    ));
                }
                Ok(LockCommand::Release {
                    key: token("key", 1)?,
                    owner: token("owner", 2)?,
                })
            }
            "" => Err("empty command".to_string()),
            other => {
                let shown: String = other.chars().take(32).collect();
                Err(format!(
                    "unknown command {shown:?}: expected ACQUIRE or RELEASE"
                ))
            }
        }
    }

    /// The command as a line, newline included. The fields must be valid tokens and
    /// the TTL a whole number of milliseconds in range (the client checks before).
    pub fn encode(&self) -> String {
        match self {
            LockCommand::Acquire { key, owner, ttl } => {
                format!("ACQUIRE {key} {owner} {}\n", ttl.as_millis())
            }
            LockCommand::Release { key, owner } => format!("RELEASE {key} {owner}\n"),
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
            other => match other.strip_prefix("ERR ") {
                Some(reason) => Ok(LockReply::Err(reason.to_string())),
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
        let cases: [(&[u8], &str); 10] = [
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
            LockReply::Err("bad ttl".into()),
        ] {
            let line = reply.encode();
            assert_eq!(LockReply::parse(line.trim_end().as_bytes()).unwrap(), reply);
        }
        assert_eq!(LockReply::Err("a\nb".into()).encode(), "ERR a b\n");
        assert!(LockReply::parse(b"MAYBE").is_err());
    }
}
