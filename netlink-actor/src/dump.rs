//! Netlink dumps, shared by every family: the decoded items of one dump and the replies that
//! could not be decoded, counted instead of failing the whole dump. [`feed`] is the pure form
//! (captured bytes in, items out); [`run`] runs a dump on a socket with the same
//! [`collector`]. Built on the transport (which knows nothing of dumps beyond the end of a
//! request's replies).

use crate::error::{DecodeError, Error};
use crate::transport::{Replies, Step, Transport};
use crate::wire::Message;

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

/// `parse` on the payload of a reply of message type `ty`; a reply of any other type is not
/// for us (`Ok(None)`): the shape of every family's dump reply parser.
pub fn payload_of<T>(
    m: &Message<'_>,
    ty: u16,
    parse: impl FnOnce(&[u8]) -> Result<Option<T>, DecodeError>,
) -> Result<Option<T>, DecodeError> {
    if m.ty() == ty {
        parse(m.payload())
    } else {
        Ok(None)
    }
}

/// The reply handler of a dump: each reply `parse` decodes is added to `out`, `Ok(None)` is
/// "not for us" (e.g. a TCP socket that is no subflow), a reply it cannot decode is counted in
/// [`Dump::skipped`] and the dump goes on.
pub fn collector<'a, T>(
    parse: impl Fn(&Message<'_>) -> Result<Option<T>, DecodeError> + 'a,
    out: &'a mut Dump<T>,
) -> impl FnMut(&Message<'_>) -> Result<(), DecodeError> + 'a {
    move |m| {
        match parse(m) {
            Ok(Some(item)) => out.items.push(item),
            Ok(None) => {}
            Err(e) => {
                out.skipped += 1;
                out.last_error = Some(e);
            }
        }
        Ok(())
    }
}

/// Feed one received datagram (or several concatenated) of the dump with sequence number
/// `seq` into `out`; [`Step::Done`] once its NLMSG_DONE is seen. Messages of other sequence
/// numbers are ignored; a datagram that cannot be framed or the kernel's refusal is an error
/// naming `what`. Pure.
pub fn feed<T>(
    datagram: &[u8],
    seq: u32,
    what: &'static str,
    parse: impl Fn(&Message<'_>) -> Result<Option<T>, DecodeError>,
    out: &mut Dump<T>,
) -> Result<Step, Error> {
    let mut replies = Replies::new(what, seq);
    let step = replies.feed(datagram, &mut collector(parse, out), None);
    replies.finish().map(|()| step)
}

/// Run a dump on `t`: send `req` (sequence number `seq`) and collect its replies with `parse`
/// (see [`collector`]): `Ok(None)` leaves a reply out, an undecodable one is counted in
/// [`Dump::skipped`] instead of failing the dump. Errors are those of
/// [`Transport::request`].
pub fn run<T>(
    t: &mut Transport,
    what: &'static str,
    seq: u32,
    req: &[u8],
    parse: impl Fn(&Message<'_>) -> Result<Option<T>, DecodeError>,
    out: &mut Dump<T>,
) -> Result<(), Error> {
    t.request(what, seq, req, collector(parse, out))
}
