//! Fuzz the control socket's request parser (`mptcp_pmd::protocol::parse_request`, the one
//! function every request line goes through): any bytes must give a request or an error with
//! a one-line reply, never a panic; and a request it accepts must survive its own encoding
//! (what the CLI sends) unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mptcp_pmd::protocol::{parse_request, Reply};

fuzz_target!(|data: &[u8]| {
    match parse_request(data) {
        Ok(req) => {
            let line = req.to_line();
            assert_eq!(parse_request(line.as_bytes()), Ok(req), "{line}");
        }
        Err(e) => {
            let line = Reply::error(&e).to_line();
            assert!(
                line.ends_with('\n') && line.matches('\n').count() == 1,
                "{line:?}"
            );
            let back: Reply = serde_json::from_str(&line).expect("an error reply is JSON");
            assert_eq!(back.code, Some(e.code));
        }
    }
});
