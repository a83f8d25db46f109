//! Shares of the subflow dump (pure): a [`PortWindow`] is the set of sockets whose
//! (local port, remote port) pair lies in one interval of their lexicographic order, and
//! [`PortWindow::bytecode`] is the `INET_DIAG_REQ_BYTECODE` program that makes the kernel
//! dump only those. [`port_windows`] cuts the port space into windows of about equal size
//! from the pairs seen in the previous dump: consecutive windows tile the whole space, so
//! every socket is in exactly one of them whatever changed since.
//!
//! Why: the kernel builds `tcp_info` and the ULP info for every socket a dump returns (~2 µs
//! per subflow on Linux 6.18, see [`WINDOW_SUBFLOWS`] and BENCHMARKS.md, "History", "sock_diag
//! at scale"), so one dump of 20 000 subflows holds the poller's thread 60-80 ms; a window bounds
//! that, and a filtered-out socket costs the kernel a few comparisons only. Pairs rather than local ports alone because on a server every
//! accepted subflow has the listener's port.
//!
//! The program format (`include/uapi/linux/inet_diag.h`, checked by `inet_diag_bc_audit` and
//! run by `inet_diag_bc_run` in `net/ipv4/inet_diag.c`): a sequence of 4-byte
//! `struct inet_diag_bc_op { u8 code; u8 yes; u16 no; }`; a port comparison is followed by a
//! second op whose `no` holds the port (host order). After an op the program continues `yes`
//! bytes further if its condition held, else `no` bytes further; ending exactly at the end
//! accepts the socket, ending 4 bytes beyond rejects it. The audit follows the `yes` offsets
//! and requires every `no` target to be one of the ops it visits, so `yes` always points to the
//! next op and `INET_DIAG_BC_JMP` (whose condition never holds) jumps to the end.

/// Subflows per window that keep one dump short. Measured on Linux 6.18 (2 vCPUs, bench scale
/// section: 20 000 subflows in the namespace and as many on its peer in the same kernel), one
/// window dump takes ~9 ms to walk the kernel's socket table plus ~1.9 µs per subflow it
/// reports: 10.8 ms for windows of 1 000, 13.0 ms for 2 000, 16.8 ms for 4 000 on a quiet
/// kernel; when its tables still hold the sockets of earlier work (the full bench, right after
/// its churn section) the walk grows and 4 000 took up to 27 ms. At this size a window stays
/// below the connections' own dump; the price is the walk once per window (10 per period at
/// 20 000 subflows, 5 at twice this size).
pub const WINDOW_SUBFLOWS: usize = 2048;

/// `INET_DIAG_REQ_BYTECODE`: the request attribute carrying the program.
pub const INET_DIAG_REQ_BYTECODE: u16 = 1;
/// `INET_DIAG_BC_JMP`: always continue at `no`.
pub const INET_DIAG_BC_JMP: u8 = 1;
/// `INET_DIAG_BC_S_GE`: local port >= value.
pub const INET_DIAG_BC_S_GE: u8 = 2;
/// `INET_DIAG_BC_S_LE`: local port <= value.
pub const INET_DIAG_BC_S_LE: u8 = 3;
/// `INET_DIAG_BC_D_GE`: remote port >= value.
pub const INET_DIAG_BC_D_GE: u8 = 4;
/// `INET_DIAG_BC_D_LE`: remote port <= value.
pub const INET_DIAG_BC_D_LE: u8 = 5;

/// A (local port, remote port) pair, ordered lexicographically.
pub type PortPair = (u16, u16);

/// The sockets whose port pair `p` has `from <= p < to` (no `to`: up to the last pair).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortWindow {
    /// First pair in the window.
    pub from: PortPair,
    /// First pair after it, if any.
    pub to: Option<PortPair>,
}

/// A rectangle of the port space: local ports `s.0..=s.1`, remote ports `d.0..=d.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PortBox {
    s: (u16, u16),
    d: (u16, u16),
}

const ANY: (u16, u16) = (0, u16::MAX);

impl PortBox {
    fn intersect(self, o: PortBox) -> Option<PortBox> {
        let s = (self.s.0.max(o.s.0), self.s.1.min(o.s.1));
        let d = (self.d.0.max(o.d.0), self.d.1.min(o.d.1));
        (s.0 <= s.1 && d.0 <= d.1).then_some(PortBox { s, d })
    }

