//! Captures the kernel's verdicts and controller replies, one netlink message per file: the
//! seed corpus of the `netlink_framing` and `genl_ctrl` fuzz targets (`fuzz/corpus/`).
//!
//! ```text
//! sudo unshare -n cargo run -p mptcp-pmd-netlink --example capture-replies -- fuzz/corpus
//! ```
//! As root (SET_LIMITS), in a fresh network namespace (nothing of the host's is touched). It
//! writes `<dir>/netlink_framing/`: an ACK, a command refused with an extended ACK (REMOVE of an
//! unknown token: EINVAL, "invalid token"), a GET_ADDR dump that fails in its NLMSG_DONE (with
//! the text), a GET_LIMITS reply and a refused controller request (ENOENT); and
//! `<dir>/genl_ctrl/`: the controller's description of `nlctrl` and `mptcp_pm`.

use std::path::{Path, PathBuf};

use mptcp_pmd_policies::{PmCommand, Token};
use netlink_actor::genl::{PmClient, Traced};
use netlink_actor::genl_ctrl::encode_get_family;
use netlink_actor::transport::Transport;

type BoxError = Box<dyn std::error::Error>;

/// Writes each received message of `trace` as `<dir>/<name>_<i>.bin`.
fn save(dir: &Path, name: &str, trace: Vec<Traced>) -> Result<(), BoxError> {
    let received = trace.into_iter().filter_map(|t| match t {
        Traced::Received(bytes) => Some(bytes),
        Traced::Sent(_) => None,
    });
    for (i, bytes) in received.enumerate() {
        let path = dir.join(format!("{name}_{i}.bin"));
        std::fs::write(&path, bytes)?;
        println!("{}", path.display());
    }
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/corpus".into()),
    );
    let framing = out.join("netlink_framing");
    let ctrl_dir = out.join("genl_ctrl");
    std::fs::create_dir_all(&framing)?;
    std::fs::create_dir_all(&ctrl_dir)?;

    let mut pm = PmClient::open()?;
    pm.set_trace(true);
    let limits = pm.get_limits()?;
    save(&framing, "get_limits_reply_and_ack", pm.take_trace())?;
    pm.set_limits(&limits)?;
    save(&framing, "set_limits_ack", pm.take_trace())?;
    let unknown = Token(0x1234_5678);
    let refused = pm.execute(&PmCommand::Remove {
        token: unknown,
        id: 5,
    });
    println!("REMOVE of an unknown token: {refused:?}");
    save(&framing, "remove_refused_ext_ack", pm.take_trace())?;
    let failed = pm.get_addrs(Some(unknown));
    println!("GET_ADDR of an unknown token: {failed:?}");
    save(&framing, "get_addr_failed_done", pm.take_trace())?;

    let mut ctrl = Transport::open(libc::NETLINK_GENERIC, "controller")?;
    ctrl.set_trace(true);
    for (family, file, dir) in [
        ("nlctrl", "getfamily_nlctrl", &ctrl_dir),
        ("mptcp_pm", "getfamily_mptcp_pm", &ctrl_dir),
        ("no_such_family", "getfamily_enoent", &framing),
    ] {
        let seq = ctrl.next_seq();
        let res = ctrl.request(
            "CTRL_CMD_GETFAMILY",
            seq,
            &encode_get_family(family, seq)?,
            |_| Ok(()),
        );
        println!("CTRL_CMD_GETFAMILY {family}: {res:?}");
        save(dir, file, ctrl.take_trace())?;
    }
    Ok(())
}
