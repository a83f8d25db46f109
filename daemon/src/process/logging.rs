//! slog set-up: lines on stderr (journald keeps stderr) — terminal-style with structured
//! key-values by default (`log.format: term`, slog-term), or one JSON object per line
//! (`log.format: json`, slog-json: `ts` (Unix seconds), `level`, `msg`, then every key-value) —
//! and a level that a SIGHUP reload can change at run time. The format is fixed at start.
//!
//! Logging never blocks the event loop. Once [`start_writer`] ran (after the privilege drop:
//! the writer is a thread, and capabilities are per thread), a line is handed to a writer
//! thread (at nice 0, below the loop) through slog-async's bounded queue ([`QUEUE_LINES`]); when the queue is full
//! (stderr is not read fast enough) the line is dropped and counted
//! (`mptcp_pmd_log_lines_dropped_total`), and once the queue has room again the next line is
//! preceded by `N log lines dropped` (at most one such line every [`REPORT_EVERY`]). Only the
//! writer thread waits for stderr. Each line carries the time it was logged, not written.
//!
//! On the logging thread a line costs its level check, the clock, and slog-async's copy of the
//! record into owned values (the message and every non-numeric value formatted into strings);
//! the terminal or JSON formatting and the `write` happen on the writer thread.
//!
//! Before the writer starts (start-up, until the privilege drop) and after it stops (the end of
//! `run`: the queue is written out first, for at most [`STOP_WAIT`]), lines are written
//! directly by the thread that logs them; if the writer could not write its queue out in time,
//! later lines are dropped and counted rather than written past it.

use std::cell::Cell;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use slog::{
    BorrowedKV, Drain, Key, Level, Logger, OwnedKVList, Record, RecordStatic, Serializer, SingleKV,
    KV,
};
use slog_async::AsyncCore;

/// Lines that wait for the writer thread at most; a line that finds the queue full is dropped
/// and counted. At `log.level: debug` a new connection (fullmesh, two links) logs about five
/// lines, so the queue absorbs a burst of ~400 connections while the reader keeps up; its slots
/// (~100 bytes each) are allocated at start.
pub const QUEUE_LINES: usize = 2048;

/// At most one `N log lines dropped` line this often while lines keep being dropped.
pub const REPORT_EVERY: Duration = Duration::from_secs(1);

/// How long the end of `run` waits for the writer to write out its queue.
pub const STOP_WAIT: Duration = Duration::from_secs(2);

/// The writer thread's name (`/proc/<pid>/task/*/comm`).
pub const WRITER_THREAD: &str = "log-writer";

/// The key under which a queued line carries the time it was logged (Unix ns); the writer
/// takes it out before formatting.
const STAMP_KEY: Key = "mptcp_pmd_logged_at_ns";

/// Parse a level name as used in the config and on the command line.
pub fn parse_level(name: &str) -> Option<Level> {
    match name {
        "critical" => Some(Level::Critical),
        "error" => Some(Level::Error),
        "warning" | "warn" => Some(Level::Warning),
        "info" => Some(Level::Info),
        "debug" => Some(Level::Debug),
        "trace" => Some(Level::Trace),
        _ => None,
    }
}

/// A handle to change the level of a running logger.
#[derive(Debug, Clone)]
pub struct LevelHandle(Arc<AtomicUsize>);

impl LevelHandle {
    /// Set the most verbose level that is logged.
    pub fn set(&self, level: Level) {
        self.0.store(level.as_usize(), Ordering::Relaxed);
    }
}

/// Where formatted lines go: a fresh handle per formatter (stderr in the daemon, a pipe in
/// tests).
type Output = Arc<dyn Fn() -> Box<dyn Write + Send> + Send + Sync>;

/// Counters shared by the logging threads and the writer.
#[derive(Debug, Default)]
struct Counts {
    /// Lines accepted into the queue, since start.
    queued: AtomicU64,
    /// Lines the writer took off the queue (written or failed), since start.
    written: AtomicU64,
    /// Lines dropped (queue full, a failed write, or after an abandoned stop), since start.
    dropped: AtomicU64,
    /// Of them, not yet reported in a `N log lines dropped` line.
    unreported: AtomicU64,
    /// When the last report was queued (Unix ns).
    last_report_ns: AtomicU64,
    /// The writer wrote a line (wakes [`Pipeline::caught_up`]).
    progress: tokio::sync::Notify,
}

