//! The control socket's file at `control.socket`: claiming it at start (a stale file left by a
//! crashed daemon is replaced, a live daemon on it makes the start fail, anything that is not a
//! socket is refused), keeping it there while the daemon runs ([`ControlSocket::check`], when
//! its directory changes (`process::dirwatch`), or every [`WATCH_EVERY`] while the directory
//! cannot be watched: a file deleted by a tmp cleaner is re-created, a path that something else
//! took meanwhile is left alone and logged once), and removing it on a clean stop — only while
//! it is still ours. The requests served on it are `control`'s.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often the daemon checks that its control socket file is still there while its directory
/// cannot be watched (deleted, or inotify unavailable). One `lstat` each.
pub const WATCH_EVERY: Duration = Duration::from_secs(1);

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

/// What [`ControlSocket::check`] found at the path.
#[derive(Debug)]
pub enum Check {
    /// Our socket is there.
    Ours,
    /// The file was gone (or a stale socket was there): a new socket was bound; serve it.
    Recreated(UnixListener),
    /// Something else occupies the path (the error says what): left alone.
    Occupied(ClaimError),
    /// Re-creating failed (e.g. the directory is gone): tried again at the next check.
    Failed(ClaimError),
}

/// The bound control socket; removes its file when dropped, if the file is still ours.
#[derive(Debug)]
pub struct ControlSocket {
    listener: Option<UnixListener>,
    path: PathBuf,
    /// (device, inode) of the socket file we bound.
    id: (u64, u64),
    /// `control.group`'s id, applied to every file we bind (also a re-created one).
    group: Option<u32>,
}

impl ControlSocket {
    /// Claim `path`: probe an existing file (a connect that succeeds means a live daemon), remove
    /// a stale one, bind, and restrict the file to its owner (0600).
    pub fn claim(path: &Path) -> Result<ControlSocket, ClaimError> {
        let (listener, id) = bind(path)?;
        Ok(ControlSocket {
            listener: Some(listener),
            path: path.to_path_buf(),
            id,
            group: None,
        })
    }

    /// Let group `gid` connect (`control.group`): the file becomes 0660 and that group's, now
    /// and whenever [`ControlSocket::check`] re-creates it. Whether a member may do more than
    /// read is the server's to check, per request.
    pub fn share_with_group(&mut self, gid: u32) -> Result<(), ClaimError> {
        self.group = Some(gid);
        share(&self.path, gid)
    }

    /// The path of the socket file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Take the listener (to serve it); the file is still removed when `self` drops.
    pub fn take_listener(&mut self) -> Option<UnixListener> {
        self.listener.take()
    }

    /// Whether the path still holds the socket file we bound.
    fn is_ours(&self) -> bool {
        std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| m.file_type().is_socket() && (m.dev(), m.ino()) == self.id)
    }

    /// Make sure the path still holds our socket: if the file was deleted (or replaced by a
    /// stale socket nobody serves), bind a new one there, as at start. A live socket of
    /// another process or a file that is not a socket is left alone.
    pub fn check(&mut self) -> Check {
        if self.is_ours() {
            return Check::Ours;
        }
        match bind(&self.path) {
            Ok((listener, id)) => {
                self.id = id;
                match self.group.map(|gid| share(&self.path, gid)) {
                    Some(Err(e)) => Check::Failed(e),
                    _ => Check::Recreated(listener),
                }
            }
            Err(e @ (ClaimError::AlreadyRunning(_) | ClaimError::NotASocket(_))) => {
                Check::Occupied(e)
            }
            Err(e) => Check::Failed(e),
        }
    }
}

/// Make the socket file at `path` group `gid`'s, mode 0660.
fn share(path: &Path, gid: u32) -> Result<(), ClaimError> {
    let io = |source| ClaimError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::os::unix::fs::chown(path, None, Some(gid)).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(io)
}

/// `control.group` names no group.
#[derive(Debug, thiserror::Error)]
#[error("control.group {0:?}: no such group (neither a name in the system's group database nor a number)")]
pub struct NoSuchGroup(pub String);

