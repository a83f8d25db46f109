//! Netlink framing shared by every family: the `nlmsghdr`, attribute (`nlattr`) iteration and
//! building, genl headers and `nlmsgerr` (with extended ACK) decoding. Pure functions over bytes;
//! no sockets. Layouts follow `include/uapi/linux/netlink.h` and `genetlink.h`.

use crate::error::DecodeError;

// Kernel constants come from libc (its `c_int` values, narrowed to the header fields' widths);
// the two NLMSGERR attributes and the genl header size are not in libc.

/// Size of `struct nlmsghdr`.
pub const NLMSG_HDRLEN: usize = 16;
/// Size of `struct nlattr`.
pub const NLA_HDRLEN: usize = 4;
/// Size of `struct genlmsghdr`.
pub const GENL_HDRLEN: usize = 4;

/// NLMSG_NOOP.
pub const NLMSG_NOOP: u16 = libc::NLMSG_NOOP as u16;
/// NLMSG_ERROR (also carries ACKs, error 0).
pub const NLMSG_ERROR: u16 = libc::NLMSG_ERROR as u16;
/// NLMSG_DONE: end of a dump.
pub const NLMSG_DONE: u16 = libc::NLMSG_DONE as u16;
/// NLMSG_OVERRUN.
pub const NLMSG_OVERRUN: u16 = libc::NLMSG_OVERRUN as u16;
/// NLMSG_MIN_TYPE: message types below it are netlink control messages.
pub const NLMSG_MIN_TYPE: u16 = libc::NLMSG_MIN_TYPE as u16;

/// NLM_F_REQUEST.
pub const NLM_F_REQUEST: u16 = libc::NLM_F_REQUEST as u16;
/// NLM_F_MULTI.
pub const NLM_F_MULTI: u16 = libc::NLM_F_MULTI as u16;
/// NLM_F_ACK.
pub const NLM_F_ACK: u16 = libc::NLM_F_ACK as u16;
/// NLM_F_ROOT.
pub const NLM_F_ROOT: u16 = libc::NLM_F_ROOT as u16;
/// NLM_F_MATCH.
pub const NLM_F_MATCH: u16 = libc::NLM_F_MATCH as u16;
/// NLM_F_DUMP = ROOT | MATCH.
pub const NLM_F_DUMP: u16 = libc::NLM_F_DUMP as u16;
/// In an NLMSG_ERROR: the request was capped (only its header is echoed).
pub const NLM_F_CAPPED: u16 = libc::NLM_F_CAPPED as u16;
/// In an NLMSG_ERROR: extended ACK TLVs follow.
pub const NLM_F_ACK_TLVS: u16 = libc::NLM_F_ACK_TLVS as u16;

/// NLA_F_NESTED.
pub const NLA_F_NESTED: u16 = libc::NLA_F_NESTED as u16;
/// NLA_F_NET_BYTEORDER.
pub const NLA_F_NET_BYTEORDER: u16 = libc::NLA_F_NET_BYTEORDER as u16;
/// Mask of the attribute type bits.
pub const NLA_TYPE_MASK: u16 = !(NLA_F_NESTED | NLA_F_NET_BYTEORDER);

/// NLMSGERR_ATTR_MSG: the kernel's error text.
pub const NLMSGERR_ATTR_MSG: u16 = 1;
/// NLMSGERR_ATTR_OFFS: offset of the offending attribute in the request.
pub const NLMSGERR_ATTR_OFFS: u16 = 2;

/// Round `len` up to netlink's 4-byte alignment.
pub const fn align(len: usize) -> usize {
    (len + 3) & !3
}

/// A parsed `struct nlmsghdr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NlHeader {
    /// Total length including the header.
    pub len: u32,
    /// Message type (a family id for genl).
    pub ty: u16,
    /// NLM_F_* flags.
    pub flags: u16,
    /// Sequence number.
    pub seq: u32,
    /// Port id.
    pub pid: u32,
}

/// One netlink message: header and payload (without the header, without padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NlMsg<'a> {
    /// The header.
    pub header: NlHeader,
    /// The bytes after the header, `len - 16` of them.
    pub payload: &'a [u8],
}

