//! Driving a netlink socket from the actix event loop: [`read_until_dead`] registers it with
//! the tokio reactor (no reader thread) and calls the owner each time it is readable, until
//! the socket fails for good.

use std::os::fd::AsRawFd;

use tokio::io::unix::{AsyncFd, AsyncFdReadyMutGuard};

use super::failure::{KernelSocket, SocketFailure};

/// Drive a socket from the event loop until it fails for good: switch it to non-blocking reads
/// (`set_nonblocking`), register it, and call `on_ready` each time it is readable. `on_ready`
/// reads, clears the readiness when the socket is drained, and returns `Err` for a fatal error.
/// Any failure — setting up, polling or reading — is returned as a failure of socket `which`.
pub(crate) async fn read_until_dead<T, E>(
    sock: T,
    set_nonblocking: impl FnOnce(&T) -> Result<(), E>,
    which: KernelSocket,
    mut on_ready: impl FnMut(&mut AsyncFdReadyMutGuard<'_, T>) -> Result<(), E>,
) -> SocketFailure
where
    T: AsRawFd,
    E: std::error::Error + 'static,
{
    if let Err(e) = set_nonblocking(&sock) {
        return SocketFailure::new(which, &e);
    }
    let mut afd = match readable_fd(sock) {
        Ok(a) => a,
        Err(e) => return SocketFailure::new(which, &e),
    };
    loop {
        let mut guard = match afd.readable_mut().await {
            Ok(g) => g,
            Err(e) => return SocketFailure::new(which, &e),
        };
        if let Err(e) = on_ready(&mut guard) {
            return SocketFailure::new(which, &e);
        }
    }
}

/// Register a netlink socket with the tokio reactor for readability.
fn readable_fd<T: AsRawFd>(sock: T) -> std::io::Result<AsyncFd<T>> {
    // SAFETY: our socket types own their descriptor (closed only on drop) and always return the
    // same one, so it stays open and unchanged for the AsyncFd's whole life.
    let r = unsafe { AsyncFd::register_with_interest(sock, tokio::io::Interest::READABLE) };
    r.map_err(std::io::Error::from)
}
