//! The control socket: a Unix stream socket at `control.socket` (mode 0600, root only; with
//! `control.group`, 0660 and that group, which may read). It speaks the versioned protocol of
//! docs/CONTROL.md ([`super::protocol`]): one request line per connection, one JSON reply line,
//! then for `monitor` a stream of lines until either side closes.
//!
//! Owns: serving requests on the actix loop ([`Control`]): who
//! asks (SO_PEERCRED, SO_PEERGROUPS) and what they may do, at most [`MAX_CLIENTS`] requests at
//! once, status and addresses gathered from the actors ([`Views`]), operator commands handed to
//! the connection's actor (each logged with the caller's uid and pid, and counted), monitor
//! streams fed from the [`Monitor`] hub; and the client side of the CLI ([`request`],
//! [`monitor`]). The socket's file (claiming, sharing with the group, re-creating, removing it)
//! is [`super::ctlsock`]'s.

use std::cell::Cell;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use mptcp_pmd_policies::{PmCommand, Token};
use slog::{debug, info, Logger};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

use netlink_actor::actors::{AddressMonitor, DiagPoller, GetAddresses, TakeSnapshot};

use super::metrics::Metrics;
use super::monitor::{Monitor, Subscription, QUEUE_LINES};
use super::protocol::{
    self, authorize, parse_request, token_text, Done, ErrorCode, MonitorFilter, Op, Peer, Reply,
    Request, RequestError, Subscribed, REQUEST_LIMIT,
};
use super::status::{self, Addresses, ConnStatus, Status};
use crate::actors::connection::{GetConnection, Operate, Operated, Operation};
use crate::actors::policy::{Describe, GetBudgets, GetListeners, PolicyActor};
use crate::actors::registry::{GetConnectionActor, ListConnections, Registry};

/// The actors the views are gathered from.
#[derive(Clone)]
pub struct Views {
    /// The registry (connections).
    pub registry: Addr<Registry>,
    /// The policy actor (which policy serves a connection).
    pub policy: Addr<PolicyActor>,
    /// The address monitor.
    pub monitor: Addr<AddressMonitor>,
    /// The sock_diag poller (fresh subflow samples for the status).
    pub diag: Addr<DiagPoller>,
    /// Metrics, served by the metrics endpoint.
    pub metrics: Metrics,
}

impl Views {
    /// Every tracked connection with its policy and subflows. The subflows' srtt/cwnd/retransmits
    /// come from a sock_diag snapshot taken for this request (the periodic poll only dumps
    /// subflows while a policy reads them): a round trip to every connection actor plus a dump
    /// of every subflow's tcp_info, ~0.1 s at 10,000 connections (BENCHMARKS.md, c.). The
    /// metrics endpoint does not call this: its gauges are kept current by the actors.
    pub async fn status(&self) -> Result<Status, MailboxError> {
        let actors = self.registry.send(ListConnections).await?;
        let mut conns = Vec::with_capacity(actors.len());
        for (_, a) in actors {
            // A connection that stopped meanwhile is simply not listed.
            if let Ok(c) = a.send(GetConnection).await {
                conns.push(*c);
            }
        }
        // Without a snapshot (sock_diag failed) the status still lists every connection, with
        // the samples the connections last received.
        if let Ok(snap) = self.diag.send(TakeSnapshot).await? {
            let now = Instant::now();
            let by_token: std::collections::HashMap<_, _> =
                snap.conns.iter().map(|c| (c.token, c)).collect();
            for conn in &mut conns {
                if let Some(c) = by_token.get(&conn.token()) {
                    conn.handle_samples(now, &c.samples());
                }
            }
        }
        let described = self.policy.send(Describe(conns.clone())).await?;
        let now = Instant::now();
        let connections: Vec<_> = conns
            .iter()
            .zip(described)
            .map(|(c, d)| ConnStatus {
                note: d.note,
                ..status::connection(now, c, d.policy, &d.rule)
            })
            .collect();
        let budgets = self.policy.send(GetBudgets).await?;
        Ok(Status {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            connections,
            budgets,
        })
    }

    /// Usable and skipped local addresses, and the MPTCP listeners.
    pub async fn addresses(&self) -> Result<Addresses, MailboxError> {
        let (usable, skipped) = self.monitor.send(GetAddresses).await?;
        let listeners = self.policy.send(GetListeners).await?;
        let budgets = self.policy.send(GetBudgets).await?;
        Ok(status::addresses(&usable, &skipped, &listeners, budgets))
    }
}

