//! The section's tables and its targets, rendered from the [`super::Results`].

use super::*;

pub(super) fn opt_ms(v: Option<f64>, tail: f64) -> String {
    v.map_or_else(
        || format!("> {:.0} (not in the run)", tail),
        |v| format!("{v:.0}"),
    )
}

/// The daemon's decisions of a run: the count of each reason, and when the key ones came
/// (`failover` and `stalled` after the first cut, `handback` after the last heal).
pub(super) fn decisions_cell(d: &[(f64, String)], cuts: &[(f64, f64)]) -> String {
    if d.is_empty() {
        return "none".into();
    }
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for (_, r) in d {
        *counts.entry(r.as_str()).or_default() += 1;
    }
    let mut cell: Vec<String> = counts.iter().map(|(r, n)| format!("{r} {n}")).collect();
    let first_cut = cuts.first().map_or(f64::NAN, |c| c.0);
    let last_heal = cuts.last().map_or(f64::NAN, |c| c.1);
    let first = |code: &str, from: f64| {
        d.iter()
            .find(|(t, r)| r == code && *t >= from)
            .map(|(t, _)| t - from)
    };
    for (code, from, what) in [
        ("stalled", first_cut, "cut"),
        ("failover", first_cut, "cut"),
        ("handback", last_heal, "last heal"),
    ] {
        if let Some(t) = first(code, from) {
            cell.push(format!("first {code} {what} + {t:.0} ms"));
        }
    }
    cell.join(", ")
}

pub(super) fn render(r: &Results) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "## g. Hybrid access: a silent primary failure\n\n\
         Issue 17's scenario. The client has two links shaped with tbf 20 mbit (burst 64 KiB, \
         latency 20 ms): the primary (link 0, where every connection starts) and the standby \
         (link 1). The router silently drops everything it forwards from or to the primary's \
         link (nftables; the link stays up); the server's two links each receive what one \
         client path delivered (a route by source on the router), and their byte counters, \
         sampled every 10 ms, split the bulk bytes by path. Setups, interleaved run by run: \
         the in-kernel PM with the standby endpoint `subflow backup`; mptcp-pmd `fullmesh` with \
         `addresses.backup_interfaces: [c1]`; mptcp-pmd `active-standby` with the shipped \
         `packaging/examples/hybrid-access.yaml` (`standby_interfaces: [c1]`). Each run is a \
         fresh connection:\n\n\
         - **interactive**: a 64-byte message every 10 ms (TCP_NODELAY) carrying its send time; \
         one-way delay = receive time - send time (one CLOCK_MONOTONIC for all namespaces); max \
         and count over 200 ms among the messages sent from the first cut to the end of the run \
         (4 s after the last heal); *lost*: sent but never received;\n\
         - **bulk** upload into a sink that time-stamps every read: the standby's share of the \
         bytes from 1 s to the first cut; goodput from the first cut to the last heal, next to \
         what the standby link carried meanwhile (its counter at the server, headers included; \
         in the single outage all the goodput crosses it, so the difference is headers and data \
         sent twice) and the subflows the client destroyed per second \
         while the primary was cut (`MPTcpExtRmSubflow`: each destroy makes the kernel resend \
         its whole MPTCP-level retransmit queue); *back on \
         primary*: from the last heal to the end of the first 50 ms window in which the \
         primary's link received more than half of the bytes (and both together at least \
         16 KiB); *longest stall*: the longest time without a read from the first cut to the \
         end; *data sent twice*: the server's `MPTcpExtDuplicateData` over the bulk run \
         (segments its MPTCP received again: what the client re-sent at the MPTCP level).\n\n\
         Cut and heal = when the command went to the router's nft (it took effect within the \
         command's time, given under each table; every window starts there, so neither the \
         outage's delays nor *back on primary* are under-estimated). The bench's threads and \
         nft run at nice -20, as the daemon does. Load average at the end: {}.\n",
        r.load
    );
    for c in &r.cases {
        let _ = writeln!(md, "### {}\n", c.title);
        let _ = writeln!(
            md,
            "| setup | max delay before the cut (ms) | max delay (ms) | messages > 200 ms | lost | standby share while healthy | goodput, cut to heal (Mbit/s) | standby link, cut to heal (Mbit/s) | destroys per s while cut | back on primary after the {}heal (ms) | longest stall (ms) | data sent twice (segments) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            if c.sched.cuts.len() > 1 { "last " } else { "" }
        );
        for (setup, s) in &c.rows {
            let _ = writeln!(
                md,
                "| {} | {:.0} | {:.0} | {} | {} | {} | {:.1} | {} | {:.1} | {} | {:.0} | {} |",
                setup.name(),
                s.calm_delay,
                s.max_delay,
                s.late,
                s.lost,
                s.share
                    .map_or_else(|| "?".into(), |v| format!("{:.1} %", v * 100.0)),
                s.goodput,
                s.link.map_or_else(|| "?".into(), |v| format!("{v:.1}")),
                s.destroys,
                opt_ms(s.back, s.tail),
                s.stall,
                s.dup
            );
        }
        let mut cmd: Vec<f64> = c.rows.iter().flat_map(|(_, s)| s.cmd_ms.clone()).collect();
        cmd.sort_by(f64::total_cmp);
        let dropped: u64 = c.rows.iter().map(|(_, s)| s.dropped).sum();
        let _ = writeln!(
            md,
            "\nThe daemon's decisions (reason: count, and when; from its log, time-stamped on \
             receipt). nft cut/heal commands took {:.1}-{:.1} ms; the router dropped {dropped} \
             packets in these runs.\n\n| setup | interactive run | bulk run |\n|---|---|---|",
            cmd.first().copied().unwrap_or(f64::NAN),
            cmd.last().copied().unwrap_or(f64::NAN)
        );
        for (setup, s) in c.rows.iter().filter(|(s, _)| *s != Setup::Kernel) {
            let _ = writeln!(
                md,
                "| {} | {} | {} |",
                setup.short(),
                decisions_cell(&s.decisions[0], &s.cuts[0]),
                decisions_cell(&s.decisions[1], &s.cuts[1])
            );
        }
        let _ = writeln!(md);
    }
    md.push_str(&targets(r));
    md
}

