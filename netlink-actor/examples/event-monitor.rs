//! Print the kernel's MPTCP path-manager events as they arrive (like `ip mptcp monitor`, but
//! through this crate's decoder).
//!
//! ```text
//! sudo ip netns exec NS cargo run -p mptcp-pmd-netlink --example event-monitor [-- --hex] [COUNT]
//! ```
//! `--hex` also prints each message's bytes; COUNT stops after that many events.

use std::process::ExitCode;

use netlink_actor::genl::PmEventSocket;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn main() -> ExitCode {
    let mut show_hex = false;
    let mut count: Option<usize> = None;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--hex" => show_hex = true,
            n => match n.parse() {
                Ok(n) => count = Some(n),
                Err(_) => {
                    eprintln!("usage: event-monitor [--hex] [COUNT]");
                    return ExitCode::from(2);
                }
            },
        }
    }
    let mut sock = match PmEventSocket::open(4 << 20) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("event-monitor: {e}");
            return ExitCode::FAILURE;
        }
    };
    let fam = sock.family();
    eprintln!(
        "listening: mptcp_pm family {:#x}, mptcp_pm_events group {}",
        fam.id, fam.events_group
    );
    let mut seen = 0usize;
    loop {
        match sock.recv_batch_raw() {
            Ok(batch) => {
                for ev in batch {
                    match &ev.decoded {
                        Ok(d) if d.unknown_attrs.is_empty() => println!("{:?}", d.event),
                        Ok(d) => println!("{:?} (unknown attrs {:?})", d.event, d.unknown_attrs),
                        Err(e) => println!("undecodable event: {e}"),
                    }
                    if show_hex {
                        println!("  {}", hex(&ev.bytes));
                    }
                    seen += 1;
                    if count.is_some_and(|c| seen >= c) {
                        return ExitCode::SUCCESS;
                    }
                }
            }
            Err(e) if e.lost_messages() => eprintln!("events were lost: {e}"),
            Err(e) => {
                eprintln!("event-monitor: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
}
