//! The control socket: a Unix stream socket (mode 0600) at `control.socket`. Protocol: the
//! client sends one request line (`status` or `addresses`), the daemon answers with one JSON
//! object on one line — `{"ok":true,"status":{…}}`, `{"ok":true,"addresses":{…}}` or
//! `{"ok":false,"error":"…"}` — and closes. Owns: claiming the path at start (a stale file
//! left by a crashed daemon is replaced, a live daemon on it makes the start fail), serving
//! requests on the actix loop with data gathered from the actors ([`Views`]), removing the file
//! on a clean stop, and the client side used by the `status`/`addresses` subcommands.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde::{Deserialize, Serialize};
use slog::Logger;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use netlink_actor::actors::{AddressMonitor, DiagPoller, GetAddresses, TakeSnapshot};

use super::metrics::Metrics;
use super::status::{self, Addresses, ConnStatus, Status};
use crate::actors::connection::GetConnection;
use crate::actors::policy::{Describe, GetListeners, PolicyActor};
use crate::actors::registry::{ListConnections, Registry};

/// Claiming the control socket failed.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// Another process accepts connections on the path.
    #[error("another mptcp-pmd is already running (its control socket {0} accepts connections); stop it first or set control.socket to another path")]
    AlreadyRunning(PathBuf),
    /// The path exists and is not a socket.
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    /// Creating the socket failed.
    #[error("cannot create the control socket {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The bound control socket; removes its file when dropped.
#[derive(Debug)]
pub struct ControlSocket {
    listener: Option<UnixListener>,
    path: PathBuf,
}

impl ControlSocket {
    /// Claim `path`: probe an existing file (a connect that succeeds means a live daemon), remove
    /// a stale one, bind, and restrict the file to its owner (0600).
    pub fn claim(path: &Path) -> Result<ControlSocket, ClaimError> {
        let io = |source| ClaimError::Io {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() => {
                if UnixStream::connect(path).is_ok() {
                    return Err(ClaimError::AlreadyRunning(path.to_path_buf()));
                }
                std::fs::remove_file(path).map_err(io)?;
            }
            Ok(_) => return Err(ClaimError::NotASocket(path.to_path_buf())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        // Create the file without group/other bits, so there is no window where it is open.
        // SAFETY: umask has no preconditions; it is restored right after.
        let old = unsafe { libc::umask(0o177) };
        let bound = UnixListener::bind(path);
        // SAFETY: as above.
        unsafe { libc::umask(old) };
        let listener = bound.map_err(io)?;
        let me = ControlSocket {
            listener: Some(listener),
            path: path.to_path_buf(),
        };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        Ok(me)
    }

    /// Take the listener (to serve it); the file is still removed when `self` drops.
    pub fn take_listener(&mut self) -> Option<UnixListener> {
        self.listener.take()
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One reply on the control socket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reply {
    /// Whether the request was served.
    pub ok: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The answer to `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// The answer to `addresses`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addresses: Option<Addresses>,
}

impl Reply {
    fn error(msg: impl Into<String>) -> Reply {
        Reply {
            ok: false,
            error: Some(msg.into()),
            status: None,
            addresses: None,
        }
    }
}

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
    /// Metrics, whose gauges a status refreshes.
    pub metrics: Metrics,
}

impl Views {
    /// Every tracked connection with its policy and subflows; also refreshes the gauges. The
    /// subflows' srtt/cwnd/retransmits come from a sock_diag snapshot taken for this request
    /// (the periodic poll only dumps subflows while a policy reads them).
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
        self.metrics
            .set_gauges(connections.len(), &status::subflows_by_state(&connections));
        self.metrics
            .set_announced(&status::announced_by_state(&connections));
        Ok(Status {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            connections,
        })
    }

    /// Usable and skipped local addresses, and the MPTCP listeners.
    pub async fn addresses(&self) -> Result<Addresses, MailboxError> {
        let (usable, skipped) = self.monitor.send(GetAddresses).await?;
        let listeners = self.policy.send(GetListeners).await?;
        Ok(status::addresses(&usable, &skipped, &listeners))
    }

    async fn answer(&self, request: &str) -> Reply {
        let r = match request.trim() {
            "status" => self.status().await.map(|s| Reply {
                status: Some(s),
                ..Reply::error("")
            }),
            "addresses" => self.addresses().await.map(|a| Reply {
                addresses: Some(a),
                ..Reply::error("")
            }),
            other => {
                return Reply::error(format!(
                    "unknown request {other:?}; expected status or addresses"
                ))
            }
        };
        match r {
            Ok(mut reply) => {
                reply.ok = true;
                reply.error = None;
                reply
            }
            Err(e) => Reply::error(format!("daemon actor unavailable: {e}")),
        }
    }
}

const REQUEST_LIMIT: u64 = 4096;

/// Serve the control socket on the current actix/tokio loop until the process stops.
pub fn serve(listener: UnixListener, views: Views, log: Logger) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::UnixListener::from_std(listener)?;
    super::server::spawn(
        listener,
        "control socket",
        views,
        log,
        |stream, views| async move { serve_one(stream, &views).await },
    );
    Ok(())
}

async fn serve_one(stream: tokio::net::UnixStream, views: &Views) -> std::io::Result<()> {
    use tokio::io::AsyncReadExt;
    let (rd, mut wr) = stream.into_split();
    let mut line = String::new();
    tokio::io::BufReader::new(rd.take(REQUEST_LIMIT))
        .read_line(&mut line)
        .await?;
    let reply = views.answer(&line).await;
    let mut text = serde_json::to_string(&reply).map_err(std::io::Error::other)?;
    text.push('\n');
    wr.write_all(text.as_bytes()).await?;
    wr.shutdown().await
}

/// A failed client request.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting failed.
    #[error("cannot connect to {path} (is mptcp-pmd running, and is this the right socket? see -s): {source}")]
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

/// Send one request and return the daemon's reply (and its raw JSON).
pub fn request(path: &Path, req: &str) -> Result<(Reply, String), ClientError> {
    let io = |source| ClientError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut s = UnixStream::connect(path).map_err(|source| ClientError::Connect {
        path: path.to_path_buf(),
        source,
    })?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(io)?;
    s.write_all(format!("{req}\n").as_bytes()).map_err(io)?;
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).map_err(io)?;
    let reply: Reply =
        serde_json::from_str(&line).map_err(|e| ClientError::Reply(format!("{e}: {line:?}")))?;
    if !reply.ok {
        return Err(ClientError::Reply(
            reply.error.unwrap_or_else(|| "request failed".into()),
        ));
    }
    Ok((reply, line))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("mptcp-pmd-control-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn claim_sets_0600_replaces_stale_and_refuses_live() {
        let p = dir().join("a.sock");
        // A stale socket: bound then the listener closed (nobody accepts).
        drop(UnixListener::bind(&p).unwrap());
        assert!(p.exists());
        let mut c = ControlSocket::claim(&p).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Live: the listener exists, a connect succeeds (queued in the backlog).
        match ControlSocket::claim(&p) {
            Err(ClaimError::AlreadyRunning(_)) => {}
            other => panic!("expected AlreadyRunning, got {other:?}"),
        }
        let _l = c.take_listener();
        drop(c);
        assert!(!p.exists(), "file removed on drop");
        let f = dir().join("plain");
        std::fs::write(&f, "x").unwrap();
        assert!(matches!(
            ControlSocket::claim(&f),
            Err(ClaimError::NotASocket(_))
        ));
    }
}