impl Counts {
    fn drop_lines(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
        self.unreported.fetch_add(n, Ordering::Relaxed);
    }

    fn is_caught_up(&self) -> bool {
        self.written.load(Ordering::Acquire) >= self.queued.load(Ordering::Acquire)
    }
}

/// The logger's drain and the writer: see the module docs.
struct Pipeline {
    format: mptcp_pmd_config::LogFormat,
    out: Output,
    /// The writer thread's queue, while it runs.
    queue: RwLock<Option<AsyncCore>>,
    /// The formatter for lines written directly (no writer running).
    direct: Mutex<Formatter>,
    /// A stop gave up on the writer's queue: write nothing more.
    abandoned: AtomicBool,
    counts: Arc<Counts>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("format", &self.format)
            .field("counts", &self.counts)
            .finish_non_exhaustive()
    }
}

fn unix_ns(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // A poisoned lock only means a thread panicked while holding it: the value is still whole.
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Queue `record` with the time it was logged; false if the queue is full (or the writer gone).
fn send(core: &AsyncCore, record: &Record<'_>, values: &OwnedKVList, at_ns: u64) -> bool {
    let rs = RecordStatic {
        location: record.location(),
        level: record.level(),
        tag: record.tag(),
    };
    let kv = (record.kv(), SingleKV(STAMP_KEY, at_ns));
    core.log(&Record::new(&rs, record.msg(), BorrowedKV(&kv)), values)
        .is_ok()
}

/// Call `f` with the `N log lines dropped` record (WARN, `lines` = n, no logger values).
fn with_report<R>(n: u64, f: impl FnOnce(&Record<'_>, &OwnedKVList) -> R) -> R {
    let rs = slog::record_static!(Level::Warning, "");
    let kv = SingleKV("lines", n);
    f(
        &Record::new(
            &rs,
            &format_args!("{n} log lines dropped (stderr was not read fast enough)"),
            BorrowedKV(&kv),
        ),
        &OwnedKVList::from(slog::o!()),
    )
}

impl Pipeline {
    fn new(format: mptcp_pmd_config::LogFormat, out: Output) -> Self {
        let direct = Mutex::new(Formatter::new(format, out()));
        Pipeline {
            format,
            out,
            queue: RwLock::new(None),
            direct,
            abandoned: AtomicBool::new(false),
            counts: Arc::default(),
        }
    }

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) {
        let queue = read(&self.queue);
        if let Some(core) = queue.as_ref() {
            let at_ns = unix_ns(SystemTime::now());
            if self.counts.unreported.load(Ordering::Relaxed) > 0 {
                self.report(core, at_ns);
            }
            if send(core, record, values, at_ns) {
                self.counts.queued.fetch_add(1, Ordering::Release);
            } else {
                self.counts.drop_lines(1);
            }
        } else if self.abandoned.load(Ordering::Relaxed)
            || lock(&self.direct).write(record, values).is_err()
        {
            self.counts.drop_lines(1);
        }
    }

    /// Queue `N log lines dropped` before the next line, if the last report is old enough.
    fn report(&self, core: &AsyncCore, at_ns: u64) {
        let last = self.counts.last_report_ns.load(Ordering::Relaxed);
        let every = u64::try_from(REPORT_EVERY.as_nanos()).unwrap_or(u64::MAX);
        if last != 0 && at_ns < last.saturating_add(every) {
            return;
        }
        let n = self.counts.unreported.swap(0, Ordering::Relaxed);
        if n == 0 {
            return;
        }
        if with_report(n, |record, values| send(core, record, values, at_ns)) {
            self.counts.queued.fetch_add(1, Ordering::Release);
            self.counts.last_report_ns.store(at_ns, Ordering::Relaxed);
        } else {
            self.counts.unreported.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Start the writer thread (once; later calls do nothing).
    fn start(&self) {
        let mut queue = self.queue.write().unwrap_or_else(|p| p.into_inner());
        if queue.is_some() || self.abandoned.load(Ordering::Relaxed) {
            return;
        }
        let writer = Writer {
            fmt: Formatter::new(self.format, (self.out)()),
            counts: self.counts.clone(),
            first: Cell::new(true),
        };
        *queue = Some(
            AsyncCore::custom(writer)
                .chan_size(QUEUE_LINES)
                .blocking(false)
                .thread_name(WRITER_THREAD.to_string())
                .build_no_guard(),
        );
    }

    /// Wait (without blocking the thread) until the writer wrote every line queued so far, at
    /// most `within`. True if it did (or no writer runs).
    async fn caught_up(&self, within: Duration) -> bool {
        let target = self.counts.queued.load(Ordering::Acquire);
        let counts = &self.counts;
        let wait = async {
            loop {
                let progress = counts.progress.notified();
                tokio::pin!(progress);
                progress.as_mut().enable();
                if counts.written.load(Ordering::Acquire) >= target {
                    return;
                }
                progress.await;
            }
        };
        tokio::time::timeout(within, wait).await.is_ok()
    }

    /// Block until the writer wrote out its queue, at most `within`. True if it did.
    fn drain_blocking(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.counts.is_caught_up() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Stop the writer: let it write out its queue (at most `within`), end its thread, and go
    /// back to direct writes (with what is still unreported). If the queue was not written out
    /// in time, the thread is left behind and later lines are dropped.
    fn stop(&self, within: Duration) {
        if read(&self.queue).is_none() {
            return;
        }
        let drained = self.drain_blocking(within);
        let core = self.queue.write().unwrap_or_else(|p| p.into_inner()).take();
        let Some(core) = core else { return };
        if drained && self.counts.is_caught_up() {
            // Sends the thread its end and joins it: its queue is empty.
            drop(core);
            let n = self.counts.unreported.swap(0, Ordering::Relaxed);
            if n > 0 {
                let _ = with_report(n, |record, values| lock(&self.direct).write(record, values));
            }
        } else {
            // The writer is stuck in a write: its thread dies with the process, and nothing
            // more is written (a direct write would block just the same).
            self.abandoned.store(true, Ordering::Relaxed);
            std::mem::forget(core);
        }
    }
}

/// The logger's drain: the level filter, then the pipeline.
struct Front {
    level: Arc<AtomicUsize>,
    /// A panic inside a drain leaves at worst a line half-written; the counters are atomics.
    pipeline: std::panic::AssertUnwindSafe<Arc<Pipeline>>,
}

impl Drain for Front {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
        if record.level().as_usize() <= self.level.load(Ordering::Relaxed) {
            self.pipeline.log(record, values);
        }
        Ok(())
    }
}

/// The writer thread's drain.
struct Writer {
    fmt: Formatter,
    counts: Arc<Counts>,
    /// No line written yet.
    first: Cell<bool>,
}

impl Drain for Writer {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
        if self.first.replace(false) {
            leave_the_loops_priority();
        }
        if self.fmt.write(record, values).is_err() {
            // A failed stderr is not fatal; there is nowhere else to say so but the count.
            self.counts.drop_lines(1);
        }
        self.counts.written.fetch_add(1, Ordering::Release);
        self.counts.progress.notify_waiters();
        Ok(())
    }
}

/// The writer thread inherited the event loop's scheduling (`kernel.nice`, default -20, and
/// possibly `kernel.realtime_priority`): it goes back to the normal scheduler at nice 0, so that
/// waking it for a line never makes it take the CPU from the loop (at the loop's weight it
/// did: +10 µs per join in the bench). A writer above its reader's priority (journald runs at
/// 0) would only fill the pipe sooner. Lowering a priority needs no capability.
fn leave_the_loops_priority() {
    let _ = crate::process::privs::set_normal_scheduler();
    // SAFETY: setpriority on the calling thread (who = 0) with integer arguments.
    let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 0) };
}

