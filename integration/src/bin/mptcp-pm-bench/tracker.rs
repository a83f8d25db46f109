//! The bench's stopwatch: a listener on a namespace's `mptcp_pm` events that timestamps them on
//! receipt (a real-time thread), by connection token and local port, and wakes whoever waits
//! for a connection's joins.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use integration::Netns;
use mptcp_pmd_policies::model::PmEvent;
use netlink_actor::genl::PmEventSocket;
use netlink_actor::Error as GenlError;

/// One connection's ESTABLISHED and SUB_ESTABLISHED receipts.
#[derive(Default)]
struct ConnTrack {
    established: Option<Instant>,
    subs: Vec<Instant>,
}

/// What the listener has seen.
#[derive(Default)]
struct TrackState {
    by_token: HashMap<u32, ConnTrack>,
    by_port: HashMap<u16, u32>,
    /// Server-side ESTABLISHED, by the peer's (client's) port.
    accepted: HashMap<u16, Instant>,
    overruns: u64,
}

/// The listener of one namespace; stops when dropped.
pub struct Tracker {
    st: Mutex<TrackState>,
    cv: Condvar,
    stop: AtomicBool,
}

impl Tracker {
    /// Start listening in `ns` (returns once the socket is open).
    pub fn start(ns: &Netns) -> Arc<Tracker> {
        let tr = Arc::new(Tracker {
            st: Mutex::new(TrackState::default()),
            cv: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let t2 = tr.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        ns.exec_bg(move || {
            let mut sock = PmEventSocket::open(64 << 20).expect("events socket");
            let tv = libc::timeval {
                tv_sec: 0,
                tv_usec: 200_000,
            };
            // SAFETY: valid fd and option buffer.
            unsafe {
                libc::setsockopt(
                    std::os::fd::AsRawFd::as_raw_fd(&sock),
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    &tv as *const _ as *const libc::c_void,
                    std::mem::size_of::<libc::timeval>() as libc::socklen_t,
                );
            }
            // The tracker is the stopwatch: it timestamps events on receipt, so it must read them
            // the moment they arrive, not when the scheduler gets to it among 32 busy client
            // threads (which would compress or stretch both path managers' numbers at random).
            // SCHED_FIFO makes it run as soon as an event wakes it; its work per wake is tiny.
            let param = libc::sched_param { sched_priority: 50 };
            // SAFETY: sched_setscheduler on the calling thread with a valid parameter.
            let rt = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
            if rt != 0 {
                eprintln!(
                    "bench: event tracker not real-time ({}); timestamps may lag under load",
                    std::io::Error::last_os_error()
                );
            }
            let _ = tx.send(());
            while !t2.stop.load(Ordering::Relaxed) {
                match sock.recv_batch() {
                    Ok(evs) => {
                        let now = Instant::now();
                        let mut st = t2.st.lock().unwrap();
                        for ev in evs.into_iter().flatten() {
                            match ev.event {
                                PmEvent::Established(c) if !c.flags.server_side => {
                                    st.by_port.insert(c.local.port(), c.token.0);
                                    st.by_token.entry(c.token.0).or_default().established =
                                        Some(now);
                                }
                                PmEvent::Established(c) => {
                                    st.accepted.insert(c.remote.port(), now);
                                }
                                PmEvent::SubEstablished(s) => {
                                    st.by_token.entry(s.token.0).or_default().subs.push(now);
                                }
                                _ => {}
                            }
                        }
                        drop(st);
                        t2.cv.notify_all();
                    }
                    Err(GenlError::Overrun) => t2.st.lock().unwrap().overruns += 1,
                    Err(_) => {}
                }
            }
        })
        .unwrap();
        rx.recv().unwrap();
        tr
    }

    /// Wait until `found` finds something in the state, or `timeout` passes.
    fn wait<T>(&self, timeout: Duration, found: impl Fn(&TrackState) -> Option<T>) -> Option<T> {
        let end = Instant::now() + timeout;
        let mut st = self.st.lock().unwrap();
        loop {
            if let Some(v) = found(&st) {
                return Some(v);
            }
            let now = Instant::now();
            if now >= end {
                return None;
            }
            st = self.cv.wait_timeout(st, end - now).unwrap().0;
        }
    }

    /// Wait until the connection with local port `port` has `subs` joined subflows; returns
    /// (its ESTABLISHED, the `subs`-th SUB_ESTABLISHED).
    pub fn wait_sub(
        &self,
        port: u16,
        subs: usize,
        timeout: Duration,
    ) -> Option<(Instant, Instant)> {
        self.wait(timeout, |st| {
            let c = st.by_port.get(&port).and_then(|t| st.by_token.get(t))?;
            Some((c.established?, *c.subs.get(subs.checked_sub(1)?)?))
        })
    }

    /// Wait until the connection with local port `port` has `subs` joined subflows; returns
    /// ESTABLISHED -> last SUB_ESTABLISHED.
    pub fn wait_joins(&self, port: u16, subs: usize, timeout: Duration) -> Option<Duration> {
        self.wait_sub(port, subs, timeout)
            .map(|(est, last)| last.saturating_duration_since(est))
    }

    /// When this (server) namespace reported ESTABLISHED for the connection from peer port
    /// `peer_port`.
    pub fn wait_accepted(&self, peer_port: u16, timeout: Duration) -> Option<Instant> {
        self.wait(timeout, |st| st.accepted.get(&peer_port).copied())
    }

    /// Drop what was seen of the connection with local (or peer) port `port`.
    pub fn forget(&self, port: u16) {
        let mut st = self.st.lock().unwrap();
        st.accepted.remove(&port);
        if let Some(t) = st.by_port.remove(&port) {
            st.by_token.remove(&t);
        }
    }

    /// Overruns of the listener's own socket (events it missed).
    pub fn overruns(&self) -> u64 {
        self.st.lock().unwrap().overruns
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