/// Requests served at once (`monitor` streams are counted apart, see [`super::monitor`]); the
/// next client gets a `busy` reply at once.
pub const MAX_CLIENTS: usize = 32;

/// The control server: what a request is served from, and its rules.
pub struct Control {
    /// status and addresses.
    pub views: Views,
    /// The monitor hub clients subscribe to.
    pub stream: Monitor,
    /// `control.group`'s id: its members may read.
    pub group: Option<u32>,
    /// `--dry-run`: manual PM commands are refused.
    pub dry_run: bool,
    /// Where requests are logged.
    pub log: Logger,
    /// Requests being served now.
    clients: Cell<usize>,
}

impl Control {
    /// A server for `views` and `stream`.
    pub fn new(
        views: Views,
        stream: Monitor,
        group: Option<u32>,
        dry_run: bool,
        log: Logger,
    ) -> Control {
        Control {
            views,
            stream,
            group,
            dry_run,
            log,
            clients: Cell::new(0),
        }
    }
}

/// One request slot, given back when dropped (also when the client's time runs out).
struct Slot(Rc<Control>);

impl Slot {
    fn take(c: &Rc<Control>) -> Option<Slot> {
        let n = c.clients.get();
        (n < MAX_CLIENTS).then(|| {
            c.clients.set(n + 1);
            Slot(c.clone())
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.clients.set(self.0.clients.get().saturating_sub(1));
    }
}

/// Serve the control socket on the current actix/tokio loop until the process stops (or the
/// returned task is aborted: a re-created socket replaces it).
pub fn serve(
    listener: UnixListener,
    control: Rc<Control>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::UnixListener::from_std(listener)?;
    let log = control.log.clone();
    Ok(super::server::spawn(
        listener,
        "control socket",
        control,
        log,
        |stream, control| async move { serve_one(stream, control).await },
    ))
}

/// The peer's credentials: uid, gid and pid as of its connect (SO_PEERCRED) and its
/// supplementary groups (SO_PEERGROUPS, Linux 4.13+; `/proc/PID/status` otherwise).
fn peer_of(stream: &tokio::net::UnixStream) -> std::io::Result<Peer> {
    let cred = stream.peer_cred()?;
    let pid = cred.pid().and_then(|p| u32::try_from(p).ok()).unwrap_or(0);
    let groups = peer_groups(stream.as_raw_fd()).unwrap_or_else(|| proc_groups(pid));
    Ok(Peer {
        uid: cred.uid(),
        gid: cred.gid(),
        pid,
        groups,
    })
}

fn peer_groups(fd: std::os::fd::RawFd) -> Option<Vec<u32>> {
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut len =
            libc::socklen_t::try_from(groups.len() * std::mem::size_of::<libc::gid_t>()).ok()?;
        // SAFETY: the buffer is `len` bytes of gid_t, which the call fills and shortens `len` to.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let n = usize::try_from(len).ok()? / std::mem::size_of::<libc::gid_t>();
        if rc == 0 {
            groups.truncate(n.min(groups.len()));
            return Some(groups);
        }
        // ERANGE: `len` now says how much is needed (NGROUPS_MAX is 65536).
        let err = std::io::Error::last_os_error().raw_os_error();
        if err == Some(libc::ERANGE) && n > groups.len() && n <= 65536 {
            groups.resize(n, 0);
            continue;
        }
        return None;
    }
}

/// The `Groups:` line of `/proc/PID/status` (empty if unreadable).
fn proc_groups(pid: u32) -> Vec<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|g| {
            g.split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Read one request: up to and including the first newline, at most [`REQUEST_LIMIT`] + 1
/// bytes (one more than allowed, so that the parser can tell a request that is too long).
async fn read_request<R: tokio::io::AsyncBufRead + Unpin>(rd: &mut R) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    rd.take(REQUEST_LIMIT as u64 + 1)
        .read_until(b'\n', &mut bytes)
        .await?;
    Ok(bytes)
}

async fn send<W: tokio::io::AsyncWrite + Unpin>(wr: &mut W, reply: &Reply) -> std::io::Result<()> {
    wr.write_all(reply.to_line().as_bytes()).await
}

/// How much of a refused request is read and thrown away after the reply, and for how long.
const DRAIN_LIMIT: u64 = 1 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// Send `reply`, end our side, and read what the client still sends (a request that was too
/// long, several lines) until it ends its side, up to [`DRAIN_LIMIT`] bytes or [`DRAIN_TIME`]:
/// closing a Unix socket with unread data makes the client's next read fail with ECONNRESET
/// instead of ending cleanly after the reply.
async fn reply_and_close<R: tokio::io::AsyncRead + Unpin>(
    rd: R,
    mut wr: tokio::net::unix::OwnedWriteHalf,
    reply: &Reply,
) -> std::io::Result<()> {
    send(&mut wr, reply).await?;
    wr.shutdown().await?;
    let (mut rest, mut sink) = (rd.take(DRAIN_LIMIT), tokio::io::sink());
    let _ = tokio::time::timeout(DRAIN_TIME, tokio::io::copy(&mut rest, &mut sink)).await;
    Ok(())
}

async fn serve_one(stream: tokio::net::UnixStream, control: Rc<Control>) -> std::io::Result<()> {
    let peer = peer_of(&stream)?;
    let (rd, mut wr) = stream.into_split();
    let Some(slot) = Slot::take(&control) else {
        let e = RequestError::new(
            ErrorCode::Busy,
            format!("{MAX_CLIENTS} requests are being served already; try again"),
        );
        send(&mut wr, &Reply::error(&e)).await?;
        return wr.shutdown().await;
    };
    let mut rd = tokio::io::BufReader::new(rd);
    let bytes = read_request(&mut rd).await?;
    let request = parse_request(&bytes).and_then(|r| {
        authorize(&peer, control.group, &r)?;
        Ok(r)
    });
    let request = match request {
        Ok(r) => r,
        Err(e) => {
            if e.code == ErrorCode::Forbidden {
                info!(control.log, "control request refused"; "uid" => peer.uid, "pid" => peer.pid, "error" => %e);
            } else {
                debug!(control.log, "bad control request"; "uid" => peer.uid, "pid" => peer.pid, "error" => %e);
            }
            return reply_and_close(rd, wr, &Reply::error(&e)).await;
        }
    };
    let reply = match request {
        Request::Status => control.views.status().await.map(Reply::status),
        Request::Addresses => control.views.addresses().await.map(Reply::addresses),
        Request::Monitor(filter) => {
            // The stream outlives this request (and its time limit): it gets a task of its
            // own, and gives its request slot back now.
            drop(slot);
            return subscribe(&control, &peer, filter, rd, wr).await;
        }
        Request::Command { token, op } => Ok(control.command(&peer, token, op).await),
    };
    let reply = reply.unwrap_or_else(|e| {
        Reply::error(&RequestError::new(
            ErrorCode::Unavailable,
            format!("daemon actor unavailable: {e}"),
        ))
    });
    send(&mut wr, &reply).await?;
    wr.shutdown().await
}

/// Answer `monitor` and start its stream.
async fn subscribe(
    control: &Control,
    peer: &Peer,
    filter: MonitorFilter,
    rd: tokio::io::BufReader<tokio::net::unix::OwnedReadHalf>,
    mut wr: tokio::net::unix::OwnedWriteHalf,
) -> std::io::Result<()> {
    let sub = match control.stream.subscribe(filter) {
        Ok(s) => s,
        Err(e) => {
            send(
                &mut wr,
                &Reply::error(&RequestError::new(ErrorCode::Busy, e.to_string())),
            )
            .await?;
            return wr.shutdown().await;
        }
    };
    send(
        &mut wr,
        &Reply::subscribed(Subscribed {
            kinds: filter.kinds(),
            token: filter.token.map(token_text),
            queue: QUEUE_LINES,
        }),
    )
    .await?;
    info!(control.log, "monitor attached"; "uid" => peer.uid, "pid" => peer.pid, "monitors" => control.stream.subscribers());
    let log = control.log.clone();
    let (uid, pid) = (peer.uid, peer.pid);
    actix::spawn(async move {
        let why = stream_lines(sub, rd, wr).await;
        info!(log, "monitor detached"; "uid" => uid, "pid" => pid, "why" => why);
    });
    Ok(())
}

/// Write a subscriber's lines until it goes away (its reading side closes, or a write
/// fails); returns why it ended. A write that waits on a reader that does not read only
/// keeps this task waiting: the queue meanwhile drops and counts (see [`super::monitor`]).
async fn stream_lines(
    sub: Subscription,
    mut rd: tokio::io::BufReader<tokio::net::unix::OwnedReadHalf>,
    mut wr: tokio::net::unix::OwnedWriteHalf,
) -> &'static str {
    let mut scratch = [0u8; 256];
    loop {
        let batch = tokio::select! {
            b = sub.next_batch() => b,
            // The client sends nothing after its request: data or EOF both end the stream.
            r = rd.read(&mut scratch) => {
                return match r {
                    Ok(0) => "the client closed the connection",
                    Ok(_) => "the client sent more than its request",
                    Err(_) => "the connection failed",
                };
            }
        };
        let mut out =
            String::with_capacity(batch.lines.iter().map(|l| l.len()).sum::<usize>() + 128);
        for l in &batch.lines {
            out.push_str(l);
        }
        if batch.lost > 0 {
            out.push_str(&protocol::lost_line(super::monitor::unix_time(), batch.lost).to_line());
        }
        if wr.write_all(out.as_bytes()).await.is_err() {
            return "the connection failed";
        }
    }
}

