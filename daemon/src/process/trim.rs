//! Giving freed heap back to the kernel after many connections closed. glibc's malloc keeps
//! freed memory mapped (fragmented between live chunks, in every thread's arena), so after a
//! burst of 10 000 connections the daemon's RSS would stay at its peak. [`TrimGate`] decides,
//! purely, when a `malloc_trim(0)` is worth it: the tracked count fell to half of its
//! high-water mark after a large peak, or to zero after a large peak since it was last zero
//! (the last halving trims at a few hundred connections, whose memory the last closes free);
//! [`release_free_memory`] does it, for every arena (a no-op on non-glibc builds such as the
//! static musl binary, whose allocator returns whole free groups on its own). The registry
//! trims again [`SETTLE`] after the last connection is gone, once the other actors (the policy
//! objects, the sampler's tables) have let go of theirs.
//!
//! [`tune_allocator`] sets glibc's malloc up for a long-running daemon before any thread
//! exists: one arena, and fixed mmap/trim thresholds (see its docs for the measurements).

/// Connections below which trimming is never worth a system call.
const MIN_PEAK: usize = 1000;

/// How long after the last connection is gone the registry trims once more.
pub const SETTLE: std::time::Duration = std::time::Duration::from_secs(1);

/// Tracks the high-water mark of tracked connections since the last trim, and since the count
/// was last zero.
#[derive(Debug, Default, Clone, Copy)]
pub struct TrimGate {
    peak: usize,
    since_zero: usize,
}

impl TrimGate {
    /// The tracked count is now `n`; returns whether to trim now.
    pub fn observe(&mut self, n: usize) -> bool {
        self.peak = self.peak.max(n);
        self.since_zero = self.since_zero.max(n);
        if n == 0 {
            let large = self.since_zero >= MIN_PEAK;
            self.peak = 0;
            self.since_zero = 0;
            return large;
        }
        if self.peak >= MIN_PEAK && n * 2 <= self.peak {
            self.peak = n;
            return true;
        }
        false
    }
}

/// Allocations of at least this many bytes get their own mapping (glibc `M_MMAP_THRESHOLD`).
pub const MMAP_THRESHOLD: i32 = 64 * 1024;

/// Free memory above this much at the top of the heap is returned at once
/// (glibc `M_TRIM_THRESHOLD`).
pub const TRIM_THRESHOLD: i32 = 128 * 1024;

/// Tune glibc's malloc for the daemon; call it before any thread is started. Three settings:
///
/// - one arena (`M_ARENA_MAX` 1): the helper threads (sock_diag, the log writer, the reload
///   reader) would otherwise each get an arena of their own whose freed pages mostly stay
///   mapped; the event loop does nearly all allocation, so the shared lock costs nothing
///   measurable;
/// - a fixed mmap threshold of [`MMAP_THRESHOLD`]: glibc raises it on its own (up to 32 MiB)
///   each time a large mapped block is freed, after which the large tables of 10 000
///   connections (hash maps, sampling buffers) land in the heap, where they fragment it and
///   cannot be returned; with it fixed they are mapped and unmapped whole;
/// - a fixed trim threshold of [`TRIM_THRESHOLD`] (glibc's default, kept from moving along
///   with the mmap threshold).
///
/// Measured with `mptcp-pm-bench --only scale` (glibc, 10 000 connections): fullmesh RSS 38.8
/// -> 29.7 MiB, rtt-based 52.1 -> 43.2 MiB, 4 s after all closed 12.4 -> 8.4 MiB.
///
/// An operator's own `GLIBC_TUNABLES` malloc settings win: when that variable names any
/// `glibc.malloc.` tunable nothing is changed. A no-op on other C libraries (the static musl
/// binary's allocator returns freed groups on its own). Returns whether the settings were made.
pub fn tune_allocator() -> bool {
    #[cfg(target_env = "gnu")]
    {
        let operator = std::env::var_os("GLIBC_TUNABLES")
            .is_some_and(|v| v.to_string_lossy().contains("glibc.malloc."));
        if operator {
            return false;
        }
        // SAFETY: mallopt only sets the allocator's parameters; called before threads start.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1) == 1
                && libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
        }
    }
    #[cfg(not(target_env = "gnu"))]
    {
        false
    }
}

/// Return free heap pages to the kernel (glibc `malloc_trim(0)`).
pub fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_once_per_halving_of_a_large_peak() {
        let mut g = TrimGate::default();
        // Small populations never trim.
        assert!((0..=999).all(|n| !g.observe(n)));
        assert!(!g.observe(0));
        // Up to 10 000, then down: a trim at each halving while the mark is >= 1 000.
        assert!((0..=10_000).all(|n| !g.observe(n)));
        let trims: Vec<usize> = (0..10_000).rev().filter(|&n| g.observe(n)).collect();
        // ... and once more when the last one is gone: the peak since zero was large.
        assert_eq!(trims, vec![5000, 2500, 1250, 625, 0]);
        assert!(!g.observe(0), "not again while nothing grew");
        // The marks were reset: growing again to 900 and closing them all does not trim.
        assert!((0..=900).all(|n| !g.observe(n)));
        assert!(!g.observe(0));
    }

    #[test]
    fn all_closed_after_a_large_peak_trims() {
        let mut g = TrimGate::default();
        assert!(!g.observe(2000));
        assert!(!g.observe(1500));
        assert!(g.observe(0));
        assert!(!g.observe(0));
    }
}
