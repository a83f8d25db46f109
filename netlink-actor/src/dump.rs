//! Netlink dumps, shared by every family: collect the replies of one request (matched by
//! sequence number) until NLMSG_DONE, turn an NLMSG_ERROR into the kernel's refusal, and count
//! the replies that cannot be decoded instead of failing the whole dump. Pure.

use crate::error::DecodeError;
use crate::nlmsg::{messages, parse_error, NlMsg, NLMSG_DONE, NLMSG_ERROR};

/// Message types below this are netlink control messages (NLMSG_MIN_TYPE).
const NLMSG_MIN_TYPE: u16 = 0x10;

/// The decoded items of one dump and what could not be decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Dump<T> {
    /// Decoded items.
    pub items: Vec<T>,
    /// Replies left out because they could not be decoded.
    pub skipped: usize,
    /// The last such decode error.
    pub last_error: Option<DecodeError>,
}

impl<T> Default for Dump<T> {
    fn default() -> Self {
        Dump {
            items: Vec::new(),
            skipped: 0,
            last_error: None,
        }
    }
}

/// Whether a dump needs more datagrams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpProgress {
    /// NLMSG_DONE not seen yet.
    More,
    /// NLMSG_DONE seen: the dump is complete.
    Done,
}

/// Why a dump ended early; each socket wraps it in its own error type with its context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DumpFault {
    /// A datagram could not be framed.
    Framing(DecodeError),
    /// The kernel refused the dump.
    Kernel {
        /// Positive errno.
        errno: i32,
        /// Extended-ACK text, if any.
        message: Option<String>,
    },
}

/// Feed one received datagram (or several concatenated) of the dump with sequence number
/// `seq` into `out`. Messages of other sequence numbers (leftovers of an aborted dump) and
/// control messages are ignored; a reply `parse` cannot decode is counted in `out.skipped`;
/// `parse` returning `Ok(None)` means "not for us" (e.g. a TCP socket that is no subflow).
pub fn feed<T>(
    datagram: &[u8],
    seq: u32,
    parse: impl Fn(&NlMsg<'_>) -> Result<Option<T>, DecodeError>,
    out: &mut Dump<T>,
) -> Result<DumpProgress, DumpFault> {
    for m in messages(datagram) {
        let m = m.map_err(DumpFault::Framing)?;
        if m.header.seq != seq {
            continue;
        }
        match m.header.ty {
            NLMSG_DONE => return Ok(DumpProgress::Done),
            NLMSG_ERROR => {
                let e = parse_error(&m.header, m.payload).map_err(DumpFault::Framing)?;
                if e.errno != 0 {
                    return Err(DumpFault::Kernel {
                        errno: e.errno,
                        message: e.message,
                    });
                }
            }
            ty if ty < NLMSG_MIN_TYPE => {}
            _ => match parse(&m) {
                Ok(Some(item)) => out.items.push(item),
                Ok(None) => {}
                Err(e) => {
                    out.skipped += 1;
                    out.last_error = Some(e);
                }
            },
        }
    }
    Ok(DumpProgress::More)
}
