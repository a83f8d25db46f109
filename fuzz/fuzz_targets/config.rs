//! Fuzz the configuration parser and validator: any UTF-8 text must yield a config or a
//! located error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(cfg) = mptcp_pmd_config::parse(text, "fuzz.yaml") {
            // Exercise the derived impls too (Debug walks every field).
            let _ = format!("{cfg:?}");
        }
    }
});
