//! `chaos`: deterministic simulation and chaos tests for the agent platform engine.

fn main() -> std::process::ExitCode {
    scenarios::cli::main()
}
