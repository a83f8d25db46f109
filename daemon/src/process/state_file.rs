//! The state file of the metered budgets (`<metered.state_directory>/metered.json`): what a
//! restart continues from. Owns the file system side only: the directory (created 0700 if
//! missing), reading the file without ever failing the daemon on its contents, and atomic
//! writes (a temporary file, `fsync`, `rename` over the old one, `fsync` of the directory:
//! a crash at any point leaves the old file or the new one, never a mix), done on a thread of
//! their own ([`StateWriter`]) so that the event loop never waits for a disk.
//!
//! A file that cannot be read or parsed is reported, moved aside to `metered.json.corrupt`
//! (so that it can be looked at, and the next write does not destroy it), and counting starts
//! from zero: refusing to start would take the path manager down for a bookkeeping file.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::Duration;

use slog::{debug, error, Logger};

use crate::core::budget::{SavedState, STATE_VERSION};

/// The file's name in the state directory.
pub const FILE_NAME: &str = "metered.json";

/// A state file larger than this is not read (the daemon writes ~100 bytes per budget and
/// per counted subflow: 16 MiB is ~150 000 subflows).
const MAX_BYTES: u64 = 16 << 20;

/// How long a clean stop waits for the last write.
const STOP_WAIT: Duration = Duration::from_secs(3);

/// Why the state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The directory cannot be created or is not a directory.
    #[error("cannot use the state directory {dir}: {source}")]
    Directory {
        /// The directory.
        dir: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A step of writing failed.
    #[error("cannot write {path} ({step}): {source}")]
    Write {
        /// The file concerned.
        path: PathBuf,
        /// Which step: create, write, fsync, rename, fsync the directory.
        step: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The writer thread is gone or busy past the wait.
    #[error("the state writer did not answer: {0}")]
    Writer(&'static str),
}

/// What reading the state file found.
#[derive(Debug)]
pub enum Loaded {
    /// No file: a first start.
    Missing,
    /// The saved state.
    Found(SavedState),
    /// A file that cannot be used, why, and where it was moved (if it could be).
    Corrupt {
        /// What is wrong with it.
        why: String,
        /// `metered.json.corrupt`, if the move worked.
        moved_to: Option<PathBuf>,
    },
}

/// The state file in its directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateFile {
    dir: PathBuf,
}

impl StateFile {
    /// The state file of directory `dir`.
    pub fn new(dir: &Path) -> StateFile {
        StateFile {
            dir: dir.to_path_buf(),
        }
    }

    /// The file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Create the directory (0700) if it is missing.
    pub fn prepare(&self) -> Result<(), StateError> {
        let err = |source| StateError::Directory {
            dir: self.dir.clone(),
            source,
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(err)?;
        if !fs::metadata(&self.dir).map_err(err)?.is_dir() {
            return Err(err(std::io::Error::new(
                ErrorKind::NotADirectory,
                "not a directory",
            )));
        }
        Ok(())
    }

    /// Whether a file can be created in the directory (a read-only file system, a directory
    /// of another owner): found at start-up rather than at the first save.
    pub fn check_writable(&self) -> Result<(), StateError> {
        let probe = self.dir.join(format!("{FILE_NAME}.tmp"));
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&probe)
            .map_err(|source| StateError::Write {
                path: probe.clone(),
                step: "create",
                source,
            })?;
        let _ = fs::remove_file(&probe);
        Ok(())
    }

    /// Read and parse the file. Never fails: a file that cannot be used is [`Loaded::Corrupt`]
    /// (and moved aside).
    pub fn load(&self) -> Loaded {
        let path = self.path();
        let text = match read_bounded(&path) {
            Ok(Some(t)) => t,
            Ok(None) => return Loaded::Missing,
            Err(why) => return self.corrupt(why),
        };
        match serde_json::from_slice::<SavedState>(&text) {
            Ok(s) if s.version == STATE_VERSION => Loaded::Found(s),
            Ok(s) => self.corrupt(format!(
                "it is version {} of the format, this daemon reads version {STATE_VERSION}",
                s.version
            )),
            Err(e) => self.corrupt(format!("it is not a state file: {e}")),
        }
    }

    fn corrupt(&self, why: String) -> Loaded {
        let to = self.dir.join(format!("{FILE_NAME}.corrupt"));
        let moved_to = fs::rename(self.path(), &to).ok().map(|()| to);
        Loaded::Corrupt { why, moved_to }
    }

    /// Replace the file with `bytes`, atomically and durably (see the module docs).
    pub fn write(&self, bytes: &[u8]) -> Result<(), StateError> {
        let path = self.path();
        let tmp = self.dir.join(format!("{FILE_NAME}.tmp"));
        let fail = |step, p: &Path| {
            let p = p.to_path_buf();
            move |source| StateError::Write {
                path: p,
                step,
                source,
            }
        };
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(fail("create", &tmp))?;
        f.write_all(bytes).map_err(fail("write", &tmp))?;
        f.sync_all().map_err(fail("fsync", &tmp))?;
        drop(f);
        fs::rename(&tmp, &path).map_err(fail("rename", &path))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(fail("fsync the directory", &self.dir))
    }
}

/// The file's bytes, `None` if it does not exist, or why it cannot be read.
fn read_bounded(path: &Path) -> Result<Option<Vec<u8>>, String> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot open it: {e}")),
    };
    let meta = f.metadata().map_err(|e| format!("cannot stat it: {e}"))?;
    if !meta.is_file() {
        return Err("it is not a regular file".to_owned());
    }
    let mut bytes = Vec::new();
    f.take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read it: {e}"))?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(format!("it is larger than {MAX_BYTES} bytes"));
    }
    Ok(Some(bytes))
}

