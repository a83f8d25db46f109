//! Bulk-transfer helpers for the tests that check a transfer end to end: a payload in which a
//! misplaced or lost block changes the digest, and the digest computed by an implementation
//! independent of ours (coreutils `sha256sum`).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

/// `len` pseudo-random bytes (xorshift, a fixed seed): deterministic, and no block repeats, so
/// a reordering or a lost block cannot go unnoticed.
pub fn payload(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The digest `sha256sum` (coreutils) prints for `data`.
pub fn sha256sum(data: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum (coreutils)");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let data = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().expect("sha256sum output");
    writer
        .join()
        .expect("writer thread")
        .expect("write to sha256sum");
    let text = String::from_utf8(out.stdout).expect("utf-8 digest");
    text.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// On a thread: accept one connection on `listener`, read it to the end (each read waiting at
/// most `timeout`), answer one byte; the thread returns what it received.
pub fn receive_one(listener: TcpListener, timeout: Duration) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_read_timeout(Some(timeout)).expect("read timeout");
        let mut got = Vec::new();
        s.read_to_end(&mut got).expect("receive");
        s.write_all(b"k").expect("answer");
        got
    })
}

/// Write `data`, close the sending direction and wait for [`receive_one`]'s answer: when this
/// returns, the receiver has everything.
pub fn send_and_wait(stream: &mut TcpStream, data: &[u8]) -> std::io::Result<()> {
    stream.write_all(data)?;
    stream.shutdown(Shutdown::Write)?;
    let mut ack = [0u8; 1];
    stream.read_exact(&mut ack)
}