/// Formats and writes one line (term or JSON), stamped with the time the line was logged (the
/// queued line's stamp, else now).
struct Formatter(Box<dyn Drain<Ok = (), Err = io::Error> + Send>);

thread_local! {
    /// The time of the line being formatted on this thread, for the formats' timestamps.
    static STAMP: Cell<Option<SystemTime>> = const { Cell::new(None) };
}

fn stamp() -> SystemTime {
    STAMP.with(Cell::get).unwrap_or_else(SystemTime::now)
}

/// `Nov 28 04:08:05.648` in local time, as slog-term's own timestamps.
fn term_timestamp(w: &mut dyn Write) -> io::Result<()> {
    let t = chrono::DateTime::<chrono::Local>::from(stamp());
    write!(w, "{}", t.format("%b %d %H:%M:%S%.3f"))
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Critical => "critical",
        Level::Error => "error",
        Level::Warning => "warning",
        Level::Info => "info",
        Level::Debug => "debug",
        Level::Trace => "trace",
    }
}

/// Unix seconds with millisecond precision.
fn json_ts() -> f64 {
    stamp()
        .duration_since(UNIX_EPOCH)
        .map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0)
        .unwrap_or(0.0)
}

impl Formatter {
    fn new(format: mptcp_pmd_config::LogFormat, out: Box<dyn Write + Send>) -> Self {
        // One `write` per line: the formats flush at the end of each record.
        let out = io::BufWriter::with_capacity(8 * 1024, out);
        match format {
            mptcp_pmd_config::LogFormat::Json => Formatter(Box::new(
                slog_json::Json::new(out)
                    .set_newlines(true)
                    .set_flush(true)
                    .add_key_value(slog::o!(
                        "ts" => slog::FnValue(|_: &Record<'_>| json_ts()),
                        "level" => slog::FnValue(|r: &Record<'_>| level_name(r.level())),
                        "msg" => slog::PushFnValue(|r: &Record<'_>, s| s.emit(r.msg())),
                    ))
                    .build(),
            )),
            mptcp_pmd_config::LogFormat::Term => Formatter(Box::new(
                slog_term::FullFormat::new(slog_term::PlainDecorator::new(out))
                    .use_custom_timestamp(term_timestamp)
                    .build(),
            )),
        }
    }

    fn write(&self, record: &Record<'_>, values: &OwnedKVList) -> io::Result<()> {
        let mut found = FindStamp(None);
        let _ = record.kv().serialize(record, &mut found);
        let at = found.0.map(|ns| UNIX_EPOCH + Duration::from_nanos(ns));
        STAMP.with(|s| s.set(Some(at.unwrap_or_else(SystemTime::now))));
        let r = if at.is_some() {
            let rs = RecordStatic {
                location: record.location(),
                level: record.level(),
                tag: record.tag(),
            };
            let kv = WithoutStamp(record.kv());
            self.0
                .log(&Record::new(&rs, record.msg(), BorrowedKV(&kv)), values)
        } else {
            self.0.log(record, values)
        };
        STAMP.with(|s| s.set(None));
        r
    }
}

/// Finds a queued line's stamp.
struct FindStamp(Option<u64>);

impl Serializer for FindStamp {
    fn emit_u64(&mut self, key: Key, val: u64) -> slog::Result {
        if key == STAMP_KEY {
            self.0 = Some(val);
        }
        Ok(())
    }
    fn emit_arguments(&mut self, _: Key, _: &std::fmt::Arguments<'_>) -> slog::Result {
        Ok(())
    }
}

/// A line's key-values without its stamp.
struct WithoutStamp<'a>(BorrowedKV<'a>);

impl KV for WithoutStamp<'_> {
    fn serialize(&self, record: &Record<'_>, serializer: &mut dyn Serializer) -> slog::Result {
        self.0.serialize(record, &mut SkipStamp(serializer))
    }
}

/// Forwards every key-value but the stamp, with its type (a queued line's values are the
/// owned primitives and strings slog-async copied them into).
struct SkipStamp<'a>(&'a mut dyn Serializer);

