//! Pure codec for the generic netlink controller (`nlctrl`, family id `GENL_ID_CTRL`): the
//! CTRL_CMD_GETFAMILY request that resolves a family name, and its reply (family id and
//! multicast groups). Ids are per kernel and boot: they are always resolved at run time
//! ([`crate::genl::resolve_family`]), never hard-coded. The controller's commands and
//! attributes are neli's (`CtrlCmd`, `CtrlAttr`, `CtrlAttrMcastGrp`); the reply's attributes
//! are walked without copies ([`crate::wire`]) and become a [`GenlFamilyInfo`] of our own.
//! Layout: `include/uapi/linux/genetlink.h`.

use neli::consts::genl::{CtrlAttr, CtrlAttrMcastGrp, CtrlCmd};
use neli::consts::nl::NlmF;
use neli::types::GenlBuffer;

use crate::error::{DecodeError, EncodeError};
use crate::wire::{attr, attrs, genl_header, genl_request, Message};

/// GENL_ID_CTRL: the controller's own family id (the `nlmsg_type` of its messages).
pub const GENL_ID_CTRL: u16 = libc::GENL_ID_CTRL as u16;

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
pub fn encode_get_family(name: &str, seq: u32) -> Result<Vec<u8>, EncodeError> {
    const WHAT: &str = "CTRL_CMD_GETFAMILY";
    let mut list = GenlBuffer::new();
    list.push(attr(WHAT, CtrlAttr::FamilyName, name)?);
    genl_request(
        WHAT,
        GENL_ID_CTRL,
        (CtrlCmd::Getfamily, CTRL_VERSION),
        NlmF::REQUEST | NlmF::ACK,
        seq,
        list,
    )
}

/// Decode a CTRL_CMD_NEWFAMILY reply. Unknown attributes (ops, policies) are ignored.
pub fn decode_family(msg: &Message<'_>) -> Result<GenlFamilyInfo, DecodeError> {
    const MSG: &str = "CTRL_CMD_NEWFAMILY";
    let (_, run) = genl_header(msg)?;
    let (mut id, mut name, mut version, mut groups) = (None, None, 0, Vec::new());
    for a in attrs(run) {
        let a = a?;
        match CtrlAttr::from(a.ty()) {
            CtrlAttr::FamilyId => id = Some(a.u16("CTRL_ATTR_FAMILY_ID")?),
            CtrlAttr::FamilyName => name = Some(a.string()),
            CtrlAttr::Version => version = a.u32("CTRL_ATTR_VERSION")?,
            CtrlAttr::McastGroups => {
                // An array: one nest per group, numbered from 1.
                for g in a.attrs() {
                    let (mut gname, mut gid) = (None, None);
                    for f in g?.attrs() {
                        let f = f?;
                        match CtrlAttrMcastGrp::from(f.ty()) {
                            CtrlAttrMcastGrp::Name => gname = Some(f.string()),
                            CtrlAttrMcastGrp::Id => gid = Some(f.u32("CTRL_ATTR_MCAST_GRP_ID")?),
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
    use crate::wire::{message, test_message, GENL_HDRLEN, NLMSG_HDRLEN};

    const REPLY: &[u8] = include_bytes!("../tests/fixtures/genl_ctrl/getfamily_mptcp_pm.bin");

    #[test]
    fn request_is_getfamily_with_the_name() {
        let r = encode_get_family("mptcp_pm", 1).unwrap();
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
        let m = message(REPLY).unwrap();
        assert_eq!(m.ty(), GENL_ID_CTRL);
        assert_eq!(m.payload()[0], u8::from(CtrlCmd::Newfamily));
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
        let m = message(REPLY).unwrap();
        // The same message with its payload replaced.
        let with = |payload: &[u8]| test_message(m.ty(), m.flags(), m.seq(), payload);
        // The name attribute alone (genl header + 16 bytes): no id.
        let cut = with(&m.payload()[..GENL_HDRLEN + 16]);
        assert!(matches!(
            decode_family(&message(&cut).unwrap()),
            Err(DecodeError::Missing {
                what: "CTRL_ATTR_FAMILY_ID",
                ..
            })
        ));
        let short = with(&m.payload()[..2]);
        assert!(matches!(
            decode_family(&message(&short).unwrap()),
            Err(DecodeError::Truncated { .. })
        ));
        // An attribute whose length runs past the message.
        let mut bad = m.payload()[..GENL_HDRLEN + 8].to_vec();
        bad[GENL_HDRLEN] = 200;
        let bad = with(&bad);
        assert!(matches!(
            decode_family(&message(&bad).unwrap()),
            Err(DecodeError::BadLength { .. })
        ));
    }
}