/// Issue 17's targets for each active-standby setup, next to every setup's value.
pub(super) fn targets(r: &Results) -> String {
    let mut md = String::new();
    let Some(first) = r.cases.first() else {
        return md;
    };
    let setups: Vec<Setup> = first.rows.iter().map(|(s, _)| *s).collect();
    let judged: Vec<Setup> = setups
        .iter()
        .copied()
        .filter(|s| matches!(s, Setup::ActiveStandby(_)))
        .collect();
    let _ = write!(md, "### Targets (issue 17)\n\n| target |");
    for s in &setups {
        let _ = write!(md, " {} |", s.short());
    }
    for s in &judged {
        let _ = write!(md, " verdict: {} |", s.short());
    }
    let _ = write!(md, "\n|---|");
    for _ in 0..setups.len() + judged.len() {
        let _ = write!(md, "---|");
    }
    let _ = writeln!(md);
    fn kernel(c: &Case) -> Option<&Summary> {
        c.rows
            .iter()
            .find(|(s, _)| *s == Setup::Kernel)
            .map(|x| &x.1)
    }
    let mut line = |what: String,
                    cell: &dyn Fn(&Summary) -> String,
                    ok: &dyn Fn(&Summary, Option<&Summary>) -> bool,
                    c: &Case| {
        let _ = write!(md, "| {what} |");
        for (_, s) in &c.rows {
            let _ = write!(md, " {} |", cell(s));
        }
        for j in &judged {
            if let Some((_, s)) = c.rows.iter().find(|(x, _)| x == j) {
                let _ = write!(md, " {} |", verdict(ok(s, kernel(c))));
            }
        }
        let _ = writeln!(md);
    };
    for c in &r.cases {
        line(
            format!("{}: max one-way delay <= 250 ms", c.key),
            &|s| format!("{:.0} ms", s.max_delay),
            &|s, _| s.max_delay <= 250.0 && s.lost == 0,
            c,
        );
        line(
            format!("{}: <= 5 messages over 200 ms", c.key),
            &|s| s.late.to_string(),
            &|s, _| s.late <= 5 && s.lost == 0,
            c,
        );
        if c.key == "single" {
            line(
                "standby <= 2 % of the bulk bytes while healthy".into(),
                &|s| {
                    s.share
                        .map_or_else(|| "?".into(), |v| format!("{:.1} %", v * 100.0))
                },
                &|s, _| s.share.is_some_and(|v| v <= 0.02),
                c,
            );
            line(
                "traffic back on the primary <= 700 ms after it heals".into(),
                &|s| {
                    s.back
                        .map_or_else(|| "never".into(), |v| format!("{v:.0} ms"))
                },
                &|s, _| s.back.is_some_and(|v| v <= 700.0),
                c,
            );
        }
        line(
            format!("{}: bulk stall no worse than the in-kernel PM's", c.key),
            &|s| format!("{:.0} ms", s.stall),
            &|s, k| k.is_some_and(|k| s.stall <= k.stall),
            c,
        );
    }
    let _ = writeln!(
        md,
        "\nA lost message fails the delay targets. The bulk-stall comparison is within this \
         run (the in-kernel PM's stall on the same machine at the same time).\n"
    );
    md
}