macro_rules! forward {
    ($($f:ident: $t:ty),* $(,)?) => {
        $(fn $f(&mut self, key: Key, val: $t) -> slog::Result {
            if key == STAMP_KEY { Ok(()) } else { self.0.$f(key, val) }
        })*
    };
}

impl Serializer for SkipStamp<'_> {
    forward!(
        emit_usize: usize, emit_isize: isize, emit_bool: bool, emit_char: char,
        emit_u8: u8, emit_i8: i8, emit_u16: u16, emit_i16: i16, emit_u32: u32, emit_i32: i32,
        emit_f32: f32, emit_u64: u64, emit_i64: i64, emit_f64: f64, emit_str: &str,
        emit_arguments: &std::fmt::Arguments<'_>,
    );
    fn emit_unit(&mut self, key: Key) -> slog::Result {
        self.0.emit_unit(key)
    }
    fn emit_none(&mut self, key: Key) -> slog::Result {
        self.0.emit_none(key)
    }
}

/// The process's pipeline (see [`init`]).
static PIPELINE: OnceLock<Arc<Pipeline>> = OnceLock::new();

/// The root logger, writing to stderr in `format`, and the handle to change its level. Lines
/// are written directly until [`start_writer`]. Once per process: the pipeline is the
/// process's (a second call gets a logger of its own that [`start_writer`] does not start).
pub fn init(level: Level, format: mptcp_pmd_config::LogFormat) -> (Logger, LevelHandle) {
    let pipeline = Arc::new(Pipeline::new(
        format,
        Arc::new(|| Box::new(io::stderr()) as Box<dyn Write + Send>),
    ));
    if PIPELINE.set(pipeline.clone()).is_ok() {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // The lines that led to the panic first (unless the writer itself panicked).
            if std::thread::current().name() != Some(WRITER_THREAD) {
                if let Some(p) = PIPELINE.get() {
                    p.drain_blocking(STOP_WAIT);
                }
            }
            previous(info);
        }));
    }
    let handle = Arc::new(AtomicUsize::new(level.as_usize()));
    (root(&handle, pipeline), LevelHandle(handle))
}

