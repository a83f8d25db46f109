//! Pure codec for the generic netlink controller (`nlctrl`, family id `GENL_ID_CTRL`): the
//! CTRL_CMD_GETFAMILY request that resolves a family name, and its reply (family id and
//! multicast groups). Ids are per kernel and boot: they are always resolved at run time
//! ([`crate::genl::resolve_family`]), never hard-coded. Layout: `include/uapi/linux/genetlink.h`.

use crate::error::DecodeError;
use crate::nlmsg::{attrs, MsgBuilder, NlMsg, GENL_HDRLEN, NLM_F_ACK, NLM_F_REQUEST};

/// GENL_ID_CTRL: the controller's own family id.
pub const GENL_ID_CTRL: u16 = libc::GENL_ID_CTRL as u16;
/// CTRL_CMD_NEWFAMILY: the reply's command.
pub const CTRL_CMD_NEWFAMILY: u8 = libc::CTRL_CMD_NEWFAMILY as u8;
/// CTRL_CMD_GETFAMILY.
pub const CTRL_CMD_GETFAMILY: u8 = libc::CTRL_CMD_GETFAMILY as u8;
/// CTRL_ATTR_FAMILY_ID (u16).
pub const CTRL_ATTR_FAMILY_ID: u16 = libc::CTRL_ATTR_FAMILY_ID as u16;
/// CTRL_ATTR_FAMILY_NAME (string).
pub const CTRL_ATTR_FAMILY_NAME: u16 = libc::CTRL_ATTR_FAMILY_NAME as u16;
/// CTRL_ATTR_VERSION (u32).
pub const CTRL_ATTR_VERSION: u16 = libc::CTRL_ATTR_VERSION as u16;
/// CTRL_ATTR_MCAST_GROUPS (nested array of nested groups).
pub const CTRL_ATTR_MCAST_GROUPS: u16 = libc::CTRL_ATTR_MCAST_GROUPS as u16;
/// CTRL_ATTR_MCAST_GRP_NAME (string), inside one group.
pub const CTRL_ATTR_MCAST_GRP_NAME: u16 = libc::CTRL_ATTR_MCAST_GRP_NAME as u16;
/// CTRL_ATTR_MCAST_GRP_ID (u32), inside one group.
pub const CTRL_ATTR_MCAST_GRP_ID: u16 = libc::CTRL_ATTR_MCAST_GRP_ID as u16;

/// Version of the controller protocol we speak.
const CTRL_VERSION: u8 = 1;

/// A resolved generic netlink family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenlFamilyInfo {
    /// The family id (the `nlmsg_type` of its messages).
    pub id: u16,
    /// Its name.
    pub name: String,
    /// Its version (CTRL_ATTR_VERSION, 0 if absent).
    pub version: u32,
    /// Its multicast groups: (name, id).
    pub groups: Vec<(String, u32)>,
}

impl GenlFamilyInfo {
    /// The id of multicast group `name`, if the family has it.
    pub fn group(&self, name: &str) -> Option<u32> {
        self.groups
            .iter()
            .find(|(n, _)| n == name)
            .map(|&(_, id)| id)
    }
}

/// CTRL_CMD_GETFAMILY for family `name` (answered by one CTRL_CMD_NEWFAMILY, then the ACK;
/// ENOENT if the kernel has no such family).
pub fn encode_get_family(name: &str, seq: u32) -> Vec<u8> {
    let mut b = MsgBuilder::genl(
        GENL_ID_CTRL,
        CTRL_CMD_GETFAMILY,
        CTRL_VERSION,
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
    );
    let mut z = Vec::with_capacity(name.len() + 1);
    z.extend_from_slice(name.as_bytes());
    z.push(0);
    b.attr(CTRL_ATTR_FAMILY_NAME, &z);
    b.finish()
}

