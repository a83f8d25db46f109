//! systemd readiness notification (`Type=notify`): a datagram to `$NOTIFY_SOCKET` (a path, or
//! an abstract name written with a leading `@`), without libsystemd. A no-op when the variable is
//! unset, so running outside systemd is unaffected.

use std::os::unix::net::UnixDatagram;

/// Send `state` (e.g. `"READY=1"`) to the service manager, if there is one. Returns whether a
/// notification was sent.
pub fn notify(state: &str) -> std::io::Result<bool> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let sock = UnixDatagram::unbound()?;
    let bytes = path.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sock.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        sock.send_to(state.as_bytes(), &path)?;
    }
    Ok(true)
}
