//! Waking up when a directory's entries change (inotify), so that the control socket's file is
//! checked when something in its directory is deleted, moved or created — and never on a timer
//! while nothing happens: an idle daemon makes no periodic wake-ups (BENCHMARKS.md c, "context
//! switches over 5 s idle"). The check itself is `endpoints::ctlsock`'s; this module only says
//! "look now", and whether its watch was lost (the directory itself deleted or moved), in which
//! case the caller polls until the directory is back and watches again.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// The events that can change what a path in the directory names.
const MASK: u32 = libc::IN_DELETE
    | libc::IN_CREATE
    | libc::IN_MOVED_FROM
    | libc::IN_MOVED_TO
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF;

/// Events that end the watch: the directory went away (or was moved), the kernel dropped it.
const LOST: u32 = libc::IN_DELETE_SELF | libc::IN_MOVE_SELF | libc::IN_IGNORED | libc::IN_UNMOUNT;

/// An inotify watch of one directory, readable on the event loop, reporting the changes of
/// one name in it.
#[derive(Debug)]
pub struct DirWatch {
    fd: AsyncFd<OwnedFd>,
    /// The file name whose entry matters (empty: any entry's change is reported).
    name: Vec<u8>,
}

/// What a batch of events said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Something in the directory changed: look at the path again.
    Entries,
    /// The watch is gone (the directory was deleted, moved or unmounted): look again, and
    /// poll until it can be watched again.
    Lost,
}

impl DirWatch {
    /// Watch the directory that holds `file` (its parent; `.` for a bare name) for changes of
    /// `file`'s entry; changes of other entries wake nobody. Must run inside the tokio runtime
    /// (the descriptor is registered with its reactor).
    pub fn of_parent(file: &Path) -> io::Result<DirWatch> {
        let dir = match file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let cdir = CString::new(dir.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in the path"))?;
        // SAFETY: inotify_init1 takes flags only and returns a new descriptor or -1.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a descriptor we just opened and own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: `cdir` is a NUL-terminated string that outlives the call.
        if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), cdir.as_ptr(), MASK) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the OwnedFd is moved into the AsyncFd, which owns it until it is dropped: the
        // descriptor stays open and the same for the AsyncFd's whole life.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?;
        let name = file
            .file_name()
            .map(|n| n.as_bytes().to_vec())
            .unwrap_or_default();
        Ok(DirWatch { fd, name })
    }

    /// Wait until the watched name's entry changes (or the kernel's event queue overflowed)
    /// or the watch ends, reading all events queued: [`Change::Lost`] if one of them ended
    /// the watch, else [`Change::Entries`].
    pub async fn changed(&self) -> io::Result<Change> {
        let mut buf = [0u8; 4096];
        loop {
            let mut guard = self.fd.readable().await?;
            let read = guard.try_io(|fd| {
                // SAFETY: `buf` is writable for its whole length.
                let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                usize::try_from(n).map_err(|_| io::Error::last_os_error())
            });
            match read {
                Ok(Ok(n)) => match classify(buf.get(..n).unwrap_or_default(), &self.name) {
                    Some(change) => return Ok(change),
                    // Other entries of the directory: wait again.
                    None => continue,
                },
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Err(e),
                // Not readable after all (the readiness was stale): wait again.
                Err(_would_block) => continue,
            }
        }
    }
}

/// What the `struct inotify_event`s in `bytes` say (pure): `Lost` if any ends the watch,
/// `Entries` if one is about `name` (its NUL-padded name; any name when `name` is empty) or
/// the kernel's queue overflowed (events were lost), else `None`.
fn classify(bytes: &[u8], name: &[u8]) -> Option<Change> {
    // struct inotify_event { int wd; u32 mask; u32 cookie; u32 len; char name[len]; }
    const HEADER: usize = 16;
    let mut rest = bytes;
    let mut ours = false;
    while let Some(head) = rest.get(..HEADER) {
        let mask = u32::from_ne_bytes([head[4], head[5], head[6], head[7]]);
        let len = u32::from_ne_bytes([head[12], head[13], head[14], head[15]]) as usize;
        if mask & LOST != 0 {
            return Some(Change::Lost);
        }
        let padded = rest
            .get(HEADER..HEADER.saturating_add(len))
            .unwrap_or_default();
        let event_name = padded.split(|&b| b == 0).next().unwrap_or_default();
        ours |= mask & libc::IN_Q_OVERFLOW != 0 || name.is_empty() || event_name == name;
        rest = rest.get(HEADER.saturating_add(len)..).unwrap_or_default();
    }
    ours.then_some(Change::Entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(mask: u32, name: &[u8]) -> Vec<u8> {
        let mut v = 1i32.to_ne_bytes().to_vec();
        v.extend_from_slice(&mask.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v.extend_from_slice(&(name.len() as u32).to_ne_bytes());
        v.extend_from_slice(name);
        v
    }

    #[test]
    fn a_batch_is_lost_if_any_event_ends_the_watch() {
        let mut b = event(libc::IN_DELETE, b"ctl.sock\0\0\0\0\0\0\0\0");
        assert_eq!(classify(&b, b"ctl.sock"), Some(Change::Entries));
        b.extend(event(libc::IN_DELETE_SELF, b""));
        b.extend(event(libc::IN_IGNORED, b""));
        assert_eq!(classify(&b, b"ctl.sock"), Some(Change::Lost));
        // Truncated or empty input is read as far as it goes, never past its end.
        assert_eq!(classify(&b[..20], b"ctl.sock"), None);
        assert_eq!(classify(&b[..20], b""), Some(Change::Entries));
        assert_eq!(classify(&[], b"ctl.sock"), None);
    }

    #[test]
    fn only_the_watched_name_or_an_overflow_matters() {
        let other = event(libc::IN_CREATE, b"other.pid\0\0\0");
        assert_eq!(classify(&other, b"ctl.sock"), None);
        // A longer name sharing the prefix is another file.
        let longer = event(libc::IN_DELETE, b"ctl.sock.bak\0\0\0\0");
        assert_eq!(classify(&longer, b"ctl.sock"), None);
        let mut b = other.clone();
        b.extend(event(libc::IN_MOVED_TO, b"ctl.sock\0\0\0\0\0\0\0\0"));
        assert_eq!(classify(&b, b"ctl.sock"), Some(Change::Entries));
        let overflow = event(libc::IN_Q_OVERFLOW, b"");
        assert_eq!(classify(&overflow, b"ctl.sock"), Some(Change::Entries));
        // No name to match (a path without a file name): every change counts.
        assert_eq!(classify(&other, b""), Some(Change::Entries));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn deleting_a_file_in_the_directory_wakes_the_watch_and_removing_it_loses_it() {
        let dir = std::env::temp_dir().join(format!("mptcp-pmd-dirwatch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("ctl.sock");
        std::fs::write(&file, b"x").unwrap();
        let w = DirWatch::of_parent(&file).unwrap();
        // Another file's change wakes nobody; the watched one's does.
        std::fs::write(dir.join("other"), b"y").unwrap();
        std::fs::remove_file(dir.join("other")).unwrap();
        std::fs::remove_file(&file).unwrap();
        let c = tokio::time::timeout(std::time::Duration::from_secs(5), w.changed()).await;
        assert_eq!(c.unwrap().unwrap(), Change::Entries);
        std::fs::remove_dir(&dir).unwrap();
        let c = tokio::time::timeout(std::time::Duration::from_secs(5), w.changed()).await;
        assert_eq!(c.unwrap().unwrap(), Change::Lost);
    }
}
