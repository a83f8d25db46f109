//! Helpers shared by the config crate's integration tests.
#![allow(dead_code, clippy::panic)]

use mptcp_pmd_config::{parse, Config};

/// `yaml` parsed, or a panic naming the input and the error.
pub fn ok(yaml: &str) -> Config {
    match parse(yaml, "test.yaml") {
        Ok(c) => c,
        Err(e) => panic!("{yaml:?}: {e}"),
    }
}
