//! The monitor hub: where the actors publish what they see, decide and send (kernel events,
//! decisions, commands, address changes) and where `mptcp-pmd monitor` clients subscribe.
//!
//! Publishing must cost nothing on the join path while nobody watches: [`Monitor::publish`]
//! first reads one atomic counter of subscribers and returns; only with a subscriber whose
//! filter wants the line is the line built (by the caller's closure) and encoded, once, then
//! shared by every subscriber that wants it.
//!
//! A slow or stuck reader never slows the daemon: each subscriber has its own queue of at most
//! [`QUEUE_LINES`] lines, filled without waiting; when it is full, new lines for that
//! subscriber are dropped and counted, and its writer (the control server's task, see
//! [`Subscription::next_batch`]) sends a `lost` line with the count, at the place where they
//! were dropped, before the next lines. At most [`MAX_MONITORS`] subscribers at once.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use mptcp_pmd_policies::Token;

use super::protocol::{Kind, MonitorFilter, MonitorLine};

/// Lines kept per subscriber while its reader is behind (then they are dropped and counted).
/// A connection makes 5-10 lines (events, decisions, commands), so this holds a burst of
/// 100-200 new connections; more than that is what the `lost` line is for.
pub const QUEUE_LINES: usize = 1024;

/// Subscribers at once; the next one is refused (`busy`).
pub const MAX_MONITORS: usize = 16;

/// The hub; cheap to clone (one `Arc`), shared by every publisher and the control server.
#[derive(Clone, Default)]
pub struct Monitor {
    hub: Arc<Hub>,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("subscribers", &self.hub.active.load(Ordering::Relaxed))
            .finish()
    }
}

#[derive(Default)]
struct Hub {
    /// Subscribers now: the one thing a publisher reads when nobody watches.
    active: AtomicUsize,
    next_id: AtomicU64,
    subs: Mutex<Vec<Sub>>,
}

struct Sub {
    id: u64,
    filter: MonitorFilter,
    queue: Arc<Queue>,
}

/// A lock that a panicking holder poisoned still guards consistent data here (a queue of
/// lines, a list of subscribers): use it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// One subscriber's queue.
struct Queue {
    state: Mutex<QueueState>,
    wake: tokio::sync::Notify,
}

#[derive(Default)]
struct QueueState {
    lines: VecDeque<Arc<str>>,
    lost: u64,
}

/// The wall clock as seconds since the epoch, to the microsecond (the monitor's `time`).
pub fn unix_time() -> f64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    d.as_secs() as f64 + f64::from(d.subsec_micros()) / 1e6
}

/// Why a subscription was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{MAX_MONITORS} monitors are attached already; try again when one has gone")]
pub struct TooManyMonitors;

impl Monitor {
    /// Whether anyone is subscribed (one relaxed atomic load).
    #[inline]
    pub fn active(&self) -> bool {
        self.hub.active.load(Ordering::Relaxed) != 0
    }

    /// Publish a line of `kind` about `token`: `line` builds it from the current time, and is
    /// called only if a subscriber wants it.
    #[inline]
    pub fn publish(&self, kind: Kind, token: Option<Token>, line: impl FnOnce(f64) -> MonitorLine) {
        if self.active() {
            self.publish_slow(kind, token, line);
        }
    }

    #[cold]
    fn publish_slow(
        &self,
        kind: Kind,
        token: Option<Token>,
        line: impl FnOnce(f64) -> MonitorLine,
    ) {
        let subs = lock(&self.hub.subs);
        let mut build = Some(line);
        let mut text: Option<Arc<str>> = None;
        for s in subs.iter().filter(|s| s.filter.matches(kind, token)) {
            if let Some(b) = build.take() {
                text = Some(Arc::from(b(unix_time()).to_line()));
            }
            if let Some(t) = &text {
                s.queue.push(t.clone());
            }
        }
    }

    /// Subscribe with `filter`; the subscription ends when the returned value is dropped.
    pub fn subscribe(&self, filter: MonitorFilter) -> Result<Subscription, TooManyMonitors> {
        let mut subs = lock(&self.hub.subs);
        if subs.len() >= MAX_MONITORS {
            return Err(TooManyMonitors);
        }
        let id = self.hub.next_id.fetch_add(1, Ordering::Relaxed);
        let queue = Arc::new(Queue {
            state: Mutex::new(QueueState::default()),
            wake: tokio::sync::Notify::new(),
        });
        subs.push(Sub {
            id,
            filter,
            queue: queue.clone(),
        });
        self.hub.active.store(subs.len(), Ordering::Relaxed);
        Ok(Subscription {
            hub: self.hub.clone(),
            id,
            queue,
        })
    }

    /// Subscribers now.
    pub fn subscribers(&self) -> usize {
        self.hub.active.load(Ordering::Relaxed)
    }
}

impl Queue {
    fn push(&self, line: Arc<str>) {
        {
            let mut q = lock(&self.state);
            if q.lines.len() >= QUEUE_LINES {
                q.lost = q.lost.saturating_add(1);
                return;
            }
            q.lines.push_back(line);
        }
        // A permit is stored if the writer is not waiting yet: no wake-up is lost.
        self.wake.notify_one();
    }
}

