//! [`Connection`]: the per-connection subflow state machine, the heart of the daemon.
//!
//! It owns one MPTCP connection's view of the world: the connection's description (from CREATED /
//! ESTABLISHED), the peer's addresses, every subflow we asked for or saw (pending, requested,
//! established, closed, failed), the local address ids it handed to the kernel, per-path failure
//! counts with exponential backoff, and the queue of kernel commands still to send.
//!
//! It is sans-IO, in the style of quinn-proto: inputs arrive through `handle_*` methods, each with
//! the current time; outputs leave through [`Connection::poll_command`] (commands to send, in
//! order) and [`Connection::poll_timeout`] (the next instant [`Connection::handle_timeout`] must be
//! called). It never reads the clock and never touches a socket, so every transition is testable.
//!
//! Decisions worth knowing (documented once here):
//! - CREATED already records the initial subflow as `Established`: the kernel emits CREATED once
//!   the initial subflow's TCP handshake completed. What ESTABLISHED adds is MPTCP-level full
//!   establishment, which gates joins: [`Connection::is_established`] turns true only then, and
//!   `Open` decisions before it are ignored.
//! - `Close` marks the subflow `closing` at once (it stops counting as live, so a policy does not
//!   ask twice) and queues SUBFLOW_DESTROY; the entry becomes `Closed` when SUB_CLOSED arrives, or
//!   when the kernel answers ESRCH (the subflow was already gone).
//! - A request that got no SUB_ESTABLISHED within `request_timeout` is retried by the state machine
//!   itself (the entry goes back to `Pending` with backoff). A refused create or a join that ended
//!   in SUB_CLOSED becomes `Failed`/`Closed`: the policy decides whether to open again, and the
//!   backoff applies to that new attempt.
//! - A *probe* (an `Open` with its own `timeout`) is the exception: it is sent at once whatever
//!   the path's backoff or given-up state, never retried by the state machine, and none of its
//!   failures count against the path: the policy that asked re-probes at its own pace. Its
//!   kernel socket is never destroyed by the state machine either: every SUBFLOW_DESTROY, even
//!   of a socket still in SYN_SENT, makes the kernel send the connection's whole MPTCP-level
//!   retransmit queue again. Once its SYN is in exponential backoff (a sample of its SYN_SENT
//!   socket shows `tcpi_backoff > 0`) or its `timeout` passed, it is *stale*: no longer live,
//!   left to the kernel, closed when the policy says so ([`Action::Close`] of its key, known
//!   from the sample; typically many at once, which costs the kernel's resend once). A stale
//!   probe that establishes later is the same entry, with its intent (backup flag, reason).
//! - The BACKUP field of SUB_ESTABLISHED and SUB_PRIORITY is the flag the *peer* sent (verified
//!   on Linux 6.18), kept as [`Subflow::peer_backup`]; our own flag ([`Subflow::backup`]) is
//!   the one the SUBFLOW_CREATE carried, which the kernel applies to the join, then each
//!   acknowledged SET_FLAGS. So a join established as requested needs no SET_FLAGS. One that
//!   does (the wish changed meanwhile) waits until the join is fully established: the kernel
//!   refuses SET_FLAGS for a join one round trip younger than that (EINVAL "subflow not
//!   found", [`RefusalMeaning::SubflowNotReady`]); a refused one is sent again when a sample
//!   shows the join fully established, or after [`FLAG_RETRY_AFTER`], at most
//!   [`MAX_FLAG_RETRIES`] times.
//! - The kernel's SUB_ESTABLISHED for a path we asked for is matched to the request whose port
//!   it has (learnt from a sample), else to the *oldest* waiting request on that path (a
//!   policy may ask for several per path).
//! - Never a join towards the peer's initial address and port when the peer set
//!   `deny_join_id0` ([`Connection::join_denied`]): such an `Open` is ignored. Policies check
//!   it themselves first (and say why they open nothing); this is the backstop.
//! - Local address ids: one per address for the connection's life, kept in one table shared by
//!   the subflows we open (lowest free id first), the ids the kernel reports (learnt from
//!   SUB_ESTABLISHED: the kernel gives a join towards an address we never announced the lowest
//!   free id) and announced addresses, which take the **highest** free id (255, 254, ...) so
//!   they stay clear of the kernel's bottom-up choice. The kernel binds an id to its address for
//!   as long as the address is in the connection's list and refuses another pairing
//!   (`EINVAL "did not match address and id"`), so the same address keeps the same id, also
//!   across REMOVE and a later re-announcement. Addresses are compared in canonical form: a
//!   connection accepted by a dual-stack `[::]` listener reports IPv4 as `::ffff:a.b.c.d`.
//! - A refusal that says the connection itself is gone ([`RefusalMeaning::ConnectionGone`]: the
//!   kernel no longer knows the token) closes the connection at once, as CLOSED would: its CLOSED
//!   event may have been lost in an overrun, or it was adopted from a snapshot that predates its
//!   close. A SUBFLOW_CREATE refused with ENOTCONN ([`RefusalMeaning::NotJoinable`]: not, or no
//!   longer, fully established) makes the connection wait for the kernel's ESTABLISHED before it
//!   asks for joins again, without counting a failure against the path.
//! - Announcements ([`Announcement`]) are sent in decision order, unpaced: pacing is the
//!   policy's choice. For it, an announcement stays [`AnnounceState::Sent`] until the peer joins
//!   it or `ConnTimers::announce_pace` passes (then [`AnnounceState::Unjoined`]), and
//!   [`Connection::poll_timeout`] wakes the connection at that moment. A refused ANNOUNCE is
//!   recorded; after [`MAX_ANNOUNCE_REFUSALS`] refusals in a row the address is given up for the
//!   connection (the kernel's refusals are final for an address and id: retrying is pointless).
//! - Operator commands ([`Connection::handle_manual`], see [`crate::manual`]) are applied like
//!   decisions but at once, and what they make is marked `manual`: a policy counts a manual
//!   subflow like its own (no duplicate), and its `Close`, `SetBackup` and `Remove` decisions
//!   leave manual subflows and announcements alone. A held connection ([`Connection::set_held`])
//!   applies no decision at all until it is released.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::decision::{Action, Decision, Reason};
use crate::manual::{Manual, ManualRefusal};
use crate::model::{
    AddrId, ConnInfo, KernelSubflow, PmCommand, PmEvent, SubflowInfo, SubflowKey, SubflowSample,
    Token, TCP_SYN_SENT,
};

/// Linux ETIMEDOUT: recorded in `Failed` when the state machine itself gives up on a request.
const ETIMEDOUT: i32 = 110;
/// Linux ESRCH: SUBFLOW_DESTROY's answer when the subflow is already gone.
const ESRCH: i32 = 3;
/// Linux EINVAL: with the extended-ACK text [`INVALID_TOKEN`], the kernel no longer knows the
/// connection.
const EINVAL: i32 = 22;
/// Linux ENOTCONN: SUBFLOW_CREATE's answer while the connection is not fully established.
const ENOTCONN: i32 = 107;
/// The kernel's extended-ACK text when no connection has the token (`pm_userspace.c`,
/// `mptcp_userspace_pm_get_sock`), for every userspace-PM command.
const INVALID_TOKEN: &str = "invalid token";
/// The kernel's extended-ACK text when SET_FLAGS finds no usable subflow with the 4-tuple
/// (`mptcp_userspace_pm_set_flags`): on Linux 6.18 also a join not yet fully established.
const SUBFLOW_NOT_FOUND: &str = "subflow not found";
/// Linux ECANCELED: recorded in `Failed` for a probe the policy closed before it established.
const ECANCELED: i32 = 125;

/// How long a SET_FLAGS refused for a join that was not fully established waits, at most,
/// before it is sent again when no sample shows the join fully established first: the
/// kernel's least retransmission timeout (TCP_RTO_MIN), within which the peer's fourth ACK
/// (or our retransmitted third ACK's answer) has come on a working path.
pub const FLAG_RETRY_AFTER: Duration = crate::model::TCP_RTO_MIN;
/// SET_FLAGS sent again at most this many times for one wish (the kernel's refusals of a
/// subflow that never becomes usable repeat).
pub const MAX_FLAG_RETRIES: u32 = 3;

/// Which local address id a SUBFLOW_CREATE from the connection's *initial* local address carries.
///
/// The kernel accepts both: `pm_userspace.c` appends the (address, id) pair to the connection's
/// userspace address list unless the address or the id is already listed with a different partner
/// ("did not match address and id"); id 0 has been allowed since "mptcp: userspace pm allow creating
/// id 0 subflow". The initial address is not in that list on the client (the kernel answers 0 for
/// it without a list entry), so a fresh id works and keeps id 0 meaning "the initial subflow" on
/// the wire. Flip this to reuse id 0 instead; it is the only place that decides.
const INITIAL_LOCAL_ADDR_USES_ID0: bool = false;

/// Refusals in a row after which an address is no longer announced on a connection. More than
/// one absorbs a failure of the command path itself (EIO); the kernel's own refusals (EINVAL)
/// repeat, so the bound is small.
pub const MAX_ANNOUNCE_REFUSALS: u32 = 3;

