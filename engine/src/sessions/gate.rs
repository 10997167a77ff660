//! The tool gate: the seam every call a session's query makes passes first. Before each
//! tool call and before each model call the driver asks the gate, which asks its
//! policies in order; the first that denies decides (with its reason, told to the
//! user), and a call no policy denies goes ahead.
//!
//! Policies are pure decisions over the call and the session's context: the engine's
//! first is [`RoleTools`] (the tools each role may call, judged with the role at the
//! moment of the call). Permissions, quotas, approvals and context-window checks plug
//! in here as further policies (`ToolGate::with`), without growing the driver.

use std::collections::BTreeMap;
use std::sync::Arc;

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GateContext<'a> {
    pub session: &'a str,
    pub user: &'a str,
    /// The user's role now (it may change while the session lives).
    pub role: String,
}

/// What is about to be called.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GateCall<'a> {
    /// A tool, by name.
    Tool { name: &'a str },
    /// The model API, with the query's text.
    Model { text: &'a str },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GateDecision {
    Allow,
    /// Refused: the user is told `reason` (error `tool_denied`) and the query ends.
    Deny {
        reason: String,
    },
}

/// One rule the gate applies.
pub trait GatePolicy: Send + Sync {
    /// The policy's name, for logs.
    fn name(&self) -> &'static str;
    fn decide(&self, context: &GateContext<'_>, call: &GateCall<'_>) -> GateDecision;
}

/// The gate: its policies, asked in order.
#[derive(Clone, Default)]
pub struct ToolGate {
    policies: Vec<Arc<dyn GatePolicy>>,
}

impl ToolGate {
    /// A gate that allows everything (no policy yet).
    pub fn open() -> Self {
        ToolGate::default()
    }

    /// This gate with `policy` asked after the others.
    pub fn with(mut self, policy: Arc<dyn GatePolicy>) -> Self {
        self.policies.push(policy);
        self
    }

    /// The first denial among the policies, or `Allow`.
    pub fn check(&self, context: &GateContext<'_>, call: &GateCall<'_>) -> GateDecision {
        for policy in &self.policies {
            if let GateDecision::Deny { reason } = policy.decide(context, call) {
                tracing::info!(session = context.session, policy = policy.name(), ?call, %reason, "call denied by the gate");
                return GateDecision::Deny { reason };
            }
        }
        GateDecision::Allow
    }

    /// The policies' names, in the order they are asked.
    pub fn policies(&self) -> Vec<&'static str> {
        self.policies.iter().map(|p| p.name()).collect()
    }
}

impl std::fmt::Debug for ToolGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolGate")
            .field("policies", &self.policies())
            .finish()
    }
}

/// Tools each role may call; a role not listed may call none. Model calls are not its
/// business.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleTools {
    pub role_tools: BTreeMap<String, Vec<String>>,
}

impl RoleTools {
    pub fn tools_of(&self, role: &str) -> Vec<String> {
        self.role_tools.get(role).cloned().unwrap_or_default()
    }
}

impl GatePolicy for RoleTools {
    fn name(&self) -> &'static str {
        "role-tools"
    }

    fn decide(&self, context: &GateContext<'_>, call: &GateCall<'_>) -> GateDecision {
        let GateCall::Tool { name } = call else {
            return GateDecision::Allow;
        };
        let allowed = self
            .role_tools
            .get(&context.role)
            .is_some_and(|tools| tools.iter().any(|t| t == name));
        if allowed {
            return GateDecision::Allow;
        }
        GateDecision::Deny {
            reason: format!("tool {name:?} is not allowed for role {:?}", context.role),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(role: &str) -> GateContext<'static> {
        GateContext {
            session: "s1",
            user: "ana",
            role: role.to_string(),
        }
    }

    #[test]
    fn the_first_denial_decides_and_model_calls_pass_the_role_policy() {
        let roles = RoleTools {
            role_tools: BTreeMap::from([("member".to_string(), vec!["read".to_string()])]),
        };
        let gate = ToolGate::open().with(Arc::new(roles));
        assert_eq!(
            gate.check(&context("member"), &GateCall::Tool { name: "read" }),
            GateDecision::Allow
        );
        assert_eq!(
            gate.check(&context("member"), &GateCall::Tool { name: "shell" }),
            GateDecision::Deny {
                reason: "tool \"shell\" is not allowed for role \"member\"".to_string()
            }
        );
        assert_eq!(
            gate.check(&context("nobody"), &GateCall::Model { text: "hi" }),
            GateDecision::Allow
        );
        struct NoModel;
        impl GatePolicy for NoModel {
            fn name(&self) -> &'static str {
                "no-model"
            }
            fn decide(&self, _: &GateContext<'_>, call: &GateCall<'_>) -> GateDecision {
                match call {
                    GateCall::Model { .. } => GateDecision::Deny {
                        reason: "no model today".to_string(),
                    },
                    GateCall::Tool { .. } => GateDecision::Allow,
                }
            }
        }
        let gate = gate.with(Arc::new(NoModel));
        assert_eq!(gate.policies(), vec!["role-tools", "no-model"]);
        assert!(matches!(
            gate.check(&context("member"), &GateCall::Model { text: "hi" }),
            GateDecision::Deny { .. }
        ));
    }
}