impl Control {
    /// Carry out an operator's command on one connection; log it with the caller and count it.
    async fn command(&self, peer: &Peer, token: Token, op: Op) -> Reply {
        let name = op.name();
        let reply = self.operate(peer, token, op).await;
        let result = match (&reply.code, reply.ok) {
            (_, true) => "ok",
            (Some(c), false) => code_name(*c),
            (None, false) => "error",
        };
        self.views.metrics.operator_command(name, result);
        info!(self.log, "operator command"; "cmd" => name, "token" => token_text(token),
            "uid" => peer.uid, "pid" => peer.pid, "result" => result,
            "detail" => reply.done.as_ref().map(|d| d.detail.as_str()).or(reply.error.as_deref()).unwrap_or(""));
        reply
    }

    async fn operate(&self, peer: &Peer, token: Token, op: Op) -> Reply {
        let name = op.name();
        let operation = match op {
            Op::Manual(m) => Operation::Manual(m),
            Op::Hold => Operation::Hold(true),
            Op::Release => Operation::Hold(false),
        };
        let error = |code, msg: String| Reply::error(&RequestError::new(code, msg));
        if self.dry_run && matches!(operation, Operation::Manual(_)) {
            return error(ErrorCode::DryRun, dry_run_message(name));
        }
        let actor = match self.views.registry.send(GetConnectionActor(token)).await {
            Ok(Some(a)) => a,
            Ok(None) => {
                return error(
                    ErrorCode::NoConnection,
                    format!(
                        "no tracked connection has token {} (see `mptcp-pmd status`)",
                        token_text(token)
                    ),
                )
            }
            Err(e) => return error(ErrorCode::Unavailable, format!("registry unavailable: {e}")),
        };
        let out = actor
            .send(Operate {
                op: operation,
                uid: peer.uid,
                pid: peer.pid,
            })
            .await;
        let done = |detail: String, changed| {
            Reply::done(Done {
                command: name.to_string(),
                token: token_text(token),
                detail,
                changed,
            })
        };
        match out {
            Err(e) => error(
                ErrorCode::NoConnection,
                format!("the connection {} is gone: {e}", token_text(token)),
            ),
            Ok(Operated::Refused(r)) => error(ErrorCode::Refused, format!("{name}: {r}")),
            Ok(Operated::Kernel(r)) => Reply::kernel_refused(name, &r),
            Ok(Operated::DryRun) => error(ErrorCode::DryRun, dry_run_message(name)),
            Ok(Operated::Done {
                command: Some(cmd), ..
            }) => done(describe(&cmd), None),
            Ok(Operated::Done { changed, .. }) => {
                let detail = match (name, changed == Some(true)) {
                    ("hold", true) => "held: the policy no longer acts on this connection",
                    ("hold", false) => "was held already",
                    (_, true) => "released: the policy acts on this connection again",
                    (_, false) => "was not held",
                };
                done(detail.to_string(), changed)
            }
        }
    }
}