/// The timing knobs of the state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnTimers {
    /// How long a requested subflow may take to establish before it counts as failed.
    pub request_timeout: Duration,
    /// Backoff after the first failure of a path; doubles with each further failure.
    pub backoff_initial: Duration,
    /// Upper bound of the backoff.
    pub backoff_max: Duration,
    /// Consecutive failures after which a path is given up (0: never give up).
    pub max_retries: u32,
    /// An established subflow older than this proves its path works: the path's failure count
    /// resets. A subflow that closes younger than this counts as a failure of its path.
    pub stable_after: Duration,
    /// How many `Closed`/`Failed` entries are kept for status output (the oldest go first).
    pub keep_closed: usize,
    /// How long an announcement counts as in flight ([`AnnounceState::Sent`]) without a join
    /// from the peer. An in-kernel-PM peer drops an ADD_ADDR that arrives while it still
    /// handles the previous one (the kernel re-sends it only ~200 ms later), so a policy that
    /// announces several addresses waits for the join, or for this long.
    pub announce_pace: Duration,
}

impl Default for ConnTimers {
    fn default() -> Self {
        ConnTimers {
            request_timeout: Duration::from_secs(5),
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            max_retries: 6,
            stable_after: Duration::from_secs(10),
            keep_closed: 16,
            announce_pace: Duration::from_millis(100),
        }
    }
}

impl ConnTimers {
    /// The delay before the next attempt on a path that failed `failures` times in a row:
    /// `min(backoff_initial * 2^(failures-1), backoff_max)`, zero without failures.
    pub fn backoff(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32 << (failures - 1).min(31);
        self.backoff_initial
            .checked_mul(factor)
            .unwrap_or(self.backoff_max)
            .min(self.backoff_max)
    }

    fn gives_up_at(&self, failures: u32) -> bool {
        self.max_retries > 0 && failures >= self.max_retries
    }
}

/// What a subflow runs over. The local port is not part of it: it is unknown until the subflow
/// establishes, and several subflows may share one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Path {
    /// Local address.
    pub local: IpAddr,
    /// Remote address and port.
    pub remote: SocketAddr,
}

/// Where one subflow is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubflowState {
    /// A policy asked for it, but its path is in backoff: the create is sent at `due`.
    Pending {
        /// When the create may be sent.
        due: Instant,
    },
    /// SUBFLOW_CREATE was queued; waiting for SUB_ESTABLISHED.
    Requested {
        /// When the create was queued.
        since: Instant,
        /// Which attempt on this path this is (1 = first).
        attempt: u32,
    },
    /// The kernel reported it established.
    Established {
        /// When it established (or was first seen).
        since: Instant,
    },
    /// It was established and closed.
    Closed {
        /// When it closed.
        at: Instant,
        /// The socket error the kernel reported, if any.
        error: Option<u8>,
    },
    /// It never established.
    Failed {
        /// When it failed.
        at: Instant,
        /// The errno (positive) from the kernel's refusal or join failure; ETIMEDOUT when the
        /// state machine gave up waiting.
        errno: i32,
        /// The kernel's extended-ack message or our own explanation.
        message: Option<String>,
    },
}

/// One subflow of a connection, as the state machine sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Subflow {
    /// The path it runs over.
    pub path: Path,
    /// Local port, known once established.
    pub local_port: Option<u16>,
    /// Where it is in its life.
    pub state: SubflowState,
    /// Our backup flag as the kernel has it: the one the SUBFLOW_CREATE carried (the kernel
    /// sends it in the join's SYN), then each SET_FLAGS it acknowledged. For a subflow we did
    /// not create, what the peer asked for (as `peer_backup`), since the kernel never reports
    /// our side of it in an event.
    pub backup: bool,
    /// The backup flag the peer asked for: the BACKUP field of SUB_ESTABLISHED and
    /// SUB_PRIORITY. Verified on Linux 6.18 (`integration/tests/kernel_pm.rs`): the kernel
    /// reports there the flag it *received* (the peer's MP_JOIN or MP_PRIO), never the one we
    /// sent, so a join we requested as backup is reported `backup=0` by our own kernel.
    pub peer_backup: bool,
    /// Backup flag we want (from the decision that opened it, or the last SetBackup).
    pub want_backup: bool,
    /// Local address id (ours when requested, the kernel's once established).
    pub loc_id: AddrId,
    /// Remote address id (0 until the kernel reports it, unless the remote was announced).
    pub rem_id: AddrId,
    /// Interface index, if known.
    pub if_index: Option<u32>,
    /// The last health sample, for established subflows.
    pub sample: Option<SubflowSample>,
    /// This is the connection's initial subflow.
    pub initial: bool,
    /// SUBFLOW_DESTROY was queued for it: it no longer counts as live and waits for SUB_CLOSED.
    pub closing: bool,
    /// Why the policy last acted on this subflow (opened it, changed its flag, closed it).
    pub reason: Option<Reason>,
    /// For a probe (see `Action::Open::timeout`), how long its SYN counts as in flight: it
    /// turns `stale` after it, never retried, its failures not counted against the path.
    /// `None`: the connection's `request_timeout` with retries and backoff.
    pub timeout: Option<Duration>,
    /// A probe no longer in flight for the policy, its socket left to the kernel: a sample
    /// showed its SYN in exponential backoff (`tcpi_backoff > 0`), or its `timeout` passed.
    /// It may still establish (a late SYN answered); it is not live (it takes no place in a
    /// policy's subflow budget) and the policy closes it when it chooses.
    pub stale: bool,
    /// An operator created it by hand (`mptcp-pmd subflow create`).
    pub manual: bool,
    /// The kernel acknowledged the SUBFLOW_CREATE (matches answers to the several requests
    /// one path can have).
    acked: bool,
    /// A probe the policy closed before it established (`Action::Close` of its key): its
    /// socket was destroyed.
    abandoned: bool,
    /// SET_FLAGS to send again (see [`Connection::handle_samples`]): the kernel refused it
    /// because the join was not fully established yet, or the wish changed while the join was
    /// in flight. (When to send it at the latest, attempts so far.)
    flag_retry: Option<(Instant, u32)>,
}

impl Subflow {
    /// The SET_FLAGS of a pending flag retry (see `flag_retry`), its next deadline moved to
    /// [`FLAG_RETRY_AFTER`] from `now`, the attempts unchanged; `None` when none is pending.
    fn resend_flag(&mut self, token: Token, now: Instant) -> Option<PmCommand> {
        let (_, tries) = self.flag_retry?;
        let key = self.key()?;
        self.flag_retry = Some((now + FLAG_RETRY_AFTER, tries));
        Some(PmCommand::SetBackup {
            token,
            key,
            backup: self.want_backup,
        })
    }

    /// The subflow's 4-tuple, once its local port is known.
    pub fn key(&self) -> Option<SubflowKey> {
        self.local_port.map(|port| SubflowKey {
            local: SocketAddr::new(self.path.local, port),
            remote: self.path.remote,
        })
    }

    /// Pending, requested (and not a stale probe) or established, and not being closed by us.
    pub fn is_live(&self) -> bool {
        !self.closing
            && !self.stale
            && matches!(
                self.state,
                SubflowState::Pending { .. }
                    | SubflowState::Requested { .. }
                    | SubflowState::Established { .. }
            )
    }

    /// Established (possibly closing).
    pub fn is_established(&self) -> bool {
        matches!(self.state, SubflowState::Established { .. })
    }

    /// Closed or failed: kept for status only.
    pub fn is_dead(&self) -> bool {
        matches!(
            self.state,
            SubflowState::Closed { .. } | SubflowState::Failed { .. }
        )
    }

    fn dead_at(&self) -> Option<Instant> {
        match self.state {
            SubflowState::Closed { at, .. } | SubflowState::Failed { at, .. } => Some(at),
            _ => None,
        }
    }

    fn new(path: Path, state: SubflowState) -> Self {
        Subflow {
            path,
            local_port: None,
            state,
            backup: false,
            peer_backup: false,
            want_backup: false,
            loc_id: 0,
            rem_id: 0,
            if_index: None,
            sample: None,
            initial: false,
            closing: false,
            reason: None,
            timeout: None,
            stale: false,
            manual: false,
            acked: false,
            abandoned: false,
            flag_retry: None,
        }
    }

    /// A probe still in flight for the policy: requested, not stale, not closed.
    pub fn is_probe_in_flight(&self) -> bool {
        self.timeout.is_some()
            && !self.stale
            && !self.closing
            && matches!(self.state, SubflowState::Requested { .. })
    }

    /// A stale probe whose socket is still the kernel's (see `stale`): requested, not closed.
    pub fn is_lingering_probe(&self) -> bool {
        self.timeout.is_some() && self.stale && matches!(self.state, SubflowState::Requested { .. })
    }
}

/// Where the announcement of one local address to the peer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnnounceState {
    /// ANNOUNCE sent at `at`; no join from the peer yet, within `ConnTimers::announce_pace`.
    Sent {
        /// When the ANNOUNCE was queued.
        at: Instant,
    },
    /// Sent at `at`, and `announce_pace` passed without a join: the peer may be at its
    /// `add_addr_accepted` limit (the kernel never tells the server), may not reach the
    /// address, or is slow. A join may still come.
    Unjoined {
        /// When the ANNOUNCE was queued.
        at: Instant,
    },
    /// The peer joined the address (a SUB_ESTABLISHED from it).
    Joined {
        /// When the first join established.
        at: Instant,
    },
    /// The kernel refused the last ANNOUNCE.
    Refused {
        /// When.
        at: Instant,
        /// The errno (positive).
        errno: i32,
        /// The kernel's extended-ack message.
        message: Option<String>,
    },
    /// Withdrawn (REMOVE queued) at `at`. The id stays the address's.
    Withdrawn {
        /// When.
        at: Instant,
    },
}

/// One local address announced (or once announced) to the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// The address (canonical: IPv4 as IPv4).
    pub addr: IpAddr,
    /// Its address id on this connection.
    pub id: AddrId,
    /// The port announced with it, if any.
    pub port: Option<u16>,
    /// Where it is.
    pub state: AnnounceState,
    /// Refused ANNOUNCEs in a row.
    pub refusals: u32,
    /// Why the policy last acted on it (announced or withdrew it).
    pub reason: Option<Reason>,
    /// An operator announced it by hand (`mptcp-pmd announce`).
    pub manual: bool,
}