/// What a subscriber's writer sends next: the queued lines, then (if any were dropped after
/// them) how many were lost.
#[derive(Debug, Default)]
pub struct Batch {
    /// Encoded lines, each ending in a newline.
    pub lines: Vec<Arc<str>>,
    /// Lines dropped after these because the queue was full.
    pub lost: u64,
}

/// One subscriber: its queue until dropped.
pub struct Subscription {
    hub: Arc<Hub>,
    id: u64,
    queue: Arc<Queue>,
}

impl Subscription {
    /// Wait until there is something to send, and take it.
    pub async fn next_batch(&self) -> Batch {
        loop {
            if let Some(b) = self.try_batch() {
                return b;
            }
            self.queue.wake.notified().await;
        }
    }

    /// Take what is queued, if anything.
    pub fn try_batch(&self) -> Option<Batch> {
        let mut q = lock(&self.queue.state);
        if q.lines.is_empty() && q.lost == 0 {
            return None;
        }
        Some(Batch {
            lines: std::mem::take(&mut q.lines).into(),
            lost: std::mem::take(&mut q.lost),
        })
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut subs = lock(&self.hub.subs);
        subs.retain(|s| s.id != self.id);
        self.hub.active.store(subs.len(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoints::protocol::lost_line;

    fn line(n: u64) -> impl FnOnce(f64) -> MonitorLine {
        move |t| lost_line(t, n)
    }

    #[test]
    fn nothing_is_built_without_a_subscriber() {
        let m = Monitor::default();
        assert!(!m.active());
        m.publish(Kind::Event, None, |_| panic!("built a line nobody wants"));
        let sub = m
            .subscribe(MonitorFilter::new(&[Kind::Decision], None))
            .unwrap();
        assert!(m.active());
        // A subscriber that does not want events: still not built.
        m.publish(Kind::Event, None, |_| panic!("built a line nobody wants"));
        m.publish(Kind::Decision, Some(Token(1)), line(1));
        assert_eq!(sub.try_batch().unwrap().lines.len(), 1);
        drop(sub);
        assert!(!m.active(), "a dropped subscription leaves");
    }

    #[test]
    fn each_subscriber_gets_what_its_filter_wants_encoded_once() {
        let m = Monitor::default();
        let all = m.subscribe(MonitorFilter::default()).unwrap();
        let one = m
            .subscribe(MonitorFilter::new(&[], Some(Token(7))))
            .unwrap();
        let mut built = 0;
        m.publish(Kind::Command, Some(Token(7)), |t| {
            built += 1;
            lost_line(t, 0)
        });
        assert_eq!(built, 1, "built once for two subscribers");
        m.publish(Kind::Command, Some(Token(8)), line(0));
        m.publish(Kind::Address, None, line(0));
        let a = all.try_batch().unwrap();
        let o = one.try_batch().unwrap();
        assert_eq!((a.lines.len(), o.lines.len()), (3, 1));
        assert!(Arc::ptr_eq(&a.lines[0], &o.lines[0]), "one encoding shared");
        assert!(a.lines.iter().all(|l| l.ends_with('\n')));
        assert!(all.try_batch().is_none(), "taken");
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_the_count_comes_after_the_kept_lines() {
        let m = Monitor::default();
        let sub = m.subscribe(MonitorFilter::default()).unwrap();
        for i in 0..(QUEUE_LINES as u64 + 37) {
            m.publish(Kind::Event, None, line(i));
        }
        let b = sub.try_batch().unwrap();
        assert_eq!((b.lines.len(), b.lost), (QUEUE_LINES, 37));
        // The kept lines are the oldest, in order.
        let first: MonitorLine = serde_json::from_str(&b.lines[0]).unwrap();
        let last: MonitorLine = serde_json::from_str(&b.lines[QUEUE_LINES - 1]).unwrap();
        assert_eq!(
            (first.lines, last.lines),
            (Some(0), Some(QUEUE_LINES as u64 - 1))
        );
        // After the take, room again and no loss pending.
        m.publish(Kind::Event, None, line(1));
        let b = sub.try_batch().unwrap();
        assert_eq!((b.lines.len(), b.lost), (1, 0));
    }

    #[test]
    fn at_most_max_monitors() {
        let m = Monitor::default();
        let subs: Vec<_> = (0..MAX_MONITORS)
            .map(|_| m.subscribe(MonitorFilter::default()).unwrap())
            .collect();
        assert_eq!(
            m.subscribe(MonitorFilter::default()).err(),
            Some(TooManyMonitors)
        );
        drop(subs);
        assert_eq!(m.subscribers(), 0);
        assert!(m.subscribe(MonitorFilter::default()).is_ok());
    }

    #[test]
    fn next_batch_wakes_on_publish() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let m = Monitor::default();
        let sub = m.subscribe(MonitorFilter::default()).unwrap();
        let m2 = m.clone();
        let b = rt.block_on(async move {
            let waiter = async { sub.next_batch().await };
            let publisher = async {
                tokio::task::yield_now().await;
                m2.publish(Kind::Event, None, line(3));
            };
            let (b, ()) = tokio::join!(waiter, publisher);
            b
        });
        assert_eq!(b.lines.len(), 1);
    }
}