fn root(level: &Arc<AtomicUsize>, pipeline: Arc<Pipeline>) -> Logger {
    let front = Front {
        level: level.clone(),
        pipeline: std::panic::AssertUnwindSafe(pipeline),
    };
    Logger::root(front.fuse(), slog::o!())
}

/// Stops the writer thread when dropped (see [`start_writer`]).
#[derive(Debug)]
#[must_use = "the writer stops when the guard is dropped"]
pub struct WriterGuard(Option<Arc<Pipeline>>);

impl Drop for WriterGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            p.stop(STOP_WAIT);
        }
    }
}

/// Start the writer thread of [`init`]'s logger (nothing if `init` was not called, e.g. a test
/// with a logger of its own). Call it after the privilege drop, as the thread inherits the
/// caller's capabilities. Dropping the guard writes out the queue (at most [`STOP_WAIT`]) and
/// ends the thread.
pub fn start_writer() -> WriterGuard {
    let p = PIPELINE.get().cloned();
    if let Some(p) = &p {
        p.start();
    }
    WriterGuard(p)
}

/// Wait (without blocking the thread) until every line logged so far is written, at most
/// `within`; true if it is. For READY=1: whoever reads it finds the `started` line written.
pub async fn caught_up(within: Duration) -> bool {
    match PIPELINE.get() {
        Some(p) => p.caught_up(within).await,
        None => true,
    }
}

