//! The sandbox agent as its own small binary, for the sandbox crate's tests;
//! `lyceum sandbox-agent` runs the same code in production.

fn main() {
    std::process::exit(sandbox::agent::main());
}