/// Decode a CTRL_CMD_NEWFAMILY reply. Unknown attributes (ops, policies) are ignored.
pub fn decode_family(msg: &NlMsg<'_>) -> Result<GenlFamilyInfo, DecodeError> {
    const MSG: &str = "CTRL_CMD_NEWFAMILY";
    let body = msg
        .payload
        .get(GENL_HDRLEN..)
        .ok_or(DecodeError::Truncated {
            what: "genlmsghdr",
            need: GENL_HDRLEN,
            have: msg.payload.len(),
        })?;
    let (mut id, mut name, mut version, mut groups) = (None, None, 0, Vec::new());
    for a in attrs(body) {
        let a = a?;
        match a.ty {
            CTRL_ATTR_FAMILY_ID => id = Some(a.u16("CTRL_ATTR_FAMILY_ID")?),
            CTRL_ATTR_FAMILY_NAME => name = Some(a.string()),
            CTRL_ATTR_VERSION => version = a.u32("CTRL_ATTR_VERSION")?,
            CTRL_ATTR_MCAST_GROUPS => {
                for g in a.attrs() {
                    let (mut gname, mut gid) = (None, None);
                    for f in g?.attrs() {
                        let f = f?;
                        match f.ty {
                            CTRL_ATTR_MCAST_GRP_NAME => gname = Some(f.string()),
                            CTRL_ATTR_MCAST_GRP_ID => gid = Some(f.u32("CTRL_ATTR_MCAST_GRP_ID")?),
                            _ => {}
                        }
                    }
                    if let (Some(n), Some(i)) = (gname, gid) {
                        groups.push((n, i));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(GenlFamilyInfo {
        id: id.ok_or(DecodeError::Missing {
            msg: MSG,
            what: "CTRL_ATTR_FAMILY_ID",
        })?,
        name: name.unwrap_or_default(),
        version,
        groups,
    })
}

#[cfg(test)]
mod tests {
    //! Fixture: `tests/fixtures/genl_ctrl/getfamily_mptcp_pm.bin`, the controller's reply on a
    //! 6.18 kernel, captured by `tests/fixtures/genl_ctrl/capture.py`; the expected values are
    //! iproute2's decoding of the same family (`genl_ctrl_get.txt` there).
    use super::*;
    use crate::nlmsg::{messages, NLMSG_HDRLEN};

    const REPLY: &[u8] = include_bytes!("../tests/fixtures/genl_ctrl/getfamily_mptcp_pm.bin");

    #[test]
    fn request_is_getfamily_with_the_name() {
        let r = encode_get_family("mptcp_pm", 1);
        let mut want = Vec::new();
        want.extend_from_slice(&36u32.to_ne_bytes()); // 16 + 4 + (4 + 9, padded to 16)
        want.extend_from_slice(&0x10u16.to_ne_bytes());
        want.extend_from_slice(&5u16.to_ne_bytes()); // REQUEST | ACK
        want.extend_from_slice(&1u32.to_ne_bytes());
        want.extend_from_slice(&0u32.to_ne_bytes());
        want.extend_from_slice(&[3, 1, 0, 0]);
        want.extend_from_slice(&13u16.to_ne_bytes());
        want.extend_from_slice(&2u16.to_ne_bytes());
        want.extend_from_slice(b"mptcp_pm\0\0\0\0");
        assert_eq!(r, want);
        assert_eq!(r.len(), NLMSG_HDRLEN + GENL_HDRLEN + 16);
    }

    #[test]
    fn reply_gives_id_version_and_groups() {
        let m = messages(REPLY).next().unwrap().unwrap();
        assert_eq!(m.header.ty, GENL_ID_CTRL);
        assert_eq!(m.payload[0], CTRL_CMD_NEWFAMILY);
        let f = decode_family(&m).unwrap();
        assert_eq!(f.name, "mptcp_pm");
        assert_eq!(f.id, 0x1c);
        assert_eq!(f.version, 1);
        assert_eq!(
            f.groups,
            [
                ("mptcp_pm_cmds".to_string(), 8),
                ("mptcp_pm_events".to_string(), 9)
            ]
        );
        assert_eq!(f.group("mptcp_pm_events"), Some(9));
        assert_eq!(f.group("nope"), None);
    }

    #[test]
    fn reply_without_id_or_cut_short_is_an_error() {
        let m = messages(REPLY).next().unwrap().unwrap();
        // The name attribute alone (genl header + 16 bytes): no id.
        let cut = NlMsg {
            header: m.header,
            payload: &m.payload[..GENL_HDRLEN + 16],
        };
        assert!(matches!(
            decode_family(&cut),
            Err(DecodeError::Missing {
                what: "CTRL_ATTR_FAMILY_ID",
                ..
            })
        ));
        let short = NlMsg {
            header: m.header,
            payload: &m.payload[..2],
        };
        assert!(matches!(
            decode_family(&short),
            Err(DecodeError::Truncated { .. })
        ));
        // An attribute whose length runs past the message.
        let mut bad = m.payload[..GENL_HDRLEN + 8].to_vec();
        bad[GENL_HDRLEN] = 200;
        let bad = NlMsg {
            header: m.header,
            payload: &bad,
        };
        assert!(matches!(
            decode_family(&bad),
            Err(DecodeError::BadLength { .. })
        ));
    }
}
