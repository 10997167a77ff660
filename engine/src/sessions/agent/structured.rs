//! Structured output: a query's final answer must be a JSON document matching its
//! output schema (checked with the `jsonschema` crate, built once per query). A schema
//! that does not compile is the client's error, told before any model call.

use serde_json::Value;

pub(crate) struct OutputSchema {
    validator: jsonschema::Validator,
}

/// At most this many of an answer's schema errors are told (to the model and the user).
const ERRORS_TOLD_MAX: usize = 3;

impl OutputSchema {
    pub(crate) fn new(schema: &Value) -> Result<Self, String> {
        jsonschema::validator_for(schema)
            .map(|validator| OutputSchema { validator })
            .map_err(|e| format!("output_schema is not a valid JSON schema: {e}"))
    }

    /// Whether `text` is a JSON document the schema accepts; why not, if it is not (the
    /// errors sorted, so the message is the same whatever order the validator finds
    /// them in).
    pub(crate) fn check(&self, text: &str) -> Result<(), String> {
        let document: Value = serde_json::from_str(text.trim())
            .map_err(|e| format!("the answer is not a JSON document ({e})"))?;
        let mut errors: Vec<String> = self
            .validator
            .iter_errors(&document)
            .map(|e| {
                let at = e.instance_path().to_string();
                let at = if at.is_empty() { "/".to_string() } else { at };
                format!("at {at}: {e}")
            })
            .collect();
        if errors.is_empty() {
            return Ok(());
        }
        errors.sort();
        let more = errors.len().saturating_sub(ERRORS_TOLD_MAX);
        errors.truncate(ERRORS_TOLD_MAX);
        let mut why = format!(
            "the answer does not match the output schema: {}",
            errors.join("; ")
        );
        if more > 0 {
            why.push_str(&format!(" (and {more} more)"));
        }
        Err(why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> OutputSchema {
        OutputSchema::new(&json!({
            "type": "object",
            "required": ["answer"],
            "properties": {"answer": {"type": "string"}}
        }))
        .expect("a valid schema")
    }

    #[test]
    fn accepts_matching_documents_and_says_why_others_fail() {
        let s = schema();
        assert_eq!(s.check(r#"{"answer": "yes"}"#), Ok(()));
        assert!(
            s.check("Sure! {\"answer\": 1}")
                .unwrap_err()
                .contains("not a JSON document")
        );
        let why = s.check(r#"{"answer": 1}"#).unwrap_err();
        assert!(why.contains("/answer"), "{why}");
        assert!(s.check("{}").unwrap_err().contains("answer"));
    }

    #[test]
    fn a_schema_that_does_not_compile_is_refused() {
        let e = OutputSchema::new(&json!({"type": 12}))
            .err()
            .expect("refused");
        assert!(e.contains("not a valid JSON schema"), "{e}");
    }
}
