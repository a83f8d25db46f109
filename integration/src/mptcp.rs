//! Real MPTCP sockets (`IPPROTO_MPTCP` = 262) as std `TcpListener`/`TcpStream`, plus small
//! traffic helpers. Call these inside [`crate::Netns::exec`] to place them in a namespace.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// IPPROTO_MPTCP.
pub const IPPROTO_MPTCP: libc::c_int = libc::IPPROTO_MPTCP;

fn socket(addr: &SocketAddr) -> io::Result<Socket> {
    Socket::new(
        Domain::for_address(*addr),
        Type::STREAM,
        Some(Protocol::MPTCP),
    )
}

/// An MPTCP listener on `addr`.
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let s = socket(&addr)?;
    s.set_reuse_address(true)?;
    s.bind(&SockAddr::from(addr))?;
    s.listen(1024)?;
    Ok(s.into())
}

/// An MPTCP connection to `remote`, optionally from `local` (port chosen by the kernel).
pub fn connect(remote: SocketAddr, local: Option<IpAddr>) -> io::Result<TcpStream> {
    let s = socket(&remote)?;
    if let Some(l) = local {
        s.bind(&SockAddr::from(SocketAddr::new(l, 0)))?;
    }
    s.connect(&SockAddr::from(remote))?;
    Ok(s.into())
}

/// Serve connections on `listener`: each one is echoed back byte for byte on its own thread,
/// until the peer closes. Runs until the listener fails (e.g. its namespace is deleted).
pub fn echo_server(listener: TcpListener) {
    for conn in listener.incoming() {
        let Ok(mut s) = conn else { break };
        std::thread::spawn(move || {
            let mut buf = [0u8; 16384];
            loop {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
        });
    }
}

/// Serve connections on `listener`: read and discard everything (a sink for bulk transfers),
/// answering each connection's first bytes with one byte so the client knows MPTCP is up.
pub fn sink_server(listener: TcpListener) {
    for conn in listener.incoming() {
        let Ok(mut s) = conn else { break };
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            let mut first = true;
            loop {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if first {
                            first = false;
                            let _ = s.write_all(b"k");
                        }
                    }
                }
            }
        });
    }
}

/// Send `msg` and read the echo back: after this the connection is fully established
/// (the peer has seen our data-level ACK), which is when joins become possible.
pub fn ping(stream: &mut TcpStream, msg: &[u8]) -> io::Result<()> {
    stream.write_all(msg)?;
    let mut back = vec![0u8; msg.len()];
    stream.read_exact(&mut back)?;
    if back != msg {
        return Err(io::Error::other("echo mismatch"));
    }
    Ok(())
}
