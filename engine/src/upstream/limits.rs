//! What one query may spend of the model API: turns, structured-output retries, the
//! context window, and money (each model's price per token).

use super::wire::Usage;
use crate::protocol::Usd;

/// The agent loop's limits and the price list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelLimits {
    /// Model calls one query may make, unless the query sets its own `max_turns`.
    pub max_turns: u32,
    /// Calls made again when a structured answer does not match its schema.
    pub structured_retries: u32,
    /// The history a call carries, in tokens (a word is a token): past it, the oldest
    /// turns are compacted before the call.
    pub context_tokens_max: u64,
    /// A tool's result sent back to the model, at most (text, or binary base64-encoded):
    /// a larger binary is written to the workspace and its path sent instead.
    pub tool_result_bytes_max: usize,
    pub prices: Vec<ModelPrice>,
}

/// A model's price, per million tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelPrice {
    pub model: String,
    pub input_per_mtok: Usd,
    pub output_per_mtok: Usd,
}

impl ModelLimits {
    /// The defaults: 16 turns, 2 retries, a 200,000-token window, 1 MB tool results, and
    /// the local models priced like the API's tiers.
    pub fn new() -> Self {
        let price = |model: &str, input: u64, output: u64| ModelPrice {
            model: model.to_string(),
            input_per_mtok: Usd::from_micros(input * 1_000_000),
            output_per_mtok: Usd::from_micros(output * 1_000_000),
        };
        ModelLimits {
            max_turns: 16,
            structured_retries: 2,
            context_tokens_max: 200_000,
            tool_result_bytes_max: 1 << 20,
            prices: vec![
                price("local-echo-1", 3, 15),
                price("local-echo-2", 15, 75),
                price("local-echo-lite", 1, 5),
            ],
        }
    }

    /// What a call to `model` that used `usage` costs: the model's price, or the
    /// dearest listed one for a model without a price (a cap errs on the safe side).
    pub fn cost(&self, model: &str, usage: Usage) -> Usd {
        let price = self.prices.iter().find(|p| p.model == model).or_else(|| {
            self.prices
                .iter()
                .max_by_key(|p| (p.output_per_mtok, p.input_per_mtok))
        });
        let Some(price) = price else {
            return Usd::default();
        };
        // Micro-dollars per million tokens is micro-micro-dollars per token.
        let per_token =
            |count: u64, per_mtok: Usd| count.saturating_mul(per_mtok.micros) / 1_000_000;
        Usd::from_micros(
            per_token(usage.input_tokens, price.input_per_mtok)
                .saturating_add(per_token(usage.output_tokens, price.output_per_mtok)),
        )
    }

    pub fn check(&self) {
        assert!(self.max_turns > 0, "max_turns must be positive");
        assert!(
            self.context_tokens_max > 0 && self.tool_result_bytes_max > 0,
            "context_tokens_max and tool_result_bytes_max must be positive"
        );
    }
}

impl Default for ModelLimits {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_costs_its_tokens_at_its_models_price() {
        let limits = ModelLimits::new();
        let usage = Usage {
            input_tokens: 1_000_000,
            output_tokens: 2_000_000,
        };
        assert_eq!(limits.cost("local-echo-1", usage).micros, 33_000_000);
        // An unpriced model costs as the dearest one.
        assert_eq!(limits.cost("other", usage).micros, 165_000_000);
        let small = Usage {
            input_tokens: 10,
            output_tokens: 10,
        };
        assert_eq!(limits.cost("local-echo-1", small).micros, 180);
    }
}
