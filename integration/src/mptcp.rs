//! Real MPTCP sockets (`IPPROTO_MPTCP` = 262) as std `TcpListener`/`TcpStream`, plus small
//! traffic helpers. Call these inside [`crate::Netns::exec`] to place them in a namespace.

use std::io::{self, Read, Write};
use std::mem::size_of;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{FromRawFd, OwnedFd};

/// IPPROTO_MPTCP.
pub const IPPROTO_MPTCP: libc::c_int = 262;

fn sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than sockaddr_in and suitably aligned.
            unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in, sin) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above.
            unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in6, sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

fn socket(v6: bool) -> io::Result<OwnedFd> {
    let domain = if v6 { libc::AF_INET6 } else { libc::AF_INET };
    // SAFETY: plain socket(2) call.
    let fd = unsafe {
        libc::socket(
            domain,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            IPPROTO_MPTCP,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, owned descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn bind(fd: &OwnedFd, addr: &SocketAddr) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let (ss, len) = sockaddr(addr);
    // SAFETY: ss/len describe a valid sockaddr.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &ss as *const _ as *const libc::sockaddr,
            len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// An MPTCP listener on `addr`.
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    use std::os::fd::AsRawFd;
    let fd = socket(addr.is_ipv6())?;
    let one: libc::c_int = 1;
    // SAFETY: valid fd and option buffer.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            &one as *const _ as *const libc::c_void,
            size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    bind(&fd, &addr)?;
    // SAFETY: valid fd.
    if unsafe { libc::listen(fd.as_raw_fd(), 1024) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(TcpListener::from(fd))
}

/// An MPTCP connection to `remote`, optionally from `local` (port chosen by the kernel).
pub fn connect(remote: SocketAddr, local: Option<IpAddr>) -> io::Result<TcpStream> {
    use std::os::fd::AsRawFd;
    let fd = socket(remote.is_ipv6())?;
    if let Some(l) = local {
        bind(&fd, &SocketAddr::new(l, 0))?;
    }
    let (ss, len) = sockaddr(&remote);
    // SAFETY: valid fd and sockaddr.
    let rc = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            &ss as *const _ as *const libc::sockaddr,
            len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(TcpStream::from(fd))
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
