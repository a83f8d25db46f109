//! What the kernel actors count, for the daemon's metrics: [`Stats`] is the trait the actors
//! call as things happen (events read, overruns, sock_diag polls, commands and their
//! timings), and the daemon implements it on its Prometheus registry. Calls are made where
//! they were made when the actors lived in the daemon, so every metric keeps its value; the
//! actors never read a metric back. `()` counts nothing (tests, examples).

use std::time::{Duration, Instant};

use super::sampler::TickReport;

/// The last kernel event that caused commands, as the command path traces it (see
/// [`Stats::last_event_trace`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTrace {
    /// The event was read.
    pub event_read: Instant,
    /// Its decision was applied to the connection.
    pub decided: Instant,
    /// Its first command was sent.
    pub first_sent: Instant,
    /// The kernel's answer to the first command was read.
    pub first_answered: Instant,
    /// Its last command (so far) was sent.
    pub last_sent: Instant,
    /// The kernel's answer to the last command was read.
    pub last_answered: Instant,
    /// The time spent inside its commands' send and answer calls, summed.
    pub in_calls: Duration,
    /// How many commands it caused.
    pub commands: u32,
}

/// The counts and timings the kernel actors report. Implementations must be cheap: the
/// command path calls them between two commands of one decision.
pub trait Stats: Send + Sync {
    /// A PM event was read: its name (`PmEvent::name`), or `malformed` for one that did not
    /// decode.
    fn event(&self, name: &str);
    /// The events socket overran (ENOBUFS): events were lost.
    fn overrun(&self);
    /// One sock_diag poll (a snapshot, the connections, or a sampling tick's lookups) took `took`.
    fn poll_duration(&self, took: Duration);
    /// A command caused by a kernel event is being sent, `since_event` after the event was read.
    fn event_to_command(&self, since_event: Duration);
    /// A command's result (`errno` 0: accepted; the kernel's errno, ETIMEDOUT for no answer or
    /// EIO for a local failure otherwise) and the time from its send to its answer.
    fn command(&self, name: &str, errno: i32, took: Duration);
    /// The kernel itself refused a command with `errno` (also counted by [`Stats::command`]).
    fn refusal(&self, name: &str, errno: i32);
    /// The trace of the last event that caused commands, updated after each of its commands.
    fn last_event_trace(&self, trace: &EventTrace);
    /// One tick of subflow sampling ([`super::sampler`]): what it did (connections, subflows,
    /// the achieved period per period asked for), and the time of its sock_diag polls.
    fn sample_tick(&self, _report: &TickReport, _took: Duration) {}
    /// The connections and subflows being sampled now.
    fn sampled(&self, _connections: usize, _subflows: usize) {}
    /// A sampling tick was postponed: the event loop had not consumed the previous ones yet.
    fn sample_held_back(&self) {}
}

/// Counts nothing.
impl Stats for () {
    fn event(&self, _name: &str) {}
    fn overrun(&self) {}
    fn poll_duration(&self, _took: Duration) {}
    fn event_to_command(&self, _since_event: Duration) {}
    fn command(&self, _name: &str, _errno: i32, _took: Duration) {}
    fn refusal(&self, _name: &str, _errno: i32) {}
    fn last_event_trace(&self, _trace: &EventTrace) {}
}