impl Announcement {
    /// Announced and not withdrawn (sent, unjoined or joined).
    pub fn is_active(&self) -> bool {
        matches!(
            self.state,
            AnnounceState::Sent { .. }
                | AnnounceState::Unjoined { .. }
                | AnnounceState::Joined { .. }
        )
    }

    /// Still waiting for the peer's join within the pacing window.
    pub fn in_flight(&self) -> bool {
        matches!(self.state, AnnounceState::Sent { .. })
    }

    /// Refused [`MAX_ANNOUNCE_REFUSALS`] times in a row: not announced again on this
    /// connection.
    pub fn given_up(&self) -> bool {
        self.refusals >= MAX_ANNOUNCE_REFUSALS
    }
}

/// The kernel refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("kernel refused with errno {errno}: {}", .message.as_deref().unwrap_or("no message"))]
pub struct KernelRefusal {
    /// The errno, positive (a negative one is accepted and treated the same).
    pub errno: i32,
    /// The extended-ack message, when the kernel sent one.
    pub message: Option<String>,
}

/// Whether the kernel's subflows of a connection show it fully established at the MPTCP level
/// (joins allowed): one of them carries the FULLY_ESTABLISHED flag (the initial subflow gets it
/// with the connection; ss shows it as `e`). No subflow listed tells nothing either way: taken
/// as established, as the kernel listed the connection in TCP_ESTABLISHED. Verified on 6.18: a
/// client that connected and sent nothing shows `Mmc`, once its data was acknowledged `Mmec`.
pub fn fully_established(kernel: &[KernelSubflow]) -> bool {
    kernel.is_empty() || kernel.iter().any(|k| k.sample.fully_established)
}

/// What a kernel refusal says beyond "this command failed", as verified on Linux 6.18
/// (`integration/tests/kernel_pm.rs`, `commands_on_closing_and_gone_connections`): every
/// command for a token the kernel no longer has (closed and destroyed, or reset by the peer)
/// is EINVAL "invalid token"; SUBFLOW_CREATE on a connection that is not fully established —
/// not yet (nothing sent yet), or no longer (closed by either side, still in the kernel's
/// table) — is ENOTCONN "connect error: -107", while SET_FLAGS, ANNOUNCE, REMOVE and
/// SUBFLOW_DESTROY are still accepted then; SUBFLOW_DESTROY of a subflow that is already gone
/// is ESRCH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalMeaning {
    /// The kernel no longer knows the connection: it is gone, whatever we heard of it.
    ConnectionGone,
    /// SUBFLOW_CREATE on a connection that is not fully established (not yet, or no longer).
    NotJoinable,
    /// SUBFLOW_DESTROY of a subflow that is already gone.
    SubflowGone,
    /// SET_FLAGS for a subflow the kernel does not list as usable: EINVAL "subflow not
    /// found". Verified on Linux 6.18 (`integration/tests/kernel_pm.rs`,
    /// `set_flags_waits_for_the_join_to_be_fully_established`): a join we requested is
    /// reported established (SUB_ESTABLISHED, on the SYN-ACK) one round trip before it is
    /// fully established (the peer's fourth ACK), and SET_FLAGS in between is refused so; it
    /// is accepted once the subflow dump shows the join fully established. Also the answer
    /// for a subflow that is gone.
    SubflowNotReady,
    /// About this command only (a port conflict, an id rule, a timeout, ...).
    Command,
}

impl RefusalMeaning {
    /// The refusal is an expected outcome of a race with the kernel (a connection or subflow
    /// that ended meanwhile), not a fault worth a warning: callers log it at debug level.
    pub fn is_race(self) -> bool {
        self != RefusalMeaning::Command
    }
}

impl KernelRefusal {
    /// What this refusal of `cmd` says (see [`RefusalMeaning`]).
    pub fn meaning(&self, cmd: &PmCommand) -> RefusalMeaning {
        let errno = self.errno.saturating_abs();
        let invalid_token = self
            .message
            .as_deref()
            .is_some_and(|m| m.trim() == INVALID_TOKEN);
        match cmd {
            _ if errno == EINVAL && invalid_token => RefusalMeaning::ConnectionGone,
            PmCommand::CreateSubflow { .. } if errno == ENOTCONN => RefusalMeaning::NotJoinable,
            PmCommand::DestroySubflow { .. } if errno == ESRCH => RefusalMeaning::SubflowGone,
            PmCommand::SetBackup { .. }
                if errno == EINVAL
                    && self
                        .message
                        .as_deref()
                        .is_some_and(|m| m.trim() == SUBFLOW_NOT_FOUND) =>
            {
                RefusalMeaning::SubflowNotReady
            }
            _ => RefusalMeaning::Command,
        }
    }
}

/// Failure bookkeeping of one path.
#[derive(Debug, Clone, Copy, Default)]
struct PathHealth {
    /// Consecutive failures.
    failures: u32,
    /// When the last one happened.
    last_failure: Option<Instant>,
}

/// One MPTCP connection's subflow state machine. See the module docs.
#[derive(Debug, Clone)]
pub struct Connection {
    token: Token,
    /// Shared by every connection of the daemon (one copy, not ~100 bytes each).
    timers: Arc<ConnTimers>,
    info: Option<ConnInfo>,
    established: bool,
    server_side: bool,
    closed: bool,
    /// An operator holds the connection: the policy's decisions are not applied.
    held: bool,
    /// The peer removed its initial address (REMOVED with id 0).
    initial_remote_removed: bool,
    /// The peer's announced addresses by its id; the port, when absent, is the initial one.
    announced_remotes: BTreeMap<AddrId, (IpAddr, Option<u16>)>,
    subflows: Vec<Subflow>,
    /// Local address ids handed to the kernel (or learnt from it), stable per address. A few
    /// entries at most (one per local address): a vector, searched linearly, is smaller and
    /// faster than a map.
    local_ids: Vec<(IpAddr, AddrId)>,
    /// Local addresses we announced (or withdrew), one entry per address, in the order they
    /// were first announced.
    announcements: Vec<Announcement>,
    health: BTreeMap<Path, PathHealth>,
    commands: VecDeque<PmCommand>,
    /// The latest `now` any input carried.
    last_now: Option<Instant>,
    ignored: u64,
    refusals: u64,
    last_refusal: Option<(&'static str, KernelRefusal)>,
    /// Closed because a refusal said the kernel no longer knows the connection.
    gone_in_kernel: bool,
}

impl Connection {
    /// A connection known only by its token (its events will fill it in).
    pub fn new(token: Token, timers: impl Into<Arc<ConnTimers>>) -> Self {
        Connection {
            token,
            timers: timers.into(),
            info: None,
            established: false,
            server_side: false,
            closed: false,
            held: false,
            initial_remote_removed: false,
            announced_remotes: BTreeMap::new(),
            subflows: Vec::new(),
            local_ids: Vec::new(),
            announcements: Vec::new(),
            health: BTreeMap::new(),
            commands: VecDeque::new(),
            last_now: None,
            ignored: 0,
            refusals: 0,
            last_refusal: None,
            gone_in_kernel: false,
        }
    }

    /// A connection found by sock_diag at start-up, with its live subflows. The subflow whose
    /// key is (`local`, `remote`) is the initial one. Remote ids other than 0 become known
    /// remotes. It is established (joins allowed) unless the kernel lists subflows and none of
    /// them is fully established ([`fully_established`]): such a connection is connected but
    /// not yet fully established at the MPTCP level (the kernel would refuse joins with ENOTCONN),
    /// and its ESTABLISHED event is still to come.
    /// Default timers and client side: see [`Connection::with_timers`] and
    /// [`Connection::with_server_side`].
    pub fn adopt(
        now: Instant,
        token: Token,
        local: SocketAddr,
        remote: SocketAddr,
        subflows: impl IntoIterator<Item = KernelSubflow>,
    ) -> Self {
        let mut conn = Connection::new(token, ConnTimers::default());
        conn.touch(now);
        let initial_key = SubflowKey { local, remote };
        conn.info = Some(ConnInfo {
            token,
            local,
            remote,
            loc_id: 0,
            rem_id: 0,
            flags: Default::default(),
        });
        let subflows: Vec<KernelSubflow> = subflows.into_iter().collect();
        conn.established = fully_established(&subflows);
        for KernelSubflow {
            key,
            loc_id,
            rem_id,
            backup,
            sample,
        } in subflows
        {
            if conn.subflows.iter().any(|s| s.key() == Some(key)) {
                continue;
            }
            let path = Path {
                local: key.local.ip(),
                remote: key.remote,
            };
            let mut sf = Subflow::new(path, SubflowState::Established { since: now });
            sf.local_port = Some(key.local.port());
            sf.loc_id = loc_id;
            sf.rem_id = rem_id;
            sf.backup = backup;
            sf.want_backup = backup;
            sf.sample = Some(sample);
            sf.initial = key == initial_key;
            sf.acked = true;
            conn.push_subflow(sf);
            conn.learn_local_id(key.local.ip(), loc_id);
            if rem_id != 0 && key.remote != remote {
                conn.announced_remotes
                    .entry(rem_id)
                    .or_insert((key.remote.ip(), Some(key.remote.port())));
            }
        }
        conn
    }