/// The host-order u16 at `at`, if `b` is long enough.
pub(crate) fn ne_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// The host-order u32 at `at`, if `b` is long enough.
pub(crate) fn ne_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The host-order i32 at `at`, if `b` is long enough.
pub(crate) fn ne_i32(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The host-order u64 at `at`, if `b` is long enough.
pub(crate) fn ne_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The big-endian u16 at `at`, if `b` is long enough.
pub(crate) fn be_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// The `nlmsghdr` at the start of `b`, if there are enough bytes for one.
fn parse_header(b: &[u8]) -> Option<NlHeader> {
    Some(NlHeader {
        len: ne_u32(b, 0)?,
        ty: ne_u16(b, 4)?,
        flags: ne_u16(b, 6)?,
        seq: ne_u32(b, 8)?,
        pid: ne_u32(b, 12)?,
    })
}

/// Iterates over the netlink messages of one datagram. A truncated or inconsistent header
/// yields one error and ends the iteration (the rest of that datagram cannot be framed).
pub struct NlMsgIter<'a> {
    buf: &'a [u8],
    failed: bool,
}

/// Frame the messages of one received datagram.
pub fn messages(buf: &[u8]) -> NlMsgIter<'_> {
    NlMsgIter { buf, failed: false }
}

impl<'a> Iterator for NlMsgIter<'a> {
    type Item = Result<NlMsg<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.buf.is_empty() {
            return None;
        }
        let b = self.buf;
        let parsed = parse_header(b);
        let Some(header) = parsed else {
            self.failed = true;
            return Some(Err(DecodeError::Truncated {
                what: "nlmsghdr",
                need: NLMSG_HDRLEN,
                have: b.len(),
            }));
        };
        let len = header.len as usize;
        if len < NLMSG_HDRLEN || len > b.len() {
            self.failed = true;
            return Some(Err(DecodeError::BadLength {
                what: "nlmsghdr",
                len,
                available: b.len(),
            }));
        }
        let payload = &b[NLMSG_HDRLEN..len];
        self.buf = b.get(align(len)..).unwrap_or(&[]);
        Some(Ok(NlMsg { header, payload }))
    }
}

/// One attribute: its type (flags stripped), whether it was marked nested, and its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr<'a> {
    /// Attribute type with NLA_F_NESTED / NLA_F_NET_BYTEORDER masked off.
    pub ty: u16,
    /// NLA_F_NESTED was set.
    pub nested: bool,
    /// Payload bytes (without padding).
    pub payload: &'a [u8],
}

impl<'a> Attr<'a> {
    /// Iterate over the attributes nested in this one.
    pub fn attrs(&self) -> AttrIter<'a> {
        attrs(self.payload)
    }

    fn fixed<const N: usize>(&self, what: &'static str) -> Result<[u8; N], DecodeError> {
        self.payload.try_into().map_err(|_| DecodeError::AttrSize {
            what,
            ty: self.ty,
            expected: N,
            got: self.payload.len(),
        })
    }

    /// The payload as a u8.
    pub fn u8(&self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.fixed::<1>(what)?[0])
    }
    /// The payload as a host-order u16.
    pub fn u16(&self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_ne_bytes(self.fixed(what)?))
    }
    /// The payload as a big-endian (network order) u16.
    pub fn u16_be(&self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.fixed(what)?))
    }
    /// The payload as a host-order u32.
    pub fn u32(&self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_ne_bytes(self.fixed(what)?))
    }
    /// The payload as a host-order i32.
    pub fn i32(&self, what: &'static str) -> Result<i32, DecodeError> {
        Ok(i32::from_ne_bytes(self.fixed(what)?))
    }
    /// The payload as a host-order u64.
    pub fn u64(&self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_ne_bytes(self.fixed(what)?))
    }
    /// The payload as 4 address bytes (network order).
    pub fn ipv4(&self, what: &'static str) -> Result<std::net::Ipv4Addr, DecodeError> {
        Ok(std::net::Ipv4Addr::from(self.fixed::<4>(what)?))
    }
    /// The payload as 16 address bytes.
    pub fn ipv6(&self, what: &'static str) -> Result<std::net::Ipv6Addr, DecodeError> {
        Ok(std::net::Ipv6Addr::from(self.fixed::<16>(what)?))
    }
    /// The payload as a NUL-terminated (or not) string; invalid UTF-8 is replaced.
    pub fn string(&self) -> String {
        let end = self
            .payload
            .iter()
            .position(|&c| c == 0)
            .unwrap_or(self.payload.len());
        String::from_utf8_lossy(&self.payload[..end]).into_owned()
    }
}

/// Iterates over a run of attributes. A malformed attribute header yields one error and ends
/// the iteration.
pub struct AttrIter<'a> {
    buf: &'a [u8],
    failed: bool,
}