/// The group id of `control.group`: a group name, or a number (used as it is).
pub fn resolve_group(name: &str) -> Result<u32, NoSuchGroup> {
    let no = || NoSuchGroup(name.to_string());
    let cname = std::ffi::CString::new(name).map_err(|_| no())?;
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: an all-zero `group` is a valid value of this plain C struct; the call fills it.
        let mut group: libc::group = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::group = std::ptr::null_mut();
        // SAFETY: every pointer is to live memory of the size given; getgrnam_r is thread-safe
        // and writes only into what it is passed.
        let rc = unsafe {
            libc::getgrnam_r(
                cname.as_ptr(),
                &mut group,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut found,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc == 0 && !found.is_null() {
            return Ok(group.gr_gid);
        }
        return name.parse().map_err(|_| no());
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        // Only our own file: after a re-creation elsewhere failed, the path may be another
        // process's.
        if self.is_ours() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Claim `path` (see [`ControlSocket::claim`]); the listener and the file's (device, inode).
fn bind(path: &Path) -> Result<(UnixListener, (u64, u64)), ClaimError> {
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
    let m = std::fs::symlink_metadata(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    Ok((listener, (m.dev(), m.ino())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("mptcp-pmd-ctlsock-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn claim_sets_0600_replaces_stale_and_refuses_live() {
        let p = dir("claim").join("a.sock");
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
        let f = dir("claim").join("plain");
        std::fs::write(&f, "x").unwrap();
        assert!(matches!(
            ControlSocket::claim(&f),
            Err(ClaimError::NotASocket(_))
        ));
    }

    #[test]
    fn a_deleted_file_is_recreated_and_served() {
        let p = dir("deleted").join("c.sock");
        let mut c = ControlSocket::claim(&p).unwrap();
        let _first = c.take_listener().unwrap();
        assert!(matches!(c.check(), Check::Ours));
        std::fs::remove_file(&p).unwrap();
        let l = match c.check() {
            Check::Recreated(l) => l,
            other => panic!("expected Recreated, got {other:?}"),
        };
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // The new file is the one the new listener serves.
        let client = UnixStream::connect(&p).unwrap();
        let (_server, _) = l.accept().unwrap();
        drop(client);
        assert!(matches!(c.check(), Check::Ours), "and it is ours now");
        drop(l);
        drop(c);
        assert!(!p.exists());
    }

    #[test]
    fn a_path_taken_by_something_else_is_left_alone() {
        let d = dir("taken");
        let p = d.join("c.sock");
        let mut c = ControlSocket::claim(&p).unwrap();
        let _l = c.take_listener();

        // A regular file in its place: not replaced, and not removed on drop.
        std::fs::remove_file(&p).unwrap();
        std::fs::write(&p, "someone's file").unwrap();
        assert!(matches!(
            c.check(),
            Check::Occupied(ClaimError::NotASocket(_))
        ));
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "someone's file");

        // Another live socket: left alone too.
        std::fs::remove_file(&p).unwrap();
        let other = UnixListener::bind(&p).unwrap();
        assert!(matches!(
            c.check(),
            Check::Occupied(ClaimError::AlreadyRunning(_))
        ));
        drop(c);
        assert!(
            p.exists(),
            "another process's socket is not removed on drop"
        );
        drop(other);

        // Its owner died (stale socket): taken over again.
        let mut c = ControlSocket::claim(&p).unwrap();
        let _l = c.take_listener();
        std::fs::remove_file(&p).unwrap();
        drop(UnixListener::bind(&p).unwrap());
        assert!(matches!(c.check(), Check::Recreated(_)));

        // The directory is gone: a failure, retried at the next check.
        std::fs::remove_file(&p).unwrap();
        std::fs::remove_dir(&d).unwrap();
        assert!(matches!(c.check(), Check::Failed(ClaimError::Io { .. })));
        std::fs::create_dir_all(&d).unwrap();
        assert!(matches!(c.check(), Check::Recreated(_)));
    }
}