fn dry_run_message(name: &str) -> String {
    format!("{name}: the daemon runs with --dry-run and sends no command to the kernel")
}

/// The wire name of an error code (a metrics label).
fn code_name(c: ErrorCode) -> &'static str {
    match c {
        ErrorCode::BadRequest => "bad_request",
        ErrorCode::TooLarge => "too_large",
        ErrorCode::UnsupportedVersion => "unsupported_version",
        ErrorCode::UnknownCommand => "unknown_command",
        ErrorCode::Forbidden => "forbidden",
        ErrorCode::Busy => "busy",
        ErrorCode::NoConnection => "no_connection",
        ErrorCode::Refused => "refused",
        ErrorCode::KernelRefused => "kernel_refused",
        ErrorCode::DryRun => "dry_run",
        ErrorCode::Unavailable => "unavailable",
        ErrorCode::Other => "other",
    }
}

/// What was sent, for the operator.
fn describe(cmd: &PmCommand) -> String {
    match cmd {
        PmCommand::CreateSubflow {
            local,
            local_id,
            remote,
            backup,
            ..
        } => format!(
            "SUBFLOW_CREATE {local} (id {local_id}) -> {remote}{} accepted by the kernel; the join shows in `status` once established",
            if *backup { " backup" } else { "" }
        ),
        PmCommand::DestroySubflow { key, .. } => {
            format!("SUBFLOW_DESTROY {key} accepted by the kernel")
        }
        PmCommand::SetBackup { key, backup, .. } => format!(
            "SET_FLAGS backup {} on {key} accepted by the kernel",
            if *backup { "on" } else { "off" }
        ),
        PmCommand::Announce { id, addr, .. } => {
            format!("ANNOUNCE {addr} (id {id}) accepted by the kernel")
        }
        PmCommand::Remove { id, .. } => format!("REMOVE id {id} accepted by the kernel"),
    }
}