/// Log lines dropped since start (`mptcp_pmd_log_lines_dropped_total`).
pub fn dropped_lines() -> u64 {
    PIPELINE
        .get()
        .map_or(0, |p| p.counts.dropped.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// A pipeline writing into a pipe, and the pipe's read end.
    fn piped(format: mptcp_pmd_config::LogFormat) -> (Arc<Pipeline>, io::PipeReader, Logger) {
        let (r, w) = io::pipe().unwrap();
        let w = Arc::new(w);
        let out: Output =
            Arc::new(move || Box::new(w.try_clone().unwrap()) as Box<dyn Write + Send>);
        let p = Arc::new(Pipeline::new(format, out));
        let level = Arc::new(AtomicUsize::new(Level::Debug.as_usize()));
        let log = root(&level, p.clone());
        (p, r, log)
    }

    /// Read whatever the pipe holds now (non-blocking).
    fn read_now(r: &mut io::PipeReader) -> String {
        use std::os::fd::AsRawFd;
        let fd = r.as_raw_fd();
        // SAFETY: fcntl on a descriptor we own.
        unsafe {
            let fl = libc::fcntl(fd, libc::F_GETFL);
            libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        String::from_utf8(out).unwrap()
    }

    fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_reader_that_stops_reading_never_blocks_the_logging_thread() {
        let (p, mut r, log) = piped(mptcp_pmd_config::LogFormat::Term);
        p.start();
        // Nobody reads: a pipe holds 64 KiB, the queue QUEUE_LINES more lines. Far more is
        // logged from another thread; if a line waited for the reader it would never finish.
        let (tx, rx) = std::sync::mpsc::channel();
        let l2 = log.clone();
        std::thread::spawn(move || {
            for i in 0..50_000u32 {
                slog::info!(l2, "line"; "i" => i, "pad" => "x".repeat(40));
            }
            let _ = tx.send(());
        });
        assert!(
            rx.recv_timeout(Duration::from_secs(60)).is_ok(),
            "logging blocked on a reader that does not read"
        );
        let dropped = p.counts.dropped.load(Ordering::Relaxed);
        assert!(dropped > 0, "nothing dropped with nobody reading");
        // The reader comes back: everything queued is written, and the next line is preceded
        // by the count of what was lost.
        let mut text = String::new();
        wait_until("the queue to be written out", || {
            text.push_str(&read_now(&mut r));
            p.counts.is_caught_up()
        });
        std::thread::sleep(REPORT_EVERY);
        slog::info!(log, "after the stall");
        wait_until("the line after the stall", || {
            text.push_str(&read_now(&mut r));
            text.contains("after the stall")
        });
        let lines: Vec<&str> = text.lines().collect();
        let reports: Vec<u64> = lines
            .iter()
            .filter(|l| l.contains(" WARN ") && l.contains("log lines dropped"))
            .map(|l| {
                let n = l.split("lines: ").nth(1).unwrap();
                n.trim().parse().unwrap()
            })
            .collect();
        assert_eq!(reports.iter().sum::<u64>(), dropped, "{reports:?}");
        let written = lines.iter().filter(|l| l.contains(" INFO line")).count() as u64;
        assert_eq!(written + dropped, 50_000, "every line written or counted");
        let last = lines.len() - 1;
        assert!(lines[last].contains("after the stall"), "{}", lines[last]);
        assert!(
            lines[last - 1].contains("log lines dropped"),
            "{}",
            lines[last - 1]
        );
        // Whole lines only, in order.
        let mut prev = None;
        for l in lines.iter().filter(|l| l.contains(" INFO line")) {
            let i: u32 = l
                .split("i: ")
                .nth(1)
                .unwrap()
                .split(',')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert!(prev.is_none_or(|p| p < i), "out of order: {l}");
            prev = Some(i);
        }
        p.stop(STOP_WAIT);
    }

    #[test]
    fn json_lines_have_ts_level_msg_and_typed_kvs_stamped_when_logged() {
        let (p, mut r, log) = piped(mptcp_pmd_config::LogFormat::Json);
        let log = log.new(slog::o!("actor" => "x"));
        // Direct (no writer yet): written at once.
        slog::warn!(log, "before \"start\""; "n" => 3u32);
        let direct = read_now(&mut r);
        let v: serde_json::Value = serde_json::from_str(direct.trim()).unwrap();
        assert_eq!(v["level"], "warning");
        assert_eq!(v["msg"], "before \"start\"");
        assert_eq!(v["n"], 3);
        assert_eq!(v["actor"], "x");

        p.start();
        let before = unix_ns(SystemTime::now()) as f64 / 1e9;
        slog::info!(log, "queued"; "n" => 3u32, "ok" => true, "f" => 0.5, "addr" => %"1.2.3.4", "s" => "str");
        let mut text = String::new();
        wait_until("the queued line", || {
            text.push_str(&read_now(&mut r));
            text.contains("queued")
        });
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["level"], "info");
        assert_eq!(v["msg"], "queued");
        assert_eq!(v["n"], 3);
        assert_eq!(v["ok"], true);
        assert_eq!(v["f"], 0.5);
        assert_eq!(v["addr"], "1.2.3.4");
        assert_eq!(v["s"], "str");
        assert_eq!(v["actor"], "x");
        assert!(v.get(STAMP_KEY).is_none(), "the stamp leaked: {text}");
        let ts = v["ts"].as_f64().unwrap();
        assert!(
            ts >= before - 0.001 && ts < before + 5.0,
            "{ts} vs {before}"
        );
        p.stop(STOP_WAIT);
    }

    #[test]
    fn a_queued_line_keeps_the_time_it_was_logged() {
        let (p, mut r, log) = piped(mptcp_pmd_config::LogFormat::Json);
        p.start();
        // Fill the pipe so that the writer blocks, then log the line to check.
        let pad = "y".repeat(1000);
        for _ in 0..200 {
            slog::info!(log, "filler"; "pad" => &pad);
        }
        let logged = unix_ns(SystemTime::now()) as f64 / 1e9;
        slog::info!(log, "stamped");
        std::thread::sleep(Duration::from_millis(1500));
        let mut text = String::new();
        wait_until("the stamped line", || {
            text.push_str(&read_now(&mut r));
            text.contains("stamped")
        });
        let line = text.lines().find(|l| l.contains("stamped")).unwrap();
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let ts = v["ts"].as_f64().unwrap();
        assert!(
            ts >= logged - 0.001 && ts < logged + 1.0,
            "stamped when written, not when logged: {ts} vs {logged}"
        );
        p.stop(STOP_WAIT);
    }

    #[test]
    fn term_lines_have_time_level_msg_and_kvs() {
        let (p, mut r, log) = piped(mptcp_pmd_config::LogFormat::Term);
        p.start();
        slog::info!(log.new(slog::o!("actor" => "x")), "started"; "adopted" => 2u32);
        let mut text = String::new();
        wait_until("the line", || {
            text.push_str(&read_now(&mut r));
            text.ends_with('\n')
        });
        // "Nov 28 04:08:05.648 INFO started, adopted: 2, actor: x"
        let words: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(words[3], "INFO", "{text}");
        assert!(
            words[2].len() == 12 && words[2].as_bytes()[2] == b':',
            "{text}"
        );
        assert!(
            text.contains("INFO started, adopted: 2, actor: x"),
            "{text}"
        );
        assert!(!text.contains(STAMP_KEY), "{text}");
        p.stop(STOP_WAIT);
    }

    #[test]
    fn stop_writes_out_the_queue_then_writes_directly() {
        let (p, mut r, log) = piped(mptcp_pmd_config::LogFormat::Term);
        p.start();
        // Read concurrently, so the queue can be written out.
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        });
        for i in 0..1000u32 {
            slog::info!(log, "queued"; "i" => i);
        }
        p.stop(STOP_WAIT);
        assert!(read(&p.queue).is_none());
        slog::crit!(log, "after stop");
        drop(log);
        let p = Arc::into_inner(p).unwrap();
        drop(p);
        let text = reader.join().unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1001, "{text}");
        assert!(lines[999].contains("i: 999"));
        assert!(lines[1000].contains("CRIT after stop"));
    }

    #[test]
    fn a_stop_with_a_stuck_reader_gives_up_and_drops_later_lines() {
        let (p, _r, log) = piped(mptcp_pmd_config::LogFormat::Term);
        p.start();
        let pad = "z".repeat(1000);
        for _ in 0..500 {
            slog::info!(log, "filler"; "pad" => &pad);
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let p2 = p.clone();
        std::thread::spawn(move || {
            p2.stop(Duration::from_millis(200));
            let _ = tx.send(());
        });
        assert!(
            rx.recv_timeout(Duration::from_secs(30)).is_ok(),
            "stop blocked on a stuck reader"
        );
        assert!(p.abandoned.load(Ordering::Relaxed));
        let before = p.counts.dropped.load(Ordering::Relaxed);
        slog::crit!(log, "not written, counted");
        assert_eq!(p.counts.dropped.load(Ordering::Relaxed), before + 1);
    }

    #[test]
    fn caught_up_waits_for_the_writer() {
        let (p, mut r, log) = piped(mptcp_pmd_config::LogFormat::Term);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // Nothing queued without a writer.
        assert!(rt.block_on(p.caught_up(Duration::from_millis(1))));
        p.start();
        let pad = "w".repeat(1000);
        for _ in 0..200 {
            slog::info!(log, "filler"; "pad" => &pad);
        }
        // The pipe is full: not caught up.
        assert!(!rt.block_on(p.caught_up(Duration::from_millis(100))));
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
        });
        assert!(rt.block_on(p.caught_up(Duration::from_secs(20))));
        p.stop(STOP_WAIT);
        drop(log);
        drop(Arc::into_inner(p));
        reader.join().unwrap();
    }

    #[test]
    fn levels_parse_and_the_handle_filters() {
        assert_eq!(parse_level("warn"), Some(Level::Warning));
        assert_eq!(parse_level("loud"), None);
        let (p, mut r, _) = piped(mptcp_pmd_config::LogFormat::Term);
        let level = Arc::new(AtomicUsize::new(Level::Info.as_usize()));
        let log = root(&level, p.clone());
        let handle = LevelHandle(level);
        slog::debug!(log, "hidden");
        handle.set(Level::Debug);
        slog::debug!(log, "shown");
        let text = read_now(&mut r);
        assert!(!text.contains("hidden") && text.contains("shown"), "{text}");
    }
}
