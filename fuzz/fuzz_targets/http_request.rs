//! Fuzz the metrics endpoint's request parser (`mptcp_pmd::http_request::parse`): any bytes
//! must yield a request head or a typed refusal, never a panic; a parsed head lies within the
//! limit and parses the same on its own; and a decision is final (a prefix of the input is
//! `Incomplete` or the whole input's answer), which is what lets the endpoint answer as soon
//! as the parser decides.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mptcp_pmd::http_request::{parse, ParseError, HEAD_LIMIT};

fuzz_target!(|data: &[u8]| {
    let whole = parse(data);
    if let Ok(r) = &whole {
        assert!(r.head_len <= HEAD_LIMIT && r.head_len <= data.len());
        assert!(r.path.starts_with('/') && !r.method.is_empty());
        assert_eq!(parse(&data[..r.head_len]), whole);
    }
    // Every prefix would be quadratic; cut after the first lines (where decisions are made),
    // in the middle, one byte short, and around the limit.
    let newlines = data
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .map(|(i, _)| i + 1)
        .take(8);
    let cuts = newlines.chain([
        data.len() / 2,
        data.len().saturating_sub(1),
        HEAD_LIMIT,
        HEAD_LIMIT + 1,
    ]);
    for cut in cuts.filter(|c| *c <= data.len()) {
        let prefix = parse(&data[..cut]);
        assert!(
            prefix == Err(ParseError::Incomplete) || prefix == whole,
            "prefix of {cut} bytes: {prefix:?}, whole: {whole:?}"
        );
    }
});
