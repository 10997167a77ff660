//! One query's agent loop (sans-IO): each model call is a turn; an answer asking for
//! tools has them run and their results sent back in the next turn; a final answer that
//! must be structured and is not is asked for again, a bounded number of times. The
//! loop says what comes next; its shell (`agent::mod`) makes the calls and runs the
//! tools.

use super::structured::OutputSchema;
use crate::protocol::{ErrorCode, Usd};
use crate::upstream::ToolUse;

/// What the loop does after an answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Run these tools, then call the model again with their results.
    Tools(Vec<ToolUse>),
    /// Call again: the answer did not match the output schema (`prompt` says why).
    Retry { prompt: String },
    /// The query's answer, for the worker to carry out.
    Finish(Finish),
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Finish {
    pub text: String,
    /// Why the answer is not the one asked for, if it is not.
    pub incomplete: Option<Incomplete>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Incomplete {
    MaxTurns { turns: u32 },
    Budget { spent: Usd, cap: Usd },
    Structured { retries: u32, why: String },
}

impl Incomplete {
    /// The result's subtype (the names the agent SDKs use).
    pub(crate) fn subtype(&self) -> &'static str {
        match self {
            Incomplete::MaxTurns { .. } => "error_max_turns",
            Incomplete::Budget { .. } => "error_max_budget_usd",
            Incomplete::Structured { .. } => "error_max_structured_output_retries",
        }
    }

    /// The error the user is told before the incomplete result, and what to do.
    pub(crate) fn error(&self) -> (ErrorCode, String) {
        match self {
            Incomplete::MaxTurns { turns } => (
                ErrorCode::MaxTurns,
                format!(
                    "the query used its {turns} turns (max_turns) before the model finished: \
                     its result is incomplete; raise max_turns or continue in a new query"
                ),
            ),
            Incomplete::Budget { spent, cap } => (
                ErrorCode::BudgetExceeded,
                format!(
                    "budget_exceeded: the session has spent {spent} of its {cap} cap \
                     (max_budget_usd): the query stopped and its result is incomplete; \
                     raise the cap to go on"
                ),
            ),
            Incomplete::Structured { retries, why } => (
                ErrorCode::StructuredOutputInvalid,
                format!(
                    "the answer still did not match the output schema after {retries} \
                     retries ({why}): the unstructured answer follows"
                ),
            ),
        }
    }
}

pub(crate) struct TurnLoop {
    max_turns: u32,
    turns: u32,
    schema: Option<OutputSchema>,
    retries_max: u32,
    retries: u32,
    /// The latest answer's text: what an incomplete result carries.
    last_text: String,
}

impl TurnLoop {
    pub(crate) fn new(max_turns: u32, schema: Option<OutputSchema>, retries_max: u32) -> Self {
        assert!(max_turns > 0, "max_turns must be positive");
        TurnLoop {
            max_turns,
            turns: 0,
            schema,
            retries_max,
            retries: 0,
            last_text: String::new(),
        }
    }

    pub(crate) fn turns(&self) -> u32 {
        self.turns
    }

    /// Before a call: the query stops here when the session's cap is spent
    /// (`exhausted`: spent and cap).
    pub(crate) fn poll_call(&mut self, exhausted: Option<(Usd, Usd)>) -> Option<Finish> {
        let (spent, cap) = exhausted?;
        Some(Finish {
            text: std::mem::take(&mut self.last_text),
            incomplete: Some(Incomplete::Budget { spent, cap }),
        })
    }

    /// A call goes out (one more turn).
    pub(crate) fn handle_call(&mut self) {
        assert!(self.turns < self.max_turns, "a call past max_turns");
        self.turns += 1;
    }

    /// The model answered `text`, asking for `tools`.
    pub(crate) fn handle_answer(&mut self, text: String, tools: Vec<ToolUse>) -> Next {
        let out_of_turns = self.turns >= self.max_turns;
        let limit = Incomplete::MaxTurns { turns: self.turns };
        if !tools.is_empty() {
            if out_of_turns {
                return Next::Finish(Finish {
                    text,
                    incomplete: Some(limit),
                });
            }
            self.last_text = text;
            return Next::Tools(tools);
        }
        let Some(schema) = &self.schema else {
            return Next::Finish(Finish {
                text,
                incomplete: None,
            });
        };
        let why = match schema.check(&text) {
            Ok(()) => {
                return Next::Finish(Finish {
                    text,
                    incomplete: None,
                });
            }
            Err(why) => why,
        };
        if self.retries >= self.retries_max {
            let incomplete = Incomplete::Structured {
                retries: self.retries,
                why,
            };
            return Next::Finish(Finish {
                text,
                incomplete: Some(incomplete),
            });
        }
        if out_of_turns {
            return Next::Finish(Finish {
                text,
                incomplete: Some(limit),
            });
        }
        self.retries += 1;
        self.last_text = text;
        Next::Retry {
            prompt: format!("{why}. Answer again with only a JSON document matching the schema."),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool() -> Vec<ToolUse> {
        vec![ToolUse {
            id: "t".to_string(),
            name: "run".to_string(),
            input: json!({"input": "x"}),
        }]
    }

    #[test]
    fn the_turn_limit_is_met_exactly_and_stops_a_tool_round() {
        let mut l = TurnLoop::new(2, None, 0);
        l.handle_call();
        assert_eq!(l.handle_answer(String::new(), tool()), Next::Tools(tool()));
        l.handle_call();
        let Next::Finish(f) = l.handle_answer("partial".to_string(), tool()) else {
            panic!("finishes at the limit")
        };
        assert_eq!(f.incomplete, Some(Incomplete::MaxTurns { turns: 2 }));
        // A final answer on the last turn is a whole answer.
        let mut l = TurnLoop::new(1, None, 0);
        l.handle_call();
        let Next::Finish(f) = l.handle_answer("done".to_string(), Vec::new()) else {
            panic!()
        };
        assert_eq!((f.text.as_str(), f.incomplete), ("done", None));
    }

    #[test]
    fn structured_answers_are_retried_then_given_up_with_the_unstructured_text() {
        let schema = OutputSchema::new(&json!({"type": "object"})).unwrap();
        let mut l = TurnLoop::new(10, Some(schema), 1);
        l.handle_call();
        assert!(matches!(
            l.handle_answer("prose".into(), vec![]),
            Next::Retry { .. }
        ));
        l.handle_call();
        let Next::Finish(f) = l.handle_answer("more prose".into(), vec![]) else {
            panic!()
        };
        assert_eq!(f.text, "more prose");
        assert_eq!(
            f.incomplete.map(|i| i.subtype()),
            Some("error_max_structured_output_retries")
        );
    }

    #[test]
    fn a_spent_budget_stops_before_the_call_with_the_last_text() {
        let mut l = TurnLoop::new(10, None, 0);
        assert_eq!(l.poll_call(None), None);
        l.handle_call();
        assert!(matches!(
            l.handle_answer("so far".into(), tool()),
            Next::Tools(_)
        ));
        let (spent, cap) = (Usd::from_micros(11), Usd::from_micros(10));
        let f = l.poll_call(Some((spent, cap))).expect("stops");
        assert_eq!(f.text, "so far");
        assert_eq!(f.incomplete, Some(Incomplete::Budget { spent, cap }));
    }
}
