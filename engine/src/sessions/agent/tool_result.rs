//! A tool's output, part by part, as the result the model gets back (sans-IO). Text
//! parts are joined with spaces, as a worker's answer is. Binary parts (a `binary:N`
//! word; base64 on the worker's line protocol) are decoded and sent back base64-encoded
//! in a document block, within the result bound (1 MB, EC-050's); a binary past the
//! bound is written to the workspace instead, part by part as it comes (never held
//! whole), and the model gets its path. Text past the bound is cut, and says so.

use crate::upstream::wire::{Base64Source, Block};

/// What to do with one part.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PartStep {
    /// Kept for the result.
    Kept,
    /// The binary outgrew the bound: append these bytes to the workspace file.
    Spill(Vec<u8>),
}

#[derive(Debug)]
pub(crate) struct ToolOutput {
    bytes_max: usize,
    text: String,
    text_cut: usize,
    binary: Vec<u8>,
    binary_bytes: u64,
    spilling: bool,
    malformed: Option<String>,
}

impl ToolOutput {
    pub(crate) fn new(bytes_max: usize) -> Self {
        assert!(bytes_max > 0, "bytes_max must be positive");
        ToolOutput {
            bytes_max,
            text: String::new(),
            text_cut: 0,
            binary: Vec::new(),
            binary_bytes: 0,
            spilling: false,
            malformed: None,
        }
    }

    pub(crate) fn binary_bytes(&self) -> u64 {
        self.binary_bytes
    }

    pub(crate) fn handle_part(&mut self, data: &str, binary: bool) -> PartStep {
        if !binary {
            let sep = usize::from(!self.text.is_empty());
            if self.text_cut > 0 || self.text.len() + sep + data.len() > self.bytes_max {
                self.text_cut += sep + data.len();
            } else {
                if sep == 1 {
                    self.text.push(' ');
                }
                self.text.push_str(data);
            }
            return PartStep::Kept;
        }
        let bytes = match data_encoding::BASE64.decode(data.as_bytes()) {
            Ok(bytes) => bytes,
            Err(e) => {
                // The worker broke its protocol: the result says so, nothing is guessed.
                self.malformed
                    .get_or_insert_with(|| format!("a binary part is not base64: {e}"));
                return PartStep::Kept;
            }
        };
        self.binary_bytes += bytes.len() as u64;
        if self.spilling {
            return PartStep::Spill(bytes);
        }
        let encoded = data_encoding::BASE64.encode_len(self.binary.len() + bytes.len());
        if encoded + self.text.len() <= self.bytes_max {
            self.binary.extend_from_slice(&bytes);
            return PartStep::Kept;
        }
        self.spilling = true;
        let mut spilled = std::mem::take(&mut self.binary);
        spilled.extend_from_slice(&bytes);
        PartStep::Spill(spilled)
    }

    /// The result's content: `written` is where a spilled binary went (or why it could
    /// not be written). `is_error` when the output is unusable.
    pub(crate) fn finish(self, written: Option<Result<String, String>>) -> (Vec<Block>, bool) {
        let mut blocks = Vec::new();
        let mut is_error = false;
        if let Some(why) = self.malformed {
            return (vec![Block::Text { text: why }], true);
        }
        if !self.text.is_empty() || (self.binary.is_empty() && !self.spilling) {
            let mut text = self.text;
            if self.text_cut > 0 {
                text.push_str(&format!(
                    " [cut: {} more bytes past the {}-byte result bound]",
                    self.text_cut, self.bytes_max
                ));
            }
            blocks.push(Block::Text { text });
        }
        if self.spilling {
            let text = match written {
                Some(Ok(path)) => format!(
                    "the binary result of {} bytes is larger than the {}-byte bound once \
                     base64-encoded: it was written to the workspace at {path}",
                    self.binary_bytes, self.bytes_max
                ),
                Some(Err(why)) => {
                    is_error = true;
                    format!(
                        "the binary result of {} bytes is larger than the bound and could not \
                         be written to the workspace: {why}",
                        self.binary_bytes
                    )
                }
                None => {
                    is_error = true;
                    format!(
                        "the binary result of {} bytes is larger than the bound and was not \
                         written to the workspace",
                        self.binary_bytes
                    )
                }
            };
            blocks.push(Block::Text { text });
        } else if !self.binary.is_empty() {
            blocks.push(Block::Document {
                source: Base64Source {
                    kind: "base64".to_string(),
                    media_type: "application/octet-stream".to_string(),
                    data: data_encoding::BASE64.encode(&self.binary),
                },
            });
        }
        (blocks, is_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        data_encoding::BASE64.encode(bytes)
    }

    #[test]
    fn text_is_joined_and_cut_at_the_bound() {
        let mut out = ToolOutput::new(10);
        for part in ["abc", "def", "ghijkl"] {
            assert_eq!(out.handle_part(part, false), PartStep::Kept);
        }
        let (blocks, is_error) = out.finish(None);
        assert!(!is_error);
        let [Block::Text { text }] = &blocks[..] else {
            panic!("{blocks:?}")
        };
        assert!(text.starts_with("abc def [cut: 7 more bytes"), "{text}");
    }

    #[test]
    fn a_small_binary_goes_back_base64_encoded() {
        let mut out = ToolOutput::new(100);
        assert_eq!(out.handle_part(&b64(&[0, 255, 128]), true), PartStep::Kept);
        assert_eq!(out.handle_part(&b64(&[7]), true), PartStep::Kept);
        let (blocks, is_error) = out.finish(None);
        assert!(!is_error);
        let [Block::Document { source }] = &blocks[..] else {
            panic!("{blocks:?}")
        };
        assert_eq!(source.data, b64(&[0, 255, 128, 7]));
    }

    #[test]
    fn a_binary_past_the_bound_spills_every_byte_once_and_in_order() {
        let mut out = ToolOutput::new(8); // 6 bytes encode to 8
        let mut spilled = Vec::new();
        for part in [&[1u8, 2, 3][..], &[4, 5, 6], &[7, 8], &[9]] {
            if let PartStep::Spill(bytes) = out.handle_part(&b64(part), true) {
                spilled.extend(bytes);
            }
        }
        assert_eq!(spilled, (1..=9).collect::<Vec<u8>>());
        assert_eq!(out.binary_bytes(), 9);
        let (blocks, is_error) = out.finish(Some(Ok("ws/q1.bin".to_string())));
        assert!(!is_error);
        let [Block::Text { text }] = &blocks[..] else {
            panic!("{blocks:?}")
        };
        assert!(
            text.contains("9 bytes") && text.contains("ws/q1.bin"),
            "{text}"
        );
    }

    #[test]
    fn a_malformed_part_or_a_failed_write_is_an_error_result() {
        let mut out = ToolOutput::new(8);
        out.handle_part("not base64!", true);
        assert!(out.finish(None).1);
        let mut out = ToolOutput::new(4);
        out.handle_part(&b64(&[1, 2, 3, 4]), true);
        let (blocks, is_error) = out.finish(Some(Err("disk full".to_string())));
        assert!(is_error && format!("{blocks:?}").contains("disk full"));
    }
}