    fn is_everything(self) -> bool {
        self.s == ANY && self.d == ANY
    }

    /// The comparisons that test it (the trivially true ones left out).
    fn tests(self) -> Vec<(u8, u16)> {
        let mut t = Vec::with_capacity(4);
        if self.s.0 > 0 {
            t.push((INET_DIAG_BC_S_GE, self.s.0));
        }
        if self.s.1 < u16::MAX {
            t.push((INET_DIAG_BC_S_LE, self.s.1));
        }
        if self.d.0 > 0 {
            t.push((INET_DIAG_BC_D_GE, self.d.0));
        }
        if self.d.1 < u16::MAX {
            t.push((INET_DIAG_BC_D_LE, self.d.1));
        }
        t
    }
}

/// The pairs `>= (s, d)` as rectangles.
fn at_least((s, d): PortPair) -> Vec<PortBox> {
    if d == 0 {
        return vec![PortBox {
            s: (s, u16::MAX),
            d: ANY,
        }];
    }
    let mut v = vec![PortBox {
        s: (s, s),
        d: (d, u16::MAX),
    }];
    if s < u16::MAX {
        v.push(PortBox {
            s: (s + 1, u16::MAX),
            d: ANY,
        });
    }
    v
}

/// The pairs `< (s, d)` as rectangles.
fn below((s, d): PortPair) -> Vec<PortBox> {
    let mut v = Vec::new();
    if s > 0 {
        v.push(PortBox {
            s: (0, s - 1),
            d: ANY,
        });
    }
    if d > 0 {
        v.push(PortBox {
            s: (s, s),
            d: (0, d - 1),
        });
    }
    v
}

impl PortWindow {
    /// Every socket.
    pub const ALL: PortWindow = PortWindow {
        from: (0, 0),
        to: None,
    };

    /// Whether a socket with local port `sport` and remote port `dport` is in the window.
    pub fn contains(&self, sport: u16, dport: u16) -> bool {
        (sport, dport) >= self.from && self.to.is_none_or(|to| (sport, dport) < to)
    }

    /// The window as a union of rectangles; empty if it holds nothing, one rectangle covering
    /// everything if it holds everything.
    fn boxes(&self) -> Vec<PortBox> {
        let upper = match self.to {
            Some(to) => below(to),
            None => vec![PortBox { s: ANY, d: ANY }],
        };
        let mut out = Vec::new();
        for a in at_least(self.from) {
            for b in &upper {
                if let Some(x) = a.intersect(*b) {
                    out.push(x);
                }
            }
        }
        out
    }

    /// The `INET_DIAG_REQ_BYTECODE` program that accepts exactly the window's sockets; `None`
    /// when it accepts every socket (no filter needed).
    pub fn bytecode(&self) -> Option<Vec<u8>> {
        let boxes = self.boxes();
        if boxes.iter().any(|b| b.is_everything()) {
            return None;
        }
        let clauses: Vec<Vec<(u8, u16)>> = boxes.iter().map(|b| b.tests()).collect();
        if clauses.is_empty() {
            // Nothing: one comparison that no port satisfies (local port >= 1 and <= 0).
            return Some(program(&[vec![
                (INET_DIAG_BC_S_GE, 1),
                (INET_DIAG_BC_S_LE, 0),
            ]]));
        }
        Some(program(&clauses))
    }
}

/// A program accepting the sockets that pass every comparison of at least one clause. Each
/// comparison is 8 bytes; every clause but the last ends with a 4-byte jump to the end.
fn program(clauses: &[Vec<(u8, u16)>]) -> Vec<u8> {
    let last = clauses.len().saturating_sub(1);
    let sizes: Vec<usize> = clauses
        .iter()
        .enumerate()
        .map(|(i, c)| c.len() * 8 + if i < last { 4 } else { 0 })
        .collect();
    let total: usize = sizes.iter().sum();
    let mut out = Vec::with_capacity(total);
    let mut start = 0;
    for (i, clause) in clauses.iter().enumerate() {
        let next = start + sizes[i];
        // A failed comparison goes to the next clause, or past the end (reject) in the last.
        let fail_to = if i < last { next } else { total + 4 };
        for &(code, port) in clause {
            let at = out.len();
            op(&mut out, code, 8, fail_to - at);
            op(&mut out, 0, 0, usize::from(port));
        }
        if i < last {
            let at = out.len();
            op(&mut out, INET_DIAG_BC_JMP, 4, total - at);
        }
        start = next;
    }
    out
}

