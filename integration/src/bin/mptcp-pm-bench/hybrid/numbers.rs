//! The numbers of a run, pure functions of its records: delays, goodput, gaps, the standby's
//! share, the return to the primary, and a run pair's [`Summary`].

use super::*;
/// Among the messages sent from `from` on: the largest one-way delay and how many took more
/// than [`LATE_MS`] (NaN and 0 for none).
pub(super) fn delays(msgs: &[(f64, f64)], from: f64) -> (f64, usize) {
    let after = msgs.iter().filter(|(sent, _)| *sent >= from);
    after.fold((f64::NAN, 0), |(max, late), (_, d)| {
        (
            if max.is_nan() { *d } else { max.max(*d) },
            late + usize::from(*d > LATE_MS),
        )
    })
}

/// Mbit/s read by the sink in `[from, to)`.
pub(super) fn goodput_mbit(reads: &[(f64, u64)], from: f64, to: f64) -> f64 {
    let bytes: u64 = reads
        .iter()
        .filter(|(t, _)| (from..to).contains(t))
        .map(|(_, n)| n)
        .sum();
    bytes as f64 * 8.0 / ((to - from) / 1e3) / 1e6
}

/// The longest time in `[from, to]` without a read by the sink: between two reads, or from
/// `from` to the first, or from the last to `to`.
pub(super) fn longest_gap(reads: &[(f64, u64)], from: f64, to: f64) -> f64 {
    let mut last = from;
    let mut gap: f64 = 0.0;
    for (t, _) in reads.iter().filter(|(t, _)| (from..=to).contains(t)) {
        gap = gap.max(t - last);
        last = *t;
    }
    gap.max(to - last)
}

/// The standby link's share of what the server's two links received in `[from, to]`, from
/// their counter samples `(t, primary, standby)` (None without two samples or bytes there).
pub(super) fn standby_share(dev: &[(f64, u64, u64)], from: f64, to: f64) -> Option<f64> {
    let first = dev.iter().find(|d| d.0 >= from)?;
    let last = dev.iter().rev().find(|d| d.0 <= to)?;
    let p = last.1.checked_sub(first.1)?;
    let s = last.2.checked_sub(first.2)?;
    (p + s > 0).then(|| s as f64 / (p + s) as f64)
}

/// Mbit/s the standby link received in `[from, to]`, from the counter samples `(t, primary,
/// standby)` nearest inside the window (None without two samples).
pub(super) fn standby_mbit(dev: &[(f64, u64, u64)], from: f64, to: f64) -> Option<f64> {
    let first = dev.iter().find(|d| d.0 >= from)?;
    let last = dev.iter().rev().find(|d| d.0 <= to)?;
    let bytes = last.2.checked_sub(first.2)?;
    (last.0 > first.0).then(|| bytes as f64 * 8.0 / ((last.0 - first.0) / 1e3) / 1e6)
}

/// How long after `heal` the primary carries the traffic again: the end of the first window
/// of [`BACK_WINDOW_MS`] starting at a counter sample after `heal` in which the primary link
/// received more than half of the bytes, and the two links at least [`BACK_MIN_BYTES`]
/// together. None if no such window within the samples.
pub(super) fn back_on_primary(dev: &[(f64, u64, u64)], heal: f64) -> Option<f64> {
    let after: Vec<&(f64, u64, u64)> = dev.iter().filter(|d| d.0 >= heal).collect();
    for (i, a) in after.iter().enumerate() {
        let Some(b) = after[i..].iter().find(|b| b.0 >= a.0 + BACK_WINDOW_MS) else {
            break;
        };
        let p = b.1.saturating_sub(a.1);
        let s = b.2.saturating_sub(a.2);
        if p + s >= BACK_MIN_BYTES && p > s {
            return Some(b.0 - heal);
        }
    }
    None
}

/// What one setup did in one case.
#[derive(Clone, Debug)]
pub(super) struct Summary {
    /// Interactive, from the first cut: max one-way delay, messages over 200 ms, lost.
    pub(super) max_delay: f64,
    pub(super) late: usize,
    pub(super) lost: usize,
    /// Interactive, before the first cut: max one-way delay.
    pub(super) calm_delay: f64,
    /// Bulk: the standby's share while the primary is healthy (1 s to the first cut).
    pub(super) share: Option<f64>,
    /// Bulk: goodput from the first cut to the last heal, Mbit/s.
    pub(super) goodput: f64,
    /// Bulk: from the last heal to the primary carrying the traffic (None: not in the run).
    pub(super) back: Option<f64>,
    /// Bulk: the longest time without goodput from the first cut to the end.
    pub(super) stall: f64,
    /// How long the run went on after the last heal (what `back` was given).
    pub(super) tail: f64,
    /// The daemon's decisions in the interactive and the bulk run.
    pub(super) decisions: [Vec<(f64, String)>; 2],
    /// Cut and heal instants of the interactive and the bulk run.
    pub(super) cuts: [Vec<(f64, f64)>; 2],
    /// Nft command times of both runs, ms.
    pub(super) cmd_ms: Vec<f64>,
    /// Packets the router dropped in both runs.
    pub(super) dropped: u64,
    /// Bulk: segments the server's MPTCP received twice.
    pub(super) dup: u64,
    /// Bulk: what the standby link carried from the first cut to the last heal (its interface
    /// counter at the server: IP packets, headers included), Mbit/s.
    pub(super) link: Option<f64>,
    /// Bulk: subflows destroyed per second while the primary was cut.
    pub(super) destroys: f64,
}

pub(super) fn summarize(i: &Record, b: &Record, sched: &Schedule) -> Summary {
    let end = ms(sched.end());
    let first_cut = |r: &Record| r.cuts.first().map_or(f64::NAN, |c| c.0);
    let last_heal = |r: &Record| r.cuts.last().map_or(f64::NAN, |c| c.1);
    let (max_delay, late) = delays(&i.msgs, first_cut(i));
    let (calm_delay, _) = delays(
        &i.msgs
            .iter()
            .copied()
            .filter(|m| m.0 < first_cut(i))
            .collect::<Vec<_>>(),
        0.0,
    );
    Summary {
        max_delay,
        late,
        lost: i.sent.saturating_sub(i.msgs.len()),
        calm_delay,
        share: standby_share(&b.dev, HEALTHY_FROM_MS, first_cut(b)),
        goodput: goodput_mbit(&b.reads, first_cut(b), last_heal(b)),
        back: back_on_primary(&b.dev, last_heal(b)),
        stall: longest_gap(&b.reads, first_cut(b), end),
        tail: end - last_heal(b),
        decisions: [i.decisions.clone(), b.decisions.clone()],
        cuts: [i.cuts.clone(), b.cuts.clone()],
        cmd_ms: i.cmd_ms.iter().chain(&b.cmd_ms).copied().collect(),
        dropped: i.dropped + b.dropped,
        dup: b.dup,
        link: standby_mbit(&b.dev, first_cut(b), last_heal(b)),
        destroys: b.destroys_cut as f64 / (b.cut_ms / 1e3),
    }
}