/// Iterate over the attributes in `buf`.
pub fn attrs(buf: &[u8]) -> AttrIter<'_> {
    AttrIter { buf, failed: false }
}

impl<'a> Iterator for AttrIter<'a> {
    type Item = Result<Attr<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.buf.len() < NLA_HDRLEN {
            // Fewer than 4 trailing bytes can only be padding.
            return None;
        }
        let b = self.buf;
        let (Some(len), Some(raw_ty)) = (ne_u16(b, 0), ne_u16(b, 2)) else {
            self.failed = true;
            return None;
        };
        let len = len as usize;
        if len < NLA_HDRLEN || len > b.len() {
            self.failed = true;
            return Some(Err(DecodeError::BadLength {
                what: "nlattr",
                len,
                available: b.len(),
            }));
        }
        self.buf = b.get(align(len)..).unwrap_or(&[]);
        Some(Ok(Attr {
            ty: raw_ty & NLA_TYPE_MASK,
            nested: raw_ty & NLA_F_NESTED != 0,
            payload: &b[NLA_HDRLEN..len],
        }))
    }
}

/// Builds one netlink message: header, a fixed family header, then attributes (with nesting).
#[derive(Debug, Clone)]
pub struct MsgBuilder {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl MsgBuilder {
    /// Start a message of type `ty` with `flags` and sequence number `seq` (pid 0: the kernel).
    pub fn new(ty: u16, flags: u16, seq: u32) -> Self {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        MsgBuilder {
            buf,
            nests: Vec::new(),
        }
    }

    /// Start a generic netlink message: family id, command, version.
    pub fn genl(family: u16, cmd: u8, version: u8, flags: u16, seq: u32) -> Self {
        let mut b = Self::new(family, flags, seq);
        b.bytes(&[cmd, version, 0, 0]);
        b
    }

