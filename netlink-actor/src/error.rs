//! Errors of the kernel bridge: decoding failures (always a value naming what is wrong, never a
//! panic) and socket / kernel-refusal errors.

use thiserror::Error;

/// A message or attribute from the kernel could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// Fewer bytes than a fixed structure needs.
    #[error("truncated {what}: need {need} bytes, have {have}")]
    Truncated {
        /// What was being decoded.
        what: &'static str,
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// A length field disagrees with the bytes available.
    #[error("bad {what} length {len} ({available} bytes available)")]
    BadLength {
        /// What was being decoded.
        what: &'static str,
        /// The length the field claimed.
        len: usize,
        /// Bytes available.
        available: usize,
    },
    /// An attribute has the wrong payload size for its type.
    #[error("attribute {what} (type {ty}) has {got} bytes, expected {expected}")]
    AttrSize {
        /// Attribute name.
        what: &'static str,
        /// Attribute type number.
        ty: u16,
        /// Expected payload size.
        expected: usize,
        /// Actual payload size.
        got: usize,
    },
    /// A required attribute is absent.
    #[error("{msg} lacks required attribute {what}")]
    Missing {
        /// The message kind.
        msg: &'static str,
        /// The missing attribute.
        what: &'static str,
    },
    /// A field holds a value that makes no sense (e.g. an unknown address family).
    #[error("invalid {what}: {value}")]
    Invalid {
        /// The field.
        what: &'static str,
        /// Its value.
        value: u64,
    },
    /// An inner decoding error, with the message it happened in (e.g. the event name).
    #[error("{context}: {source}")]
    Context {
        /// The message being decoded (e.g. `MPTCP_EVENT_SUB_ESTABLISHED`).
        context: &'static str,
        /// What went wrong inside it.
        source: Box<DecodeError>,
    },
}
