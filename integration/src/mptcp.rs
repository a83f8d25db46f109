//! Real MPTCP sockets (`IPPROTO_MPTCP` = 262) as std `TcpListener`/`TcpStream`, plus small
//! traffic helpers (an echo server, a sink, a sink that counts the bytes it reads, a ping).
//! Call these inside [`crate::Netns::exec`] to place them in a namespace.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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

/// Serve connections on `listener`: read and discard everything on a thread per connection,
/// adding every byte read to `count` (a sink for throughput measurements). Runs until the
/// listener fails (e.g. its namespace is deleted).
pub fn counting_server(listener: TcpListener, count: Arc<AtomicU64>) {
    for conn in listener.incoming() {
        let Ok(mut s) = conn else { break };
        let count = count.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 256 * 1024];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                count.fetch_add(n as u64, Ordering::Relaxed);
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

/// `SOL_MPTCP`.
const SOL_MPTCP: libc::c_int = 284;
/// `MPTCP_TCPINFO` (getsockopt at `SOL_MPTCP`): `struct mptcp_subflow_data` then one
/// `struct tcp_info` per subflow.
const MPTCP_TCPINFO: libc::c_int = 2;
/// `TCP_ESTABLISHED`.
const TCP_ESTABLISHED: u8 = 1;

/// How many subflows of an MPTCP socket of ours are established (TCP state), the initial one
/// included, read from the kernel (`MPTCP_TCPINFO`); `None` if the kernel does not say (e.g.
/// the socket fell back to TCP). It counts completed joins only; `mptcp_info`'s subflow
/// counters do not (`mptcpi_subflows_total` read 2 while the kernel was refusing the join with
/// ENOTCONN).
pub fn established_subflows(stream: &TcpStream) -> Option<usize> {
    use std::os::fd::AsRawFd;
    const HEADER: usize = 16;
    // The state is tcp_info's first byte; 8 bytes per subflow are enough.
    const PER: usize = 8;
    const MAX: usize = 16;
    let mut buf = [0u8; HEADER + PER * MAX];
    buf[0..4].copy_from_slice(&(HEADER as u32).to_ne_bytes()); // size_subflow_data
    buf[12..16].copy_from_slice(&(PER as u32).to_ne_bytes()); // size_user
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `buf`, which lives for the call.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            SOL_MPTCP,
            MPTCP_TCPINFO,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return None;
    }
    let n = u32::from_ne_bytes(buf[4..8].try_into().ok()?) as usize;
    Some(
        (0..n.min(MAX))
            .filter(|i| buf[HEADER + i * PER] == TCP_ESTABLISHED)
            .count(),
    )
}
