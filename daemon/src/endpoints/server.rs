//! The accept loop shared by the control socket and the metrics endpoint: accept on the
//! actix/tokio loop, serve each client on its own task with a time limit, and keep going after
//! a failed accept (e.g. EMFILE) instead of giving up.

use std::future::Future;
use std::time::Duration;

use slog::{debug, warn, Logger};

/// How long one client may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// A listener the loop can accept on.
pub trait Accept: 'static {
    /// The accepted connection.
    type Stream: 'static;
    /// Accept one connection.
    fn accept_one(&self) -> impl Future<Output = std::io::Result<Self::Stream>>;
}

impl Accept for tokio::net::UnixListener {
    type Stream = tokio::net::UnixStream;
    async fn accept_one(&self) -> std::io::Result<Self::Stream> {
        self.accept().await.map(|(s, _)| s)
    }
}

impl Accept for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;
    async fn accept_one(&self) -> std::io::Result<Self::Stream> {
        self.accept().await.map(|(s, _)| s)
    }
}

/// Spawn the accept loop for `listener`; `serve_one` handles one client with a clone of
/// `views` (what the server reads its answers from). `what` names the server in log lines.
/// Aborting the returned task ends the loop (clients already accepted finish).
pub fn spawn<L, V, F, Fut>(
    listener: L,
    what: &'static str,
    views: V,
    log: Logger,
    serve_one: F,
) -> tokio::task::JoinHandle<()>
where
    L: Accept,
    V: Clone + 'static,
    F: Fn(L::Stream, V) -> Fut + 'static,
    Fut: Future<Output = std::io::Result<()>> + 'static,
{
    actix::spawn(async move {
        loop {
            let stream = match listener.accept_one().await {
                Ok(s) => s,
                Err(e) => {
                    warn!(log, "accept failed"; "server" => what, "error" => %e);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let client = serve_one(stream, views.clone());
            let log = log.clone();
            actix::spawn(async move {
                match tokio::time::timeout(CLIENT_TIMEOUT, client).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => debug!(log, "client failed"; "server" => what, "error" => %e),
                    Err(_) => debug!(log, "client timed out"; "server" => what),
                }
            });
        }
    })
}
