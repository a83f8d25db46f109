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
//! [`reexec_without_tcache`] and [`tune_allocator`] set glibc's malloc up for a long-running
//! daemon before any thread exists: no per-thread cache of freed chunks, one arena, fixed
//! mmap/trim thresholds (see their docs for the measurements).

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

/// The glibc tunable that turns off the per-thread cache of freed chunks (see
/// [`reexec_without_tcache`]).
const TCACHE_OFF: &str = "glibc.malloc.tcache_count=0";

/// `GLIBC_TUNABLES`, when set and not empty.
#[cfg(target_env = "gnu")]
fn tunables() -> Option<String> {
    let v = std::env::var_os("GLIBC_TUNABLES")?;
    (!v.is_empty()).then(|| v.to_string_lossy().into_owned())
}

/// The operator's `GLIBC_TUNABLES`: [`tunables`] unless it is exactly what
/// [`reexec_without_tcache`] set. Any setting of theirs means their malloc settings, all of
/// them, are left alone (a simple rule: theirs and ours are never merged). glibc 2.36 leaves
/// only the first tunable visible in `/proc/PID/environ` once it has read them; the process
/// itself still sees the whole list.
#[cfg(target_env = "gnu")]
fn operator_tunables() -> Option<String> {
    tunables().filter(|v| v != TCACHE_OFF)
}

/// Start this program again, same PID, name and arguments, with glibc's per-thread cache of freed
/// chunks (tcache) turned off; call it before any thread exists. Returns only when it did not
/// re-execute: `None` when there is nothing to do (not glibc; `GLIBC_TUNABLES` is set, by
/// the operator or by this re-exec; a set-id or file-capability start, where glibc may drop
/// tunables), `Some(error)` when the exec failed (the daemon then runs with the cache on; only
/// the memory after a burst is larger).
///
/// Why: each thread's cache keeps up to 7 freed chunks of each of 64 sizes (up to ~450
/// chunks) that malloc counts as in use, so `malloc_trim` cannot return the pages they sit
/// on. After a burst those chunks are scattered over the whole heap: with 10 000 connections
/// come and gone the heap kept 2.6 MiB resident instead of 0.8 MiB (`mptcp-pm-bench --only
/// scale`, 4 s after the last close: 8.4 MiB RSS against 6.7 MiB with the cache off; CPU on
/// rtt-based at 10 000 connections 6.4 % both ways). glibc reads this setting only from the
/// environment at start, hence the exec; `mallopt` has no parameter for it.
pub fn reexec_without_tcache() -> Option<std::io::Error> {
    #[cfg(target_env = "gnu")]
    {
        use std::os::unix::process::CommandExt;
        if tunables().is_some() {
            return None;
        }
        // SAFETY: getauxval only reads the process's auxiliary vector.
        if unsafe { libc::getauxval(libc::AT_SECURE) } != 0 {
            return None;
        }
        let mut args = std::env::args_os();
        // The binary's own path (the link /proc/self/exe points to), not the link: the
        // process name (`ps`, `pgrep`, `killall`) is taken from the file name exec'd.
        let exe = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
        let mut cmd = std::process::Command::new(exe);
        if let Some(arg0) = args.next() {
            cmd.arg0(arg0);
        }
        let failed = cmd.args(args).env("GLIBC_TUNABLES", TCACHE_OFF).exec();
        // Before its execve, std set SIGPIPE back to the default (kill) in this process, for
        // the new image; the exec failed, so ignore it again as Rust programs do, or a broken
        // stderr would kill the daemon instead of failing a write.
        // SAFETY: setting a signal's disposition to SIG_IGN; no handler runs.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        }
        Some(failed)
    }
    #[cfg(not(target_env = "gnu"))]
    {
        let _ = TCACHE_OFF;
        None
    }
}

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
/// -> 29.7 MiB, rtt-based 52.1 -> 43.5 MiB, 4 s after all closed 12.4 -> 8.4 MiB.
///
/// Nothing is changed when the operator set `GLIBC_TUNABLES` (their malloc settings win), nor
/// on other C libraries (the static musl binary's allocator returns freed groups on its own).
/// Returns whether the settings were made.
pub fn tune_allocator() -> bool {
    #[cfg(target_env = "gnu")]
    {
        if operator_tunables().is_some() {
            return false;
        }
        [
            (libc::M_ARENA_MAX, 1),
            (libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD),
            (libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        ]
        .into_iter()
        // SAFETY: mallopt only sets the allocator's parameters; called before threads start.
        .all(|(param, value)| unsafe { libc::mallopt(param, value) } == 1)
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