fn op(out: &mut Vec<u8>, code: u8, yes: u8, no: usize) {
    out.push(code);
    out.push(yes);
    // Offsets and ports fit: a program is at most a few hundred bytes.
    out.extend_from_slice(&u16::try_from(no).unwrap_or(u16::MAX).to_ne_bytes());
}

/// Cut the port space into windows of about `per_window` sockets each, from the pairs seen in
/// the last dump (sorted here); one window ([`PortWindow::ALL`]) when they fit in one. Sockets
/// that appeared since land in whichever window holds their pair.
pub fn port_windows(seen: &mut [PortPair], per_window: usize) -> Vec<PortWindow> {
    let per_window = per_window.max(1);
    let n = seen.len();
    let k = n.div_ceil(per_window);
    if k <= 1 {
        return vec![PortWindow::ALL];
    }
    seen.sort_unstable();
    let mut bounds: Vec<PortPair> = (1..k).map(|j| seen[j * n / k]).collect();
    // Many sockets on one pair (rare: only different addresses tell them apart) cannot be
    // split: fewer, larger windows.
    bounds.dedup();
    bounds.retain(|b| *b > (0, 0));
    let mut out = Vec::with_capacity(bounds.len() + 1);
    let mut from = (0, 0);
    for b in bounds {
        out.push(PortWindow { from, to: Some(b) });
        from = b;
    }
    out.push(PortWindow { from, to: None });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `inet_diag_bc_run` for the port comparisons: true if the program accepts the socket.
    fn run(bc: &[u8], sport: u16, dport: u16) -> bool {
        let mut at = 0usize;
        let len = bc.len();
        while at < len {
            let code = bc[at];
            let yes = usize::from(bc[at + 1]);
            let no = usize::from(u16::from_ne_bytes([bc[at + 2], bc[at + 3]]));
            let value = || u16::from_ne_bytes([bc[at + 6], bc[at + 7]]);
            let holds = match code {
                INET_DIAG_BC_JMP => false,
                INET_DIAG_BC_S_GE => sport >= value(),
                INET_DIAG_BC_S_LE => sport <= value(),
                INET_DIAG_BC_D_GE => dport >= value(),
                INET_DIAG_BC_D_LE => dport <= value(),
                other => panic!("unexpected op {other}"),
            };
            at += if holds { yes } else { no };
        }
        at == len
    }

    /// `inet_diag_bc_audit` for the ops used here: what the kernel would refuse with EINVAL.
    fn audit(bc: &[u8]) -> Result<(), String> {
        let len = bc.len();
        // Offsets the `yes` chain visits: the only valid `no` targets besides the ends.
        let mut chain = Vec::new();
        let mut at = 0usize;
        while at < len {
            chain.push(at);
            let code = bc[at];
            let yes = usize::from(bc[at + 1]);
            let min = if code == INET_DIAG_BC_JMP { 4 } else { 8 };
            if len - at < min {
                return Err(format!("op at {at} is cut short"));
            }
            if yes < min || yes > len - at + 4 || yes % 4 != 0 {
                return Err(format!("bad yes {yes} at {at}"));
            }
            at += yes;
        }
        let mut at = 0usize;
        while at < len {
            let code = bc[at];
            let no = usize::from(u16::from_ne_bytes([bc[at + 2], bc[at + 3]]));
            let min = if code == INET_DIAG_BC_JMP { 4 } else { 8 };
            let rest = len - at;
            if no < min || no > rest + 4 || no % 4 != 0 {
                return Err(format!("bad no {no} at {at}"));
            }
            if no < rest && !chain.contains(&(at + no)) {
                return Err(format!("no {no} at {at} lands inside an op"));
            }
            at += usize::from(bc[at + 1]);
        }
        Ok(())
    }

    const PROBES: [u16; 12] = [
        0, 1, 2, 80, 443, 5201, 10_000, 32_767, 32_768, 60_999, 65_534, 65_535,
    ];

    fn check(w: PortWindow) {
        match w.bytecode() {
            None => assert_eq!(w, PortWindow::ALL, "only the whole space needs no filter"),
            Some(bc) => {
                audit(&bc).unwrap_or_else(|e| panic!("{w:?}: {e}"));
                for s in PROBES
                    .iter()
                    .chain(&[w.from.0])
                    .chain(w.to.as_ref().map(|t| &t.0))
                {
                    for d in PROBES
                        .iter()
                        .chain(&[w.from.1])
                        .chain(w.to.as_ref().map(|t| &t.1))
                    {
                        for (s, d) in [
                            (*s, *d),
                            (s.saturating_sub(1), *d),
                            (*s, d.saturating_add(1)),
                        ] {
                            assert_eq!(run(&bc, s, d), w.contains(s, d), "{w:?} on ({s}, {d})");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_port_range_compiles_to_the_kernels_two_comparisons() {
        // Local ports 10000..=20000, any remote: [(10000, 0), (20001, 0)).
        let w = PortWindow {
            from: (10_000, 0),
            to: Some((20_001, 0)),
        };
        let mut want = Vec::new();
        // S_GE 10000: yes -> next op, no -> reject (16 + 4 bytes ahead)
        want.extend([2u8, 8]);
        want.extend(20u16.to_ne_bytes());
        want.extend([0u8, 0]);
        want.extend(10_000u16.to_ne_bytes());
        // S_LE 20000: no -> reject (8 + 4 bytes ahead)
        want.extend([3u8, 8]);
        want.extend(12u16.to_ne_bytes());
        want.extend([0u8, 0]);
        want.extend(20_000u16.to_ne_bytes());
        assert_eq!(w.bytecode(), Some(want));
        check(w);
    }

    #[test]
    fn every_window_accepts_exactly_its_pairs_and_passes_the_audit() {
        let pairs = [
            (0, 0),
            (0, 1),
            (1, 0),
            (5201, 0),
            (5201, 40_000),
            (5201, 65_535),
            (10_000, 5201),
            (32_768, 443),
            (65_535, 0),
            (65_535, 65_534),
            (65_535, 65_535),
        ];
        for from in pairs {
            check(PortWindow { from, to: None });
            for to in pairs.iter().filter(|t| **t > from) {
                check(PortWindow {
                    from,
                    to: Some(*to),
                });
            }
        }
    }

    #[test]
    fn windows_tile_the_space_and_split_it_evenly() {
        // Client-side subflows: random local ports, one server port.
        let mut client: Vec<PortPair> = (0..10_000u32)
            .map(|i| (10_000 + ((i * 7919) % 55_000) as u16, 5201))
            .collect();
        // Server-side subflows: the listener's port, random remote ports.
        let mut server: Vec<PortPair> = (0..10_000u32)
            .map(|i| (5201, 10_000 + ((i * 104_729) % 55_000) as u16))
            .collect();
        for seen in [&mut client, &mut server] {
            let pairs: Vec<PortPair> = seen.clone();
            let w = port_windows(seen, 2_000);
            assert_eq!(w.len(), 5, "{w:?}");
            assert_eq!(w[0].from, (0, 0));
            assert_eq!(w.last().and_then(|l| l.to), None);
            for pair in w.windows(2) {
                assert_eq!(pair[0].to, Some(pair[1].from), "windows are adjacent");
            }
            for &(s, d) in &pairs {
                assert_eq!(w.iter().filter(|x| x.contains(s, d)).count(), 1);
            }
            for x in &w {
                let n = pairs.iter().filter(|&&(s, d)| x.contains(s, d)).count();
                assert!((1_900..=2_100).contains(&n), "{x:?} holds {n}");
                check(*x);
            }
        }
    }

    #[test]
    fn few_sockets_need_no_windows_and_one_crowded_pair_is_not_split() {
        let mut few = vec![(40_000, 5201); 100];
        assert_eq!(port_windows(&mut few, 2_000), vec![PortWindow::ALL]);
        let mut crowded = vec![(40_000, 5201); 5_000];
        crowded.extend((0..5_000u16).map(|i| (10_000 + i, 5201)));
        let w = port_windows(&mut crowded, 2_000);
        assert!(w.len() < 5, "{w:?}");
        let holding: Vec<_> = w.iter().filter(|x| x.contains(40_000, 5201)).collect();
        assert_eq!(holding.len(), 1);
    }

    #[test]
    fn an_empty_window_rejects_everything() {
        // Not produced by port_windows, but a program must never accept what is not asked.
        let w = PortWindow {
            from: (7, 7),
            to: Some((7, 7)),
        };
        let bc = w.bytecode().unwrap_or_default();
        audit(&bc).unwrap();
        for s in PROBES {
            for d in PROBES {
                assert!(!run(&bc, s, d));
            }
        }
    }
}