    /// Bring a tracked connection in line with a sock_diag snapshot taken at `taken_at`
    /// (after events were lost): it is established if the kernel lists it as fully established
    /// ([`fully_established`]), every kernel subflow is established here (a request it answers
    /// is matched, an unknown one learnt), and an established subflow the kernel no longer lists
    /// is closed, unless it established after the snapshot was taken. Returns whether anything
    /// changed.
    pub fn reconcile(
        &mut self,
        now: Instant,
        taken_at: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        kernel: &[KernelSubflow],
    ) -> bool {
        if self.closed {
            return false;
        }
        self.touch(now);
        let before = (self.established, self.subflows.clone());
        if !self.established && fully_established(kernel) {
            let mut info = self.info.unwrap_or(ConnInfo {
                token: self.token,
                local,
                remote,
                loc_id: 0,
                rem_id: 0,
                flags: Default::default(),
            });
            info.flags.server_side = self.server_side;
            self.on_conn_info(now, &info, true);
        }
        for k in kernel {
            let report = SubflowInfo {
                token: self.token,
                local: k.key.local,
                remote: k.key.remote,
                loc_id: k.loc_id,
                rem_id: k.rem_id,
                backup: k.backup,
                if_idx: None,
                error: None,
                reset_reason: None,
                reset_flags: None,
            };
            self.on_sub_established(now, &report);
            if let Some(sf) = self.established_mut(k.key) {
                sf.sample = Some(k.sample);
            }
        }
        let gone: Vec<SubflowKey> = self
            .subflows
            .iter()
            .filter(
                |sf| matches!(sf.state, SubflowState::Established { since } if since < taken_at),
            )
            .filter_map(Subflow::key)
            .filter(|key| !kernel.iter().any(|k| k.key == *key))
            .collect();
        for key in gone {
            let report = SubflowInfo {
                token: self.token,
                local: key.local,
                remote: key.remote,
                loc_id: 0,
                rem_id: 0,
                backup: false,
                if_idx: None,
                error: None,
                reset_reason: None,
                reset_flags: None,
            };
            self.on_sub_closed(now, &report);
        }
        self.prune();
        (self.established, &self.subflows) != (before.0, &before.1)
    }

    /// Replaces the timers (for adopted connections).
    pub fn with_timers(mut self, timers: impl Into<Arc<ConnTimers>>) -> Self {
        self.timers = timers.into();
        self
    }

    /// Marks an adopted connection as accepted by this host (sock_diag tells, events do not).
    /// On a server-side connection, a subflow that arrived on another local address than the
    /// initial one is a peer's join to an address this host announced (a peer can join only
    /// what it was told about): it is recorded as a joined announcement under the id the
    /// kernel reports, so a restarted daemon does not announce it again.
    pub fn with_server_side(mut self, server_side: bool) -> Self {
        self.server_side = server_side;
        if !server_side {
            return self;
        }
        let initial = self.info.map(|i| i.local.ip().to_canonical());
        let joined: Vec<(IpAddr, AddrId, Instant)> = self
            .subflows
            .iter()
            .filter_map(|sf| match sf.state {
                SubflowState::Established { since } if !sf.initial && sf.loc_id != 0 => {
                    Some((sf.path.local.to_canonical(), sf.loc_id, since))
                }
                _ => None,
            })
            .filter(|(addr, _, _)| Some(*addr) != initial)
            .collect();
        for (addr, id, since) in joined {
            if self.announcements.iter().any(|a| a.addr == addr)
                || self.known_local_id(addr) != Some(id)
            {
                continue;
            }
            self.announcements.reserve_exact(1);
            self.announcements.push(Announcement {
                addr,
                id,
                port: None,
                state: AnnounceState::Joined { at: since },
                refusals: 0,
                reason: None,
                manual: false,
            });
        }
        self
    }

    /// The connection's token.
    pub fn token(&self) -> Token {
        self.token
    }

    /// The timers in use.
    pub fn timers(&self) -> &ConnTimers {
        &self.timers
    }

    /// The description from CREATED/ESTABLISHED (or adoption).
    pub fn info(&self) -> Option<&ConnInfo> {
        self.info.as_ref()
    }

    /// ESTABLISHED was seen (joins are possible).
    pub fn is_established(&self) -> bool {
        self.established
    }

    /// This host accepted the connection.
    pub fn is_server_side(&self) -> bool {
        self.server_side
    }

    /// CLOSED was seen (or the kernel said it no longer knows the connection): no more
    /// commands, no more timers.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Closed because a command's refusal said the kernel no longer knows the connection
    /// ([`RefusalMeaning::ConnectionGone`]), not by a CLOSED event.
    pub fn is_gone_in_kernel(&self) -> bool {
        self.gone_in_kernel
    }

    /// The peer's addresses: id 0 is the initial remote (unless the peer removed it), then the
    /// announced ones by id (port: the announced one or the initial one). Duplicates dropped.
    pub fn remotes(&self) -> Vec<(AddrId, SocketAddr)> {
        let mut out: Vec<(AddrId, SocketAddr)> = Vec::new();
        let initial = self.info.map(|i| i.remote);
        if let Some(remote) = initial {
            if !self.initial_remote_removed {
                out.push((0, remote));
            }
        }
        for (&id, &(addr, port)) in &self.announced_remotes {
            let Some(port) = port.or(initial.map(|r| r.port())) else {
                continue;
            };
            let sa = SocketAddr::new(addr, port);
            if !out.iter().any(|(_, known)| *known == sa) {
                out.push((id, sa));
            }
        }
        out
    }

    /// Every subflow entry, live and dead, in creation order.
    pub fn subflows(&self) -> &[Subflow] {
        &self.subflows
    }

    /// How many live subflows (pending, requested, established and not closing) run from `local`
    /// to `remote`.
    pub fn live_on(&self, local: IpAddr, remote: SocketAddr) -> usize {
        self.subflows
            .iter()
            .filter(|s| s.is_live() && s.path.local == local && s.path.remote == remote)
            .count()
    }

    /// Whether a join towards `remote` is refused by the peer's `deny_join_id0`: the peer set
    /// the flag and `remote` is its initial address and port (id 0). Its announced addresses
    /// are never denied, even at the same IP with another port. An adopted connection does
    /// not know the flag (sock_diag does not report it): false.
    pub fn join_denied(&self, remote: SocketAddr) -> bool {
        self.info
            .is_some_and(|i| i.flags.deny_join_id0 && i.remote == remote)
    }

    /// How many live subflows the connection has.
    pub fn live_count(&self) -> usize {
        self.subflows.iter().filter(|s| s.is_live()).count()
    }

    /// The path failed `max_retries` times in a row: no more creates on it until its local
    /// address returns or a subflow on it establishes.
    pub fn given_up(&self, path: &Path) -> bool {
        self.timers.gives_up_at(self.failures(path))
    }

    /// Consecutive failures of a path.
    pub fn failures(&self, path: &Path) -> u32 {
        self.health.get(path).map_or(0, |h| h.failures)
    }

    /// The local address id this connection uses for `addr`, if it assigned or learnt one.
    pub fn local_id(&self, addr: IpAddr) -> Option<AddrId> {
        self.known_local_id(addr)
    }

    /// The local addresses announced and not withdrawn, with their ids.
    pub fn announced_locals(&self) -> impl Iterator<Item = (IpAddr, AddrId)> + '_ {
        self.announcements
            .iter()
            .filter(|a| a.is_active())
            .map(|a| (a.addr, a.id))
    }

    /// Every local address announced to the peer, active or not, in first-announced order.
    pub fn announcements(&self) -> &[Announcement] {
        &self.announcements
    }

    /// The announcement of local address `addr` (any form: compared canonically), if any.
    pub fn announcement(&self, addr: IpAddr) -> Option<&Announcement> {
        let addr = addr.to_canonical();
        self.announcements.iter().find(|a| a.addr == addr)
    }

