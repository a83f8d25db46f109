//! A silent path failure on the router: nftables rules in the router's namespace that drop
//! everything it forwards from or to one of its interfaces while every link stays up (no
//! carrier change, no address change: only the missing ACKs tell the ends). [`PathCut`] keeps
//! one `nft -i` process for the router, so that a cut or a heal takes one write and one read
//! (a few ms) rather than an `nft` start (tens of ms on a loaded machine), and knows when the
//! kernel applied it: every command is followed by a `list table`, whose output comes only
//! after the command has been carried out.
//!
//! Needs the `nft` binary (Debian: `nftables`).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Stdio};
use std::time::Instant;

use crate::daemon::setns_command;
use crate::netns::{HarnessError, Netns};

/// The table the cut's rules live in (family `inet`: IPv4 and IPv6 alike).
pub const TABLE: &str = "mptcp_pmd_cut";

/// An `nft -i` in a router namespace with a forward-hook chain that drops what
/// [`PathCut::cut`] names, until [`PathCut::heal`]. The process ends on drop.
pub struct PathCut {
    child: Child,
    stdin: ChildStdin,
    out: BufReader<std::io::PipeReader>,
}

impl PathCut {
    /// Create the (empty, accepting) chain in `router` and start `nft -i` there.
    pub fn install(router: &Netns) -> Result<PathCut, HarnessError> {
        router.run(&["nft", "add", "table", "inet", TABLE])?;
        router.run(&[
            "nft",
            &format!(
                "add chain inet {TABLE} cut {{ type filter hook forward priority 0; policy accept; }}"
            ),
        ])?;
        let spawn_err = |source| HarnessError::Spawn {
            cmd: "nft -i".into(),
            source,
        };
        let (r, w) = std::io::pipe().map_err(spawn_err)?;
        let mut cmd = setns_command(router, "nft").map_err(spawn_err)?;
        cmd.arg("-i")
            .stdin(Stdio::piped())
            .stdout(w.try_clone().map_err(spawn_err)?)
            .stderr(w);
        let mut child = cmd.spawn().map_err(spawn_err)?;
        // Our copies of the write end go with `cmd`: EOF on `r` once nft exits.
        drop(cmd);
        let stdin = child.stdin.take().ok_or_else(|| HarnessError::Failed {
            cmd: "nft -i".into(),
            status: "no stdin".into(),
            stderr: String::new(),
        })?;
        Ok(PathCut {
            child,
            stdin,
            out: BufReader::new(r),
        })
    }

    /// Drop everything forwarded from or to the router's interface `router_if` (e.g. `rc0`,
    /// client link 0). Returns when the rules are in place.
    pub fn cut(&mut self, router_if: &str) -> Result<(), HarnessError> {
        // Both directions in one write: one round trip.
        self.command(&format!(
            "add rule inet {TABLE} cut iifname \"{router_if}\" counter drop\n\
             add rule inet {TABLE} cut oifname \"{router_if}\" counter drop"
        ))
        .map(drop)
    }

    /// Remove every drop rule (every cut heals). Returns when they are gone.
    pub fn heal(&mut self) -> Result<(), HarnessError> {
        self.command(&format!("flush chain inet {TABLE} cut"))
            .map(drop)
    }

    /// [`PathCut::cut`] or [`PathCut::heal`], timed: (when the command was sent, when the
    /// kernel had applied it). The change took effect somewhere in between.
    pub fn timed(&mut self, cut: Option<&str>) -> Result<(Instant, Instant), HarnessError> {
        let sent = Instant::now();
        match cut {
            Some(dev) => self.cut(dev)?,
            None => self.heal()?,
        }
        Ok((sent, Instant::now()))
    }

    /// The packets the drop rules have dropped since they were added (the sum of their
    /// counters).
    pub fn dropped_packets(&mut self) -> Result<u64, HarnessError> {
        // An empty command: the listing alone.
        let listing = self.command("")?;
        Ok(counter_packets(&listing))
    }

    /// Run one command, then `list table`: the listing proves the command was carried out.
    /// Returns what nft printed (the command's output, if any, and the listing); an `Error:`
    /// line fails.
    fn command(&mut self, cmd: &str) -> Result<String, HarnessError> {
        let failed = |stderr: String| HarnessError::Failed {
            cmd: format!("nft {cmd}"),
            status: "error".into(),
            stderr,
        };
        writeln!(self.stdin, "{cmd}\nlist table inet {TABLE}")
            .and_then(|()| self.stdin.flush())
            .map_err(|e| failed(e.to_string()))?;
        // The table exists (install made it), so its listing always comes, after the
        // command's own output (an error included).
        let mut text = String::new();
        let mut in_table = false;
        loop {
            let mut line = String::new();
            let n = self
                .out
                .read_line(&mut line)
                .map_err(|e| failed(e.to_string()))?;
            if n == 0 {
                return Err(failed(format!("nft exited; output so far: {text}")));
            }
            text.push_str(&line);
            if line.starts_with("table inet ") {
                in_table = true;
            }
            if in_table && line.trim_end() == "}" {
                break;
            }
        }
        if text.contains("Error:") {
            return Err(failed(text));
        }
        Ok(text)
    }
}

impl Drop for PathCut {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sum of the `counter packets N` of an nft listing.
pub fn counter_packets(listing: &str) -> u64 {
    listing
        .split("counter packets ")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_summed() {
        let l = "table inet mptcp_pmd_cut {\n\tchain cut {\n\t\ttype filter hook forward priority filter; policy accept;\n\t\tiifname \"rc0\" counter packets 12 bytes 900 drop\n\t\toifname \"rc0\" counter packets 3 bytes 180 drop\n\t}\n}\n";
        assert_eq!(counter_packets(l), 15);
        assert_eq!(counter_packets("table inet x {\n}\n"), 0);
    }
}
