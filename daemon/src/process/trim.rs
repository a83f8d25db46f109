//! Giving freed heap back to the kernel after many connections closed. glibc's malloc keeps
//! freed memory of the main heap mapped (fragmented between live chunks), so after a burst of
//! 10 000 connections the daemon's RSS would stay at its peak. [`TrimGate`] decides, purely, when
//! a `malloc_trim(0)` is worth it (the tracked count fell to half of its high-water mark or to
//! zero, after a large peak); [`release_free_memory`] does it (a no-op on non-glibc builds
//! such as the static musl binary, whose allocator returns memory on its own).

/// Connections below which trimming is never worth a system call.
const MIN_PEAK: usize = 1000;

/// Tracks the high-water mark of tracked connections since the last trim.
#[derive(Debug, Default, Clone, Copy)]
pub struct TrimGate {
    peak: usize,
}

impl TrimGate {
    /// The tracked count is now `n`; returns whether to trim now.
    pub fn observe(&mut self, n: usize) -> bool {
        self.peak = self.peak.max(n);
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
        assert_eq!(trims, vec![5000, 2500, 1250, 625]);
        // The mark was reset: growing again to 900 and closing them all does not trim.
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