    /// Append raw bytes (a fixed family header such as `inet_diag_req_v2`), padded to 4.
    pub fn bytes(&mut self, data: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(data);
        self.pad();
        self
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    /// Append one attribute with a raw payload.
    pub fn attr(&mut self, ty: u16, payload: &[u8]) -> &mut Self {
        let len = (NLA_HDRLEN + payload.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.pad();
        self
    }
    /// Append a u8 attribute.
    pub fn u8(&mut self, ty: u16, v: u8) -> &mut Self {
        self.attr(ty, &[v])
    }
    /// Append a host-order u16 attribute.
    pub fn u16(&mut self, ty: u16, v: u16) -> &mut Self {
        self.attr(ty, &v.to_ne_bytes())
    }
    /// Append a host-order u32 attribute.
    pub fn u32(&mut self, ty: u16, v: u32) -> &mut Self {
        self.attr(ty, &v.to_ne_bytes())
    }
    /// Append a host-order i32 attribute.
    pub fn i32(&mut self, ty: u16, v: i32) -> &mut Self {
        self.attr(ty, &v.to_ne_bytes())
    }

    /// Open a nested attribute (NLA_F_NESTED is set); close it with [`MsgBuilder::end_nest`].
    pub fn begin_nest(&mut self, ty: u16) -> &mut Self {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        self
    }

    /// Close the innermost open nest.
    pub fn end_nest(&mut self) -> &mut Self {
        if let Some(start) = self.nests.pop() {
            let len = (self.buf.len() - start) as u16;
            self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }

    /// Finish: close open nests and fill in the total length.
    pub fn finish(mut self) -> Vec<u8> {
        while !self.nests.is_empty() {
            self.end_nest();
        }
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

/// A decoded NLMSG_ERROR: errno 0 is an ACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NlError {
    /// Positive errno (0 = success ACK).
    pub errno: i32,
    /// Header of the request this answers.
    pub request: NlHeader,
    /// The kernel's explanation (extended ACK), if any.
    pub message: Option<String>,
    /// Offset of the offending attribute in the request, if reported.
    pub bad_attr_offset: Option<u32>,
}

/// Decode the payload of an NLMSG_ERROR message (`header` is that message's own header).
pub fn parse_error(header: &NlHeader, payload: &[u8]) -> Result<NlError, DecodeError> {
    let need = 4 + NLMSG_HDRLEN;
    if payload.len() < need {
        return Err(DecodeError::Truncated {
            what: "nlmsgerr",
            need,
            have: payload.len(),
        });
    }
    let raw = ne_i32(payload, 0).unwrap_or(0);
    let request = payload
        .get(4..)
        .and_then(parse_header)
        .ok_or(DecodeError::Truncated {
            what: "nlmsgerr",
            need,
            have: payload.len(),
        })?;
    let mut err = NlError {
        errno: raw.saturating_neg(),
        request,
        message: None,
        bad_attr_offset: None,
    };
    if header.flags & NLM_F_ACK_TLVS != 0 {
        // Without NLM_F_CAPPED the whole request is echoed before the TLVs.
        let echoed = if header.flags & NLM_F_CAPPED != 0 {
            NLMSG_HDRLEN
        } else {
            align((request.len as usize).max(NLMSG_HDRLEN))
        };
        if let Some(tlvs) = payload.get(4 + echoed..) {
            read_ack_tlvs(tlvs, &mut err);
        }
    }
    Ok(err)
}

fn read_ack_tlvs(tlvs: &[u8], err: &mut NlError) {
    for a in attrs(tlvs).flatten() {
        match a.ty {
            NLMSGERR_ATTR_MSG => err.message = Some(a.string()),
            NLMSGERR_ATTR_OFFS => err.bad_attr_offset = a.u32("nlmsgerr offset").ok(),
            _ => {}
        }
    }
}

/// Decode the payload of an NLMSG_DONE: a dump that fails after its first part ends with a
/// negative errno there, followed by extended-ACK TLVs when `NLM_F_ACK_TLVS` is set (verified
/// on 6.18 for GET_ADDR with an unknown token). errno 0 is a complete dump; a payload too short
/// for the errno (older kernels, some families) is one too.
pub fn parse_done(msg: &NlMsg<'_>) -> NlError {
    let mut done = NlError {
        errno: ne_i32(msg.payload, 0).unwrap_or(0).saturating_neg().max(0),
        request: msg.header,
        message: None,
        bad_attr_offset: None,
    };
    if done.errno != 0 && msg.header.flags & NLM_F_ACK_TLVS != 0 {
        if let Some(tlvs) = msg.payload.get(4..) {
            read_ack_tlvs(tlvs, &mut done);
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_roundtrip_with_nest() {
        let mut b = MsgBuilder::genl(0x1c, 10, 1, NLM_F_REQUEST | NLM_F_ACK, 7);
        b.u32(4, 0xdead_beef)
            .begin_nest(1)
            .u16(1, 2)
            .u8(2, 5)
            .end_nest();
        let bytes = b.finish();
        assert_eq!(bytes.len() % 4, 0);
        let msgs: Vec<_> = messages(&bytes).collect::<Result<_, _>>().unwrap();
        assert_eq!(msgs.len(), 1);
        let m = msgs[0];
        assert_eq!(m.header.ty, 0x1c);
        assert_eq!(m.header.seq, 7);
        assert_eq!(&m.payload[..4], &[10, 1, 0, 0]);
        let a: Vec<_> = attrs(&m.payload[4..]).collect::<Result<_, _>>().unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].u32("token").unwrap(), 0xdead_beef);
        assert!(a[1].nested);
        let inner: Vec<_> = a[1].attrs().collect::<Result<_, _>>().unwrap();
        assert_eq!(inner[0].u16("family").unwrap(), 2);
        assert_eq!(inner[1].u8("id").unwrap(), 5);
    }

    #[test]
    fn truncated_attr_is_error_not_panic() {
        // nla_len says 8 but only 6 bytes are there.
        let buf = [8u8, 0, 1, 0, 1, 2];
        let r: Vec<_> = attrs(&buf).collect();
        assert!(matches!(r[0], Err(DecodeError::BadLength { .. })));
        // nla_len below the header size.
        let buf = [2u8, 0, 1, 0];
        assert!(matches!(
            attrs(&buf).next(),
            Some(Err(DecodeError::BadLength { .. }))
        ));
    }

    #[test]
    fn short_header_is_error() {
        let r: Vec<_> = messages(&[1, 2, 3]).collect();
        assert!(matches!(r[0], Err(DecodeError::Truncated { .. })));
        let mut buf = vec![0u8; 16];
        buf[0] = 200; // claims 200 bytes
        assert!(matches!(
            messages(&buf).next(),
            Some(Err(DecodeError::BadLength { .. }))
        ));
    }

    #[test]
    fn wrong_attr_size_names_field() {
        let a = Attr {
            ty: 4,
            nested: false,
            payload: &[1, 2],
        };
        let e = a.u32("token").unwrap_err();
        assert!(e.to_string().contains("token"), "{e}");
    }
}
