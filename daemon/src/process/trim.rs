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
