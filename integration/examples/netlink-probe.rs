//! What the kernel interfaces of mptcp-pmd do in this environment, through the crate's own
//! sockets: a real rtnetlink dump of the links and addresses (decoded by the crate's codec), and
//! whether the sock_diag and generic netlink (`mptcp_pm`) sockets open. Meant for qemu-user,
//! whose emulation passes only a few netlink protocols: `packaging/qemu-check.sh` runs the
//! aarch64 build of it in a network namespace of its own, as CI does.
//!
//! ```text
//! ip netns exec NS qemu-aarch64 target/aarch64-unknown-linux-musl/debug/examples/netlink-probe
//! ```
//! Prints one line per interface, then exits 0 if the rtnetlink dump worked and listed `lo`
//! with 127.0.0.1 (what mptcp-pmd's address tracking needs), 1 otherwise. The sock_diag and
//! mptcp_pm lines say "opens" or the error; they do not change the exit code.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a diagnostic tool

use std::net::{IpAddr, Ipv4Addr};
use std::process::ExitCode;

use netlink_actor::genl::PmClient;
use netlink_actor::rtnl::RtnlSocket;
use netlink_actor::sock_diag::DiagSocket;

fn main() -> ExitCode {
    let rtnl = (|| {
        let mut s = RtnlSocket::open()?;
        Ok::<_, netlink_actor::Error>((s.dump_links()?, s.dump_addrs()?))
    })();
    let ok = match rtnl {
        Ok((links, addrs)) => {
            println!(
                "rtnetlink (NETLINK_ROUTE): works: {} links, {} addresses (skipped: {} + {})",
                links.items.len(),
                addrs.items.len(),
                links.skipped,
                addrs.skipped
            );
            for l in &links.items {
                let a: Vec<String> = addrs
                    .items
                    .iter()
                    .filter(|a| a.if_index == l.index)
                    .map(|a| format!("{}/{}", a.addr, a.prefix_len))
                    .collect();
                println!("  {} {} up={} {}", l.index, l.name, l.up, a.join(" "));
            }
            let lo = links.items.iter().find(|l| l.name == "lo");
            let lo_v4 = lo.is_some_and(|lo| {
                addrs
                    .items
                    .iter()
                    .any(|a| a.if_index == lo.index && a.addr == IpAddr::V4(Ipv4Addr::LOCALHOST))
            });
            if !lo_v4 {
                println!("  error: no `lo` with 127.0.0.1 in the dump");
            }
            lo_v4
        }
        Err(e) => {
            println!("rtnetlink (NETLINK_ROUTE): fails: {e}");
            false
        }
    };
    match DiagSocket::open() {
        Ok(_) => println!("sock_diag (NETLINK_SOCK_DIAG): opens"),
        Err(e) => println!("sock_diag (NETLINK_SOCK_DIAG): fails: {e}"),
    }
    match PmClient::open() {
        Ok(_) => println!("mptcp_pm (NETLINK_GENERIC): opens"),
        Err(e) => println!("mptcp_pm (NETLINK_GENERIC): fails: {e}"),
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