    /// The addresses the peer announced and did not remove: (its id, address, port if it gave
    /// one).
    pub fn peer_announced(&self) -> impl Iterator<Item = (AddrId, IpAddr, Option<u16>)> + '_ {
        self.announced_remotes
            .iter()
            .map(|(id, (addr, port))| (*id, *addr, *port))
    }

    /// Inputs ignored because they did not fit (other token, unknown subflow, after CLOSED...).
    pub fn ignored(&self) -> u64 {
        self.ignored
    }

    /// Commands the kernel refused, and the last refusal (command name and error).
    pub fn refusals(&self) -> (u64, Option<(&'static str, &KernelRefusal)>) {
        (
            self.refusals,
            self.last_refusal.as_ref().map(|(n, r)| (*n, r)),
        )
    }

    /// A kernel event for this connection.
    pub fn handle_event(&mut self, now: Instant, ev: &PmEvent) {
        if self.closed || ev.token() != Some(self.token) {
            self.ignored += 1;
            return;
        }
        self.touch(now);
        match ev {
            PmEvent::Created(info) => self.on_conn_info(now, info, false),
            PmEvent::Established(info) => self.on_conn_info(now, info, true),
            PmEvent::Closed { .. } => self.on_closed(now),
            PmEvent::Announced {
                rem_id, addr, port, ..
            } => {
                if *rem_id == 0 {
                    self.ignored += 1;
                } else {
                    self.announced_remotes.insert(*rem_id, (*addr, *port));
                }
            }
            PmEvent::Removed { rem_id, .. } => self.on_removed(now, *rem_id),
            PmEvent::SubEstablished(s) => {
                // A join completes only on a fully established connection: proof enough when
                // the ESTABLISHED event was lost (or the connection was adopted before it).
                if self.info.is_some() {
                    self.established = true;
                }
                self.on_sub_established(now, s)
            }
            PmEvent::SubClosed(s) => self.on_sub_closed(now, s),
            PmEvent::SubPriority(s) => {
                // The peer's MP_PRIO (the kernel never reports our own SET_FLAGS so).
                let key = s.key();
                match self.established_mut(key) {
                    Some(sf) => sf.peer_backup = s.backup,
                    None => self.ignored += 1,
                }
            }
            PmEvent::ListenerCreated { .. }
            | PmEvent::ListenerClosed { .. }
            | PmEvent::Unknown { .. } => self.ignored += 1,
        }
        self.prune();
    }

    /// A policy's decisions for this connection: turned into entries and queued commands.
    pub fn handle_decisions(&mut self, now: Instant, decisions: Vec<Decision>) {
        // A held connection is the operator's: a decision computed before the hold (or
        // anyway) is not applied.
        if self.closed || self.held {
            self.ignored += decisions.len() as u64;
            return;
        }
        self.touch(now);
        for Decision { action, reason } in decisions {
            match action {
                Action::Open {
                    local,
                    if_index,
                    remote,
                    backup,
                    timeout,
                } => self.open(now, local, if_index, remote, backup, timeout, reason),
                Action::Close { key } => {
                    let token = self.token;
                    match self.established_mut(key) {
                        // What an operator made is not the policy's to close or re-flag.
                        Some(sf) if !sf.closing && !sf.manual => {
                            sf.closing = true;
                            sf.flag_retry = None;
                            sf.reason = Some(reason);
                            self.commands
                                .push_back(PmCommand::DestroySubflow { token, key });
                        }
                        Some(_) => self.ignored += 1,
                        None => self.close_probe(now, key, reason),
                    }
                }
                Action::SetBackup { key, backup } => {
                    let token = self.token;
                    match self.established_mut(key) {
                        // What an operator made is not the policy's to close or re-flag.
                        Some(sf) if !sf.closing && !sf.manual => {
                            // Only a changed wish is sent: a refused or peer-overridden flag is
                            // not fought over.
                            if sf.want_backup != backup {
                                sf.want_backup = backup;
                                sf.reason = Some(reason);
                                sf.flag_retry = None;
                                self.commands.push_back(PmCommand::SetBackup {
                                    token,
                                    key,
                                    backup,
                                });
                            }
                        }
                        _ => self.ignored += 1,
                    }
                }
                Action::Announce { addr, port } => self.announce(now, addr, port, reason),
                Action::Remove { addr } => self.withdraw(now, addr, reason),
            }
        }
    }

    /// An operator holds the connection (`true`: the policy's decisions are no longer applied;
    /// the driver stops asking for them) or releases it. Returns whether that changed anything.
    pub fn set_held(&mut self, held: bool) -> bool {
        let changed = self.held != held;
        self.held = held;
        changed
    }

    /// An operator holds the connection (see [`Connection::set_held`]).
    pub fn is_held(&self) -> bool {
        self.held
    }

    /// An operator's command (see [`crate::manual`]): checked against the connection's state,
    /// applied like a policy's decision but at once (no backoff, no given-up path) and marked
    /// as made by hand, with `reason` (who asked). On success the kernel command is queued
    /// (drained by [`Connection::poll_command`] like any other) and a copy returned, so the
    /// driver can tell the operator the kernel's answer to it; on a refusal nothing changes.
    pub fn handle_manual(
        &mut self,
        now: Instant,
        cmd: &Manual,
        reason: Reason,
    ) -> Result<PmCommand, ManualRefusal> {
        if self.closed {
            return Err(ManualRefusal::Closed);
        }
        self.touch(now);
        let token = self.token;
        let out = match *cmd {
            Manual::Create {
                local,
                remote,
                backup,
            } => {
                if !self.established {
                    return Err(ManualRefusal::NotEstablished);
                }
                if local.to_canonical().is_ipv4() != remote.ip().to_canonical().is_ipv4() {
                    return Err(ManualRefusal::FamilyMismatch { local, remote });
                }
                let loc_id = self.id_for(local).ok_or(ManualRefusal::NoFreeId)?;
                let rem_id = self
                    .remotes()
                    .into_iter()
                    .find(|(_, r)| *r == remote)
                    .map_or(0, |(id, _)| id);
                let path = Path { local, remote };
                let mut sf = Subflow::new(path, SubflowState::Pending { due: now });
                sf.want_backup = backup;
                sf.loc_id = loc_id;
                sf.rem_id = rem_id;
                sf.reason = Some(reason);
                sf.manual = true;
                let i = self.push_subflow(sf);
                self.request(i, now);
                // `request` queued the create last.
                match self.commands.back() {
                    Some(c) => c.clone(),
                    None => return Err(ManualRefusal::NoFreeId),
                }
            }
            Manual::Destroy { key } => match self.established_mut(key) {
                Some(sf) if !sf.closing => {
                    sf.closing = true;
                    sf.reason = Some(reason);
                    let c = PmCommand::DestroySubflow { token, key };
                    self.commands.push_back(c.clone());
                    c
                }
                _ => return Err(ManualRefusal::NoSuchSubflow { key }),
            },
            Manual::SetBackup { key, backup } => match self.established_mut(key) {
                Some(sf) if !sf.closing => {
                    sf.want_backup = backup;
                    sf.reason = Some(reason);
                    let c = PmCommand::SetBackup { token, key, backup };
                    self.commands.push_back(c.clone());
                    c
                }
                _ => return Err(ManualRefusal::NoSuchSubflow { key }),
            },
            Manual::Announce { addr, id } => {
                self.manual_announce(now, addr.to_canonical(), id, reason)?
            }
            Manual::Withdraw { id } => {
                if id == 0 {
                    return Err(ManualRefusal::IdZero);
                }
                let a = self
                    .announcements
                    .iter_mut()
                    .find(|a| a.id == id && a.is_active())
                    .ok_or(ManualRefusal::NoSuchAnnouncement(id))?;
                a.state = AnnounceState::Withdrawn { at: now };
                a.reason = Some(reason);
                a.manual = true;
                let c = PmCommand::Remove { token, id };
                self.commands.push_back(c.clone());
                c
            }
        };
        Ok(out)
    }

    /// [`Manual::Announce`]: the address keeps the id it has on this connection (an explicit
    /// other id is refused, as the kernel would), a new address gets the id asked for if it is
    /// free, else the highest free one.
    fn manual_announce(
        &mut self,
        now: Instant,
        addr: IpAddr,
        id: Option<AddrId>,
        reason: Reason,
    ) -> Result<PmCommand, ManualRefusal> {
        if !self.established {
            return Err(ManualRefusal::NotEstablished);
        }
        if id == Some(0) {
            return Err(ManualRefusal::IdZero);
        }
        if self.info.map(|i| i.local.ip().to_canonical()) == Some(addr) {
            return Err(ManualRefusal::InitialAddress(addr));
        }
        if let Some(a) = self.announcement(addr).filter(|a| a.is_active()) {
            return Err(ManualRefusal::AlreadyAnnounced { addr, id: a.id });
        }
        let id = match (self.known_local_id(addr), id) {
            (Some(has), Some(asked)) if has != asked => {
                return Err(ManualRefusal::AddressHasId { addr, has, asked })
            }
            (Some(has), _) => has,
            (None, Some(asked)) => {
                if let Some((other, _)) = self.local_ids.iter().find(|(_, used)| *used == asked) {
                    return Err(ManualRefusal::IdTaken {
                        id: asked,
                        other: *other,
                    });
                }
                self.remember_local_id(addr, asked);
                asked
            }
            (None, None) => self.announce_id(addr).ok_or(ManualRefusal::NoFreeId)?,
        };
        if id == 0 {
            return Err(ManualRefusal::IdZero);
        }
        let state = AnnounceState::Sent { at: now };
        match self.announcements.iter_mut().find(|a| a.addr == addr) {
            Some(a) => {
                a.state = state;
                a.refusals = 0;
                a.reason = Some(reason);
                a.manual = true;
            }
            None => {
                self.announcements.reserve_exact(1);
                self.announcements.push(Announcement {
                    addr,
                    id,
                    port: None,
                    state,
                    refusals: 0,
                    reason: Some(reason),
                    manual: true,
                });
            }
        }
        let c = PmCommand::Announce {
            token: self.token,
            id,
            addr,
            port: None,
        };
        self.commands.push_back(c.clone());
        Ok(c)
    }

    /// The kernel's answer to a command this connection queued.
    pub fn handle_command_result(
        &mut self,
        now: Instant,
        cmd: &PmCommand,
        result: Result<(), KernelRefusal>,
    ) {
        if self.closed || cmd.token() != self.token {
            self.ignored += 1;
            return;
        }
        self.touch(now);
        let refusal = match result {
            Ok(()) => {
                if let PmCommand::CreateSubflow { local, remote, .. } = cmd {
                    let path = Path {
                        local: *local,
                        remote: *remote,
                    };
                    if let Some(i) = self.oldest_requested(path, true) {
                        self.subflows[i].acked = true;
                    }
                }
                // The kernel sends SUB_PRIORITY only to the peer, never to the side that asked:
                // the ACK is our confirmation.
                if let PmCommand::SetBackup { key, backup, .. } = cmd {
                    if let Some(sf) = self.established_mut(*key) {
                        sf.backup = *backup;
                        if sf.want_backup == *backup {
                            sf.flag_retry = None;
                        }
                    }
                }
                if let PmCommand::Announce { addr, .. } = cmd {
                    let addr = addr.to_canonical();
                    if let Some(a) = self.announcements.iter_mut().find(|a| a.addr == addr) {
                        a.refusals = 0;
                    }
                }
                return;
            }
            Err(refusal) => refusal,
        };
        self.refusals += 1;
        match refusal.meaning(cmd) {
            RefusalMeaning::ConnectionGone => {
                // Whatever else is queued would be refused the same way.
                self.gone_in_kernel = true;
                self.last_refusal = Some((cmd.name(), refusal));
                self.on_closed(now);
                return;
            }
            RefusalMeaning::NotJoinable => {
                // Not the paths' fault: no failure recorded. Every join not yet sent or
                // answered would be refused the same way, so they end here; new ones wait for
                // the kernel's next ESTABLISHED (a connection that is closing sends none).
                self.established = false;
                self.commands
                    .retain(|c| !matches!(c, PmCommand::CreateSubflow { .. }));
                for sf in &mut self.subflows {
                    let waiting = match sf.state {
                        SubflowState::Pending { .. } => true,
                        SubflowState::Requested { .. } => !sf.acked,
                        _ => false,
                    };
                    if waiting {
                        sf.state = SubflowState::Failed {
                            at: now,
                            errno: refusal.errno.saturating_abs(),
                            message: refusal.message.clone(),
                        };
                    }
                }
                self.last_refusal = Some((cmd.name(), refusal));
                self.prune();
                return;
            }
            RefusalMeaning::SubflowNotReady => {
                // A join not yet fully established (or a subflow on its way out): the wish
                // stays, and is sent again once a sample shows the join fully established, or
                // after FLAG_RETRY_AFTER at the latest, a bounded number of times.
                if let PmCommand::SetBackup { key, .. } = cmd {
                    if let Some(sf) = self.established_mut(*key) {
                        let tries = sf.flag_retry.map_or(0, |(_, n)| n);
                        if !sf.closing && tries < MAX_FLAG_RETRIES {
                            sf.flag_retry = Some((now + FLAG_RETRY_AFTER, tries + 1));
                        } else {
                            sf.flag_retry = None;
                        }
                    }
                }
            }
            RefusalMeaning::SubflowGone | RefusalMeaning::Command => {
                // Not "not ready": a SET_FLAGS is not sent again (a resend refused so would
                // otherwise be resent at every sample).
                if let PmCommand::SetBackup { key, .. } = cmd {
                    if let Some(sf) = self.established_mut(*key) {
                        sf.flag_retry = None;
                    }
                }
            }
        }
        match cmd {
            // No answer in time (ETIMEDOUT from the command path): the kernel may still have
            // applied it, so the request stays `Requested` and its request timeout decides. A
            // retry now could open the same path twice.
            PmCommand::CreateSubflow { .. } if refusal.errno.saturating_abs() == ETIMEDOUT => {}
            PmCommand::CreateSubflow { local, remote, .. } => {
                let path = Path {
                    local: *local,
                    remote: *remote,
                };
                let found = self
                    .oldest_requested(path, true)
                    .or_else(|| self.oldest_requested(path, false));
                match found {
                    Some(i) => {
                        self.subflows[i].state = SubflowState::Failed {
                            at: now,
                            errno: refusal.errno.saturating_abs(),
                            message: refusal.message.clone(),
                        };
                        if self.subflows[i].timeout.is_none() {
                            self.record_failure(path, now);
                        }
                    }
                    None => self.ignored += 1,
                }
            }
            PmCommand::DestroySubflow { key, .. } => {
                // ESRCH: already gone, so it is closed. Anything else: keep waiting for
                // SUB_CLOSED rather than retrying a command the kernel does not want.
                if refusal.errno.saturating_abs() == ESRCH {
                    if let Some(sf) = self.established_mut(*key) {
                        sf.closing = false;
                        sf.state = SubflowState::Closed {
                            at: now,
                            error: None,
                        };
                    }
                }
            }
            PmCommand::Announce { addr, .. } => {
                let addr = addr.to_canonical();
                match self.announcements.iter_mut().find(|a| a.addr == addr) {
                    Some(a) => {
                        a.refusals = a.refusals.saturating_add(1);
                        a.state = AnnounceState::Refused {
                            at: now,
                            errno: refusal.errno.saturating_abs(),
                            message: refusal.message.clone(),
                        };
                    }
                    None => self.ignored += 1,
                }
            }
            // Recorded only: the wish stays, so the policy does not ask again and again.
            PmCommand::SetBackup { .. } | PmCommand::Remove { .. } => {}
        }
        self.last_refusal = Some((cmd.name(), refusal));
        self.prune();
    }

    /// Fresh health samples from sock_diag; each is stored on the established subflow it names.
    /// A sample that shows a join fully established sends the SET_FLAGS it was waiting for
    /// (see [`RefusalMeaning::SubflowNotReady`]).
    ///
    /// A sample of a socket still in SYN_SENT on a path with a requested entry whose port is
    /// not known yet gives that entry its port (the oldest such entry; several on one path are
    /// told apart only by their order), so that the policy can close it, and is kept on it; a
    /// probe's sample that shows its SYN in exponential backoff (`backoff > 0`: on Linux 6.18
    /// from the fifth retransmission, 5 s after the first SYN with the default
    /// `net.ipv4.tcp_syn_linear_timeouts = 4`, before which the SYN is sent every second)
    /// makes it `stale`.
    pub fn handle_samples(&mut self, now: Instant, samples: &[(SubflowKey, SubflowSample)]) {
        if self.closed {
            return;
        }
        self.touch(now);
        let token = self.token;
        for (key, sample) in samples {
            if let Some(sf) = self.established_mut(*key) {
                sf.sample = Some(*sample);
                if sample.fully_established && !sf.closing {
                    if let Some(c) = sf.resend_flag(token, now) {
                        self.commands.push_back(c);
                    }
                }
                continue;
            }
            if sample.tcp_state == TCP_SYN_SENT {
                if let Some(i) = self.learn_request_port(*key) {
                    let sf = &mut self.subflows[i];
                    sf.sample = Some(*sample);
                    if sf.timeout.is_some() && sample.backoff > 0 {
                        sf.stale = true;
                    }
                    continue;
                }
            }
            self.ignored += 1;
        }
    }

    /// Time passed: sends due pending creates, times out requests (retry with backoff, or
    /// `Failed` once the path is given up) and resets the failure count of paths whose subflow
    /// proved stable.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        self.touch(now);
        let pace = self.timers.announce_pace;
        for a in &mut self.announcements {
            if let AnnounceState::Sent { at } = a.state {
                if at + pace <= now {
                    a.state = AnnounceState::Unjoined { at };
                }
            }
        }
        for i in 0..self.subflows.len() {
            let path = self.subflows[i].path;
            match self.subflows[i].state {
                SubflowState::Pending { due } if due <= now => {
                    if self.given_up(&path) {
                        self.subflows[i].state = SubflowState::Failed {
                            at: now,
                            errno: ETIMEDOUT,
                            message: Some("path given up".to_owned()),
                        };
                    } else {
                        self.request(i, now);
                    }
                }
                SubflowState::Requested { since, .. }
                    if self.subflows[i]
                        .timeout
                        .is_some_and(|t| now.saturating_duration_since(since) >= t) =>
                {
                    // A probe past its time in flight: left to the kernel (see `stale`).
                    self.subflows[i].stale = true;
                }
                SubflowState::Requested { since, attempt }
                    if self.subflows[i].timeout.is_none()
                        && now.saturating_duration_since(since) >= self.timers.request_timeout =>
                {
                    let failures = self.record_failure(path, now);
                    self.subflows[i].state = if self.timers.gives_up_at(failures) {
                        SubflowState::Failed {
                            at: now,
                            errno: ETIMEDOUT,
                            message: Some(format!("no subflow after {attempt} attempts")),
                        }
                    } else {
                        SubflowState::Pending {
                            due: now + self.timers.backoff(failures),
                        }
                    };
                }
                SubflowState::Established { .. } => {
                    if let Some(at) = self.stable_deadline(i) {
                        if at <= now {
                            self.health.remove(&path);
                        }
                    }
                    let (token, sf) = (self.token, &mut self.subflows[i]);
                    if sf.flag_retry.is_some_and(|(due, _)| due <= now) && !sf.closing {
                        // No sample showed the join fully established in time (a connection
                        // that is not sampled): try again.
                        if let Some(c) = sf.resend_flag(token, now) {
                            self.commands.push_back(c);
                        }
                    }
                }
                _ => {}
            }
        }
        self.prune();
    }

    /// A local address came back (link up): its paths start afresh, and pending creates on them
    /// are due at once.
    pub fn local_addr_returned(&mut self, addr: IpAddr) {
        self.health.retain(|path, _| path.local != addr);
        let Some(now) = self.last_now else { return };
        for sf in &mut self.subflows {
            if let SubflowState::Pending { due } = &mut sf.state {
                if sf.path.local == addr && *due > now {
                    *due = now;
                }
            }
        }
    }

    /// The next command to send to the kernel, in the order they were decided.
    pub fn poll_command(&mut self) -> Option<PmCommand> {
        let cmd = self.commands.pop_front();
        if self.commands.is_empty() && self.commands.capacity() > 0 {
            // Commands come in short bursts; an idle connection keeps no queue allocated.
            self.commands = VecDeque::new();
        }
        cmd
    }

    /// The next instant [`Connection::handle_timeout`] must be called, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let announcements = self.announcements.iter().filter_map(|a| match a.state {
            AnnounceState::Sent { at } => Some(at + self.timers.announce_pace),
            _ => None,
        });
        (0..self.subflows.len())
            .filter_map(|i| match self.subflows[i].state {
                SubflowState::Pending { due } => Some(due),
                // A stale probe has no deadline left: it is the kernel's and the policy's.
                SubflowState::Requested { .. } if self.subflows[i].stale => None,
                SubflowState::Requested { since, .. } => Some(
                    since
                        + self.subflows[i]
                            .timeout
                            .unwrap_or(self.timers.request_timeout),
                ),
                SubflowState::Established { .. } => {
                    let retry = self.subflows[i].flag_retry.map(|(due, _)| due);
                    match (self.stable_deadline(i), retry) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    }
                }
                _ => None,
            })
            .chain(announcements)
            .min()
    }

    // ---- internals ----

    /// Append a subflow, growing the list by exactly one: a connection typically keeps a
    /// handful of subflows for its whole life, and tens of thousands of connections are
    /// tracked at once, so doubling the capacity would mostly hold empty slots.
    fn push_subflow(&mut self, sf: Subflow) -> usize {
        self.subflows.reserve_exact(1);
        self.subflows.push(sf);
        self.subflows.len() - 1
    }

    fn touch(&mut self, now: Instant) {
        self.last_now = Some(self.last_now.map_or(now, |t| t.max(now)));
    }

    /// When an established subflow resets its path's failures: only one that established after
    /// the path's last failure proves the path works again.
    fn stable_deadline(&self, i: usize) -> Option<Instant> {
        let sf = &self.subflows[i];
        let SubflowState::Established { since } = sf.state else {
            return None;
        };
        if sf.closing {
            return None;
        }
        let health = self.health.get(&sf.path)?;
        if health.failures == 0 || health.last_failure.is_some_and(|t| since < t) {
            return None;
        }
        Some(since + self.timers.stable_after)
    }

    fn record_failure(&mut self, path: Path, now: Instant) -> u32 {
        let h = self.health.entry(path).or_default();
        h.failures = h.failures.saturating_add(1);
        h.last_failure = Some(now);
        h.failures
    }

    /// The local address id for `addr`: reused if assigned, else the lowest free one in 1..=255.
    fn id_for(&mut self, addr: IpAddr) -> Option<AddrId> {
        if let Some(id) = self.known_local_id(addr) {
            return Some(id);
        }
        if INITIAL_LOCAL_ADDR_USES_ID0 && self.info.map(|i| i.local.ip()) == Some(addr) {
            self.remember_local_id(addr, 0);
            return Some(0);
        }
        let id = (1..=AddrId::MAX).find(|id| self.id_is_free(*id))?;
        self.remember_local_id(addr, id);
        Some(id)
    }

    /// The id to announce `addr` with: the one it already has on this connection (ours, or
    /// the kernel's), else the highest free one (see the module docs). Never 0: the kernel
    /// refuses to announce id 0, which names the initial subflow's address.
    fn announce_id(&mut self, addr: IpAddr) -> Option<AddrId> {
        if let Some(id) = self.known_local_id(addr) {
            return (id != 0).then_some(id);
        }
        let id = (1..=AddrId::MAX).rev().find(|id| self.id_is_free(*id))?;
        self.remember_local_id(addr, id);
        Some(id)
    }

    fn id_is_free(&self, id: AddrId) -> bool {
        self.local_ids.iter().all(|(_, used)| *used != id)
    }

    fn known_local_id(&self, addr: IpAddr) -> Option<AddrId> {
        let addr = addr.to_canonical();
        self.local_ids
            .iter()
            .find(|(a, _)| *a == addr)
            .map(|(_, id)| *id)
    }

    /// Record a new (address, id) pair; callers checked the address has none yet.
    fn remember_local_id(&mut self, addr: IpAddr, id: AddrId) {
        self.local_ids.reserve_exact(1);
        self.local_ids.push((addr.to_canonical(), id));
    }

    /// Announce `addr` (see the module docs): a new address gets an id, a withdrawn or refused
    /// one is sent again with its id, an active one is left alone. The initial subflow's
    /// address (id 0, which the peer knows) and a given-up address are not announced.
    fn announce(&mut self, now: Instant, addr: IpAddr, port: Option<u16>, reason: Reason) {
        let addr = addr.to_canonical();
        if self.info.map(|i| i.local.ip().to_canonical()) == Some(addr) {
            self.ignored += 1;
            return;
        }
        let i = match self.announcements.iter().position(|a| a.addr == addr) {
            Some(i) if self.announcements[i].is_active() => return,
            Some(i) if self.announcements[i].given_up() => {
                self.ignored += 1;
                return;
            }
            Some(i) => i,
            None => {
                let Some(id) = self.announce_id(addr) else {
                    self.ignored += 1;
                    return;
                };
                self.announcements.reserve_exact(1);
                self.announcements.push(Announcement {
                    addr,
                    id,
                    port,
                    state: AnnounceState::Sent { at: now },
                    refusals: 0,
                    reason: None,
                    manual: false,
                });
                self.announcements.len() - 1
            }
        };
        let a = &mut self.announcements[i];
        a.state = AnnounceState::Sent { at: now };
        a.port = port;
        a.reason = Some(reason);
        a.manual = false;
        self.commands.push_back(PmCommand::Announce {
            token: self.token,
            id: a.id,
            addr,
            port,
        });
    }

    /// Withdraw an active announcement: REMOVE its id (the kernel keeps the subflows from the
    /// address: closing them is a separate decision, after this one).
    fn withdraw(&mut self, now: Instant, addr: IpAddr, reason: Reason) {
        let addr = addr.to_canonical();
        match self
            .announcements
            .iter_mut()
            .find(|a| a.addr == addr && a.is_active() && !a.manual)
        {
            Some(a) => {
                a.state = AnnounceState::Withdrawn { at: now };
                a.reason = Some(reason);
                self.commands.push_back(PmCommand::Remove {
                    token: self.token,
                    id: a.id,
                });
            }
            None => self.ignored += 1,
        }
    }

    /// Remembers an id the kernel uses for `addr`, so our creates agree with its address list.
    fn learn_local_id(&mut self, addr: IpAddr, id: AddrId) {
        if id == 0 || self.known_local_id(addr).is_some() {
            return;
        }
        if self.local_ids.iter().any(|(_, known)| *known == id) {
            return;
        }
        self.remember_local_id(addr, id);
    }

    fn established_mut(&mut self, key: SubflowKey) -> Option<&mut Subflow> {
        self.subflows
            .iter_mut()
            .find(|s| s.is_established() && s.key() == Some(key))
    }

    /// The oldest `Requested` entry on `path` (only unacknowledged ones if `unacked_only`).
    fn oldest_requested(&self, path: Path, unacked_only: bool) -> Option<usize> {
        self.subflows
            .iter()
            .enumerate()
            .filter(|(_, s)| s.path == path && !(unacked_only && s.acked))
            .filter_map(|(i, s)| match s.state {
                SubflowState::Requested { since, .. } => Some((since, i)),
                _ => None,
            })
            .min()
            .map(|(_, i)| i)
    }

    fn oldest_pending(&self, path: Path) -> Option<usize> {
        self.subflows
            .iter()
            .enumerate()
            .filter(|(_, s)| s.path == path)
            .filter_map(|(i, s)| match s.state {
                SubflowState::Pending { due } => Some((due, i)),
                _ => None,
            })
            .min()
            .map(|(_, i)| i)
    }

    /// The `Requested` entry whose port (learnt from a sample) makes its key `key`.
    fn requested_with_key(&self, key: SubflowKey) -> Option<usize> {
        self.subflows
            .iter()
            .position(|s| matches!(s.state, SubflowState::Requested { .. }) && s.key() == Some(key))
    }

    /// A SYN_SENT socket named `key` is the kernel's socket of the requested entry with that
    /// port, else of the oldest requested entry on its path that has no port yet; returns
    /// which entry it is.
    fn learn_request_port(&mut self, key: SubflowKey) -> Option<usize> {
        if let Some(i) = self.requested_with_key(key) {
            return Some(i);
        }
        if self.subflows.iter().any(|s| s.key() == Some(key)) {
            // Another entry's (a closed probe's): not a request.
            return None;
        }
        let path = Path {
            local: key.local.ip(),
            remote: key.remote,
        };
        let oldest = self
            .subflows
            .iter()
            .enumerate()
            .filter(|(_, s)| s.path == path && s.local_port.is_none())
            .filter_map(|(i, s)| match s.state {
                SubflowState::Requested { since, .. } => Some((since, i)),
                _ => None,
            })
            .min()
            .map(|(_, i)| i);
        let i = oldest?;
        self.subflows[i].local_port = Some(key.local.port());
        Some(i)
    }

    /// `Action::Close` of a probe that has not established (its port known from a sample of
    /// its SYN_SENT socket): its socket is destroyed, the entry fails (ECANCELED) without
    /// counting against the path. Anything else with that key is ignored.
    fn close_probe(&mut self, now: Instant, key: SubflowKey, reason: Reason) {
        let Some(i) = self
            .requested_with_key(key)
            .filter(|&i| self.subflows[i].timeout.is_some() && !self.subflows[i].manual)
        else {
            self.ignored += 1;
            return;
        };
        let sf = &mut self.subflows[i];
        sf.state = SubflowState::Failed {
            at: now,
            errno: ECANCELED,
            message: Some("probe closed before it established".to_owned()),
        };
        sf.abandoned = true;
        sf.reason = Some(reason);
        self.commands.push_back(PmCommand::DestroySubflow {
            token: self.token,
            key,
        });
        self.prune();
    }

    /// Turns entry `i` into a `Requested` one and queues its create.
    fn request(&mut self, i: usize, now: Instant) {
        let attempt = self.failures(&self.subflows[i].path).saturating_add(1);
        let sf = &mut self.subflows[i];
        sf.state = SubflowState::Requested {
            since: now,
            attempt,
        };
        sf.acked = false;
        // A new create is a new socket: a port learnt for an earlier attempt is not its own.
        sf.local_port = None;
        // The create carries the flag: the kernel sends it in the join's SYN and keeps it as
        // the subflow's own (the subflow dump's BKUP_LOC).
        sf.backup = sf.want_backup;
        self.commands.push_back(PmCommand::CreateSubflow {
            token: self.token,
            local: sf.path.local,
            local_id: sf.loc_id,
            if_index: sf.if_index,
            remote: sf.path.remote,
            backup: sf.want_backup,
        });
    }

    #[allow(clippy::too_many_arguments)] // the fields of one `Action::Open`, plus time and reason
    fn open(
        &mut self,
        now: Instant,
        local: IpAddr,
        if_index: Option<u32>,
        remote: SocketAddr,
        backup: bool,
        timeout: Option<Duration>,
        reason: Reason,
    ) {
        let path = Path { local, remote };
        let probe = timeout.is_some();
        if !self.established
            || local.is_ipv4() != remote.is_ipv4()
            || self.join_denied(remote)
            || (!probe && self.given_up(&path))
        {
            self.ignored += 1;
            return;
        }
        let Some(loc_id) = self.id_for(local) else {
            self.ignored += 1;
            return;
        };
        let rem_id = self
            .remotes()
            .into_iter()
            .find(|(_, r)| *r == remote)
            .map_or(0, |(id, _)| id);
        let due = self.health.get(&path).and_then(|h| {
            h.last_failure
                .filter(|_| h.failures > 0 && !probe)
                .map(|t| t + self.timers.backoff(h.failures))
        });
        let mut sf = Subflow::new(path, SubflowState::Pending { due: now });
        sf.want_backup = backup;
        sf.loc_id = loc_id;
        sf.rem_id = rem_id;
        sf.if_index = if_index;
        sf.reason = Some(reason);
        sf.timeout = timeout;
        let i = self.push_subflow(sf);
        match due {
            Some(due) if due > now => self.subflows[i].state = SubflowState::Pending { due },
            _ => self.request(i, now),
        }
    }

    fn on_conn_info(&mut self, now: Instant, info: &ConnInfo, established: bool) {
        self.info = Some(*info);
        self.server_side = info.flags.server_side;
        if established {
            self.established = true;
        }
        let key = SubflowKey {
            local: info.local,
            remote: info.remote,
        };
        if let Some(sf) = self.subflows.iter_mut().find(|s| s.key() == Some(key)) {
            sf.initial = true;
            return;
        }
        let path = Path {
            local: info.local.ip(),
            remote: info.remote,
        };
        let mut sf = Subflow::new(path, SubflowState::Established { since: now });
        sf.local_port = Some(info.local.port());
        sf.loc_id = info.loc_id;
        sf.rem_id = info.rem_id;
        sf.initial = true;
        sf.acked = true;
        self.push_subflow(sf);
    }

    fn on_closed(&mut self, now: Instant) {
        self.closed = true;
        self.commands.clear();
        for sf in &mut self.subflows {
            if !sf.is_dead() {
                sf.closing = false;
                sf.state = SubflowState::Closed {
                    at: now,
                    error: None,
                };
            }
        }
    }

    fn on_removed(&mut self, now: Instant, rem_id: AddrId) {
        let gone = self
            .remotes()
            .into_iter()
            .find(|(id, _)| *id == rem_id)
            .map(|(_, sa)| sa);
        if rem_id == 0 {
            self.initial_remote_removed = true;
        } else if self.announced_remotes.remove(&rem_id).is_none() {
            self.ignored += 1;
        }
        // Creates not sent yet towards a withdrawn address are pointless.
        if let Some(gone) = gone {
            for sf in &mut self.subflows {
                if sf.path.remote == gone && matches!(sf.state, SubflowState::Pending { .. }) {
                    sf.state = SubflowState::Closed {
                        at: now,
                        error: None,
                    };
                }
            }
        }
    }

    fn on_sub_established(&mut self, now: Instant, s: &SubflowInfo) {
        let key = s.key();
        let if_index = s.if_idx.and_then(|i| u32::try_from(i).ok());
        if let Some(sf) = self.established_mut(key) {
            // A repeated report: refresh what the kernel says.
            sf.peer_backup = s.backup;
            sf.loc_id = s.loc_id;
            sf.rem_id = s.rem_id;
            sf.if_index = if_index.or(sf.if_index);
            return;
        }
        let path = Path {
            local: key.local.ip(),
            remote: key.remote,
        };
        let waiting = self
            .requested_with_key(key)
            .or_else(|| self.oldest_requested(path, false))
            .or_else(|| self.oldest_pending(path));
        let initial_key = self.info.map(|i| SubflowKey {
            local: i.local,
            remote: i.remote,
        });
        let abandoned = self.subflows.iter().position(|sf| {
            sf.abandoned && sf.key() == Some(key) && matches!(sf.state, SubflowState::Failed { .. })
        });
        let (i, ours) = match (waiting, abandoned) {
            (Some(i), _) => (i, true),
            // A probe the policy closed before it established, whose SYN was answered before
            // the destroy took effect: the same entry, with its intent, closing already (the
            // destroy is on its way).
            (None, Some(i)) => {
                self.subflows[i].closing = true;
                (i, true)
            }
            (None, None) => {
                // Not ours: peer-initiated, or one we lost track of. Our side of its flag is
                // not in the event: mirror the peer's, and do not fight it.
                let mut sf = Subflow::new(path, SubflowState::Established { since: now });
                sf.want_backup = s.backup;
                sf.backup = s.backup;
                sf.initial = initial_key == Some(key);
                (self.push_subflow(sf), false)
            }
        };
        let sf = &mut self.subflows[i];
        sf.state = SubflowState::Established { since: now };
        sf.local_port = Some(key.local.port());
        sf.loc_id = s.loc_id;
        sf.rem_id = s.rem_id;
        sf.peer_backup = s.backup;
        sf.if_index = if_index.or(sf.if_index);
        sf.acked = true;
        sf.stale = false;
        // A sample of its SYN_SENT socket is not one of the established subflow (whose
        // `last_ack_recv` would go back to the epoch).
        if sf.sample.is_some_and(|x| x.tcp_state == TCP_SYN_SENT) {
            sf.sample = None;
        }
        // Our create carried the flag we wanted then (`backup`); the event's BACKUP is the
        // peer's. Only a wish that changed while the join was in flight needs SET_FLAGS, and
        // the kernel refuses it until the join is fully established, one round trip after
        // this event: it is sent when a sample shows that (or after FLAG_RETRY_AFTER).
        if ours && !sf.closing && sf.want_backup != sf.backup {
            sf.flag_retry = Some((now + FLAG_RETRY_AFTER, 0));
        }
        self.learn_local_id(path.local, s.loc_id);
        let local = path.local.to_canonical();
        if let Some(a) = self.announcements.iter_mut().find(|a| a.addr == local) {
            if matches!(
                a.state,
                AnnounceState::Sent { .. } | AnnounceState::Unjoined { .. }
            ) {
                a.state = AnnounceState::Joined { at: now };
            }
        }
        // A path that works is no longer given up (its backoff stays until it proves stable).
        let cap = self.timers.max_retries.saturating_sub(1);
        if let Some(h) = self.health.get_mut(&path) {
            if self.timers.gives_up_at(h.failures) {
                h.failures = cap;
            }
        }
    }

    fn on_sub_closed(&mut self, now: Instant, s: &SubflowInfo) {
        let key = s.key();
        let error = s.error.filter(|e| *e != 0);
        let path = Path {
            local: key.local.ip(),
            remote: key.remote,
        };
        if let Some(sf) = self.established_mut(key) {
            let since = match sf.state {
                SubflowState::Established { since } => since,
                _ => now,
            };
            let intentional = sf.closing;
            sf.closing = false;
            sf.state = SubflowState::Closed { at: now, error };
            if !intentional && now.saturating_duration_since(since) < self.timers.stable_after {
                self.record_failure(path, now);
            }
            return;
        }
        // A join that never connected may be reported with remote port 0: its local address
        // and port name it.
        let requested = self.requested_with_key(key).or_else(|| {
            self.subflows.iter().position(|sf| {
                matches!(sf.state, SubflowState::Requested { .. })
                    && sf.path.local == key.local.ip()
                    && sf.path.remote.ip() == key.remote.ip()
                    && sf.local_port == Some(key.local.port())
            })
        });
        if requested.is_none() && self.subflows.iter().any(|sf| sf.key() == Some(key)) {
            // Already closed (repeated event, or ESRCH answered first), or an abandoned probe.
            return;
        }
        // A join that never established: the kernel reports it closed with the port it used.
        match requested.or_else(|| self.oldest_requested(path, false)) {
            Some(i) => {
                let reason = s
                    .reset_reason
                    .map(|r| format!(" (reset reason {r})"))
                    .unwrap_or_default();
                self.subflows[i].state = SubflowState::Failed {
                    at: now,
                    errno: error.map_or(0, i32::from),
                    message: Some(format!("join failed before establishing{reason}")),
                };
                if self.subflows[i].timeout.is_none() {
                    self.record_failure(path, now);
                }
            }
            None => self.ignored += 1,
        }
    }

    /// Drops the oldest dead entries beyond `keep_closed`.
    fn prune(&mut self) {
        loop {
            let dead = self.subflows.iter().filter(|s| s.is_dead()).count();
            if dead <= self.timers.keep_closed {
                return;
            }
            let oldest = self
                .subflows
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.dead_at().map(|at| (at, i)))
                .min()
                .map(|(_, i)| i);
            match oldest {
                Some(i) => {
                    self.subflows.remove(i);
                }
                None => return,
            }
        }
    }
}