/// One write for the writer thread, and where to say how it went (a clean stop waits).
type Job = (Vec<u8>, Option<mpsc::Sender<Result<(), String>>>);

/// A thread that writes the state file, one write at a time, so that the event loop never
/// waits for the disk. At most one write waits while another runs: a newer state simply
/// waits for the next save.
#[derive(Debug)]
pub struct StateWriter {
    file: StateFile,
    tx: SyncSender<Job>,
}

impl StateWriter {
    /// Start the writer of `file`; write results are logged to `log`.
    pub fn start(file: StateFile, log: Logger) -> std::io::Result<StateWriter> {
        let (tx, rx) = mpsc::sync_channel::<Job>(1);
        let f = file.clone();
        std::thread::Builder::new()
            .name("state-writer".into())
            .spawn(move || write_loop(&f, &rx, &log))?;
        Ok(StateWriter { file, tx })
    }

    /// The file written.
    pub fn file(&self) -> &StateFile {
        &self.file
    }

    /// Queue `bytes` for writing; false if a write is already waiting (try again later).
    pub fn submit(&self, bytes: Vec<u8>) -> bool {
        match self.tx.try_send((bytes, None)) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }

    /// Write `bytes` and wait for the result (a clean stop, a reload).
    pub fn write_now(&self, bytes: Vec<u8>) -> Result<(), StateError> {
        let (done, result) = mpsc::channel();
        self.tx
            .send((bytes, Some(done)))
            .map_err(|_| StateError::Writer("it stopped"))?;
        match result.recv_timeout(STOP_WAIT) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StateError::Write {
                path: self.file.path(),
                step: "write",
                source: std::io::Error::other(e),
            }),
            Err(_) => Err(StateError::Writer("no answer within 3 s")),
        }
    }
}

fn write_loop(file: &StateFile, rx: &Receiver<Job>, log: &Logger) {
    while let Ok((bytes, done)) = rx.recv() {
        let res = file.write(&bytes);
        match &res {
            Ok(()) => {
                debug!(log, "state file written"; "path" => %file.path().display(), "bytes" => bytes.len())
            }
            Err(e) => {
                error!(log, "cannot write the state file: budgets are counted but a restart would lose what was counted since the last write"; "error" => %e)
            }
        }
        if let Some(d) = done {
            let _ = d.send(res.map_err(|e| e.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mptcp-pmd-state-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn state(used: u64) -> SavedState {
        SavedState {
            version: STATE_VERSION,
            saved_at: 1,
            budgets: vec![crate::core::budget::SavedBudget {
                name: "wwan*".into(),
                period_start: 0,
                period_end: 10,
                used,
                interfaces: Default::default(),
                spent_at: None,
            }],
            subflows: Vec::new(),
            flagged: Vec::new(),
        }
    }

    #[test]
    fn write_then_load_and_missing() {
        let f = StateFile::new(&dir("rw").join("sub"));
        f.prepare().unwrap();
        assert!(matches!(f.load(), Loaded::Missing));
        f.write(&serde_json::to_vec(&state(7)).unwrap()).unwrap();
        f.write(&serde_json::to_vec(&state(9)).unwrap()).unwrap();
        match f.load() {
            Loaded::Found(s) => assert_eq!(s, state(9)),
            other => panic!("{other:?}"),
        }
        assert!(!f.dir().join("metered.json.tmp").exists(), "renamed away");
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(f.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_corrupt_file_is_reported_and_moved_aside() {
        let f = StateFile::new(&dir("bad"));
        f.prepare().unwrap();
        fs::write(f.path(), b"{\"version\": 1, \"budg").unwrap();
        match f.load() {
            Loaded::Corrupt { why, moved_to } => {
                assert!(why.starts_with("it is not a state file"), "{why}");
                assert_eq!(moved_to, Some(f.dir().join("metered.json.corrupt")));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(f.load(), Loaded::Missing), "moved aside");
        let mut newer = state(1);
        newer.version = 99;
        fs::write(f.path(), serde_json::to_vec(&newer).unwrap()).unwrap();
        assert!(matches!(f.load(), Loaded::Corrupt { why, .. } if why.contains("version 99")));
        fs::create_dir(f.path()).unwrap();
        assert!(
            matches!(f.load(), Loaded::Corrupt { .. }),
            "a directory in its place"
        );
    }

    #[test]
    fn a_file_in_place_of_the_directory_is_refused() {
        let d = dir("notdir");
        fs::write(&d, b"x").unwrap();
        assert!(matches!(
            StateFile::new(&d).prepare(),
            Err(StateError::Directory { .. })
        ));
        let _ = fs::remove_file(&d);
    }

    #[test]
    fn the_writer_thread_writes_and_answers() {
        let f = StateFile::new(&dir("thread"));
        f.prepare().unwrap();
        let w = StateWriter::start(f.clone(), Logger::root(slog::Discard, slog::o!())).unwrap();
        w.write_now(serde_json::to_vec(&state(3)).unwrap()).unwrap();
        assert!(matches!(f.load(), Loaded::Found(s) if s.budgets[0].used == 3));
    }
}