/// A failed client request.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting failed.
    #[error("cannot connect to {path} (is mptcp-pmd running, is this the right socket (see -s), and may this user use it?): {source}")]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The exchange failed.
    #[error("control socket {path}: {source}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The reply is not what we expect.
    #[error("unexpected reply from the daemon: {0}")]
    Reply(String),
}

/// How long a client waits for a reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

fn connect(path: &Path, req: &Request) -> Result<(BufReader<UnixStream>, Reply), ClientError> {
    let io = |source| ClientError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut s = UnixStream::connect(path).map_err(|source| ClientError::Connect {
        path: path.to_path_buf(),
        source,
    })?;
    s.set_read_timeout(Some(REPLY_TIMEOUT)).map_err(io)?;
    s.write_all(req.to_line().as_bytes()).map_err(io)?;
    let mut rd = BufReader::new(s);
    let mut line = String::new();
    rd.read_line(&mut line).map_err(io)?;
    if line.is_empty() {
        return Err(ClientError::Reply(
            "the daemon closed the connection without a reply".into(),
        ));
    }
    let reply: Reply =
        serde_json::from_str(&line).map_err(|e| ClientError::Reply(format!("{e}: {line:?}")))?;
    Ok((rd, reply))
}

/// Send one request and return the daemon's reply (an error reply too: see `ok`).
pub fn request(path: &Path, req: &Request) -> Result<Reply, ClientError> {
    connect(path, req).map(|(_, reply)| reply)
}

/// Subscribe with `req` (a `monitor` request) and hand every line to `line` until the daemon
/// closes the stream (`Ok(reply)` then) or `line` returns false. An error reply is returned
/// as it is, with no line read.
pub fn monitor(
    path: &Path,
    req: &Request,
    mut line: impl FnMut(&str) -> bool,
) -> Result<Reply, ClientError> {
    let (mut rd, reply) = connect(path, req)?;
    if !reply.ok {
        return Ok(reply);
    }
    let io = |source| ClientError::Io {
        path: path.to_path_buf(),
        source,
    };
    // The stream has no end in time: wait as long as the daemon runs.
    rd.get_ref().set_read_timeout(None).map_err(io)?;
    let mut buf = String::new();
    loop {
        buf.clear();
        if rd.read_line(&mut buf).map_err(io)? == 0 {
            return Ok(reply);
        }
        if !line(buf.trim_end()) {
            return Ok(reply);
        }
    }
}
