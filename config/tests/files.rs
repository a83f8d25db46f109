//! `load` on paths that are not a small regular file: refused at once, with a message that
//! names the file and says what it is, and never by blocking or reading without bound.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use mptcp_pmd_config::{load, Config, ConfigError, MAX_FILE_BYTES};

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "mptcp-pmd-config-files-{}-{tag}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `load(path)` on a thread: its result if it returns within a second (a blocking open or an
/// endless read would not).
fn load_within_a_second(path: &Path) -> Result<Config, ConfigError> {
    let (tx, rx) = mpsc::channel();
    let p = path.to_owned();
    std::thread::spawn(move || {
        let _ = tx.send(load(&p));
    });
    match rx.recv_timeout(Duration::from_secs(1)) {
        Ok(r) => r,
        Err(_) => panic!("load({}) did not return within a second", path.display()),
    }
}

/// The refusal's message, checked to name the file and to be an I/O-level error (exit 78 in
/// the daemon, like every configuration error).
fn refusal(path: &Path) -> String {
    let e = match load_within_a_second(path) {
        Ok(c) => panic!("{} loaded: {c:?}", path.display()),
        Err(e) => e,
    };
    assert!(matches!(e, ConfigError::Io { .. }), "{e:?}");
    assert_eq!(e.location(), None);
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!("{}: cannot read configuration: ", path.display())),
        "{msg}"
    );
    msg
}

fn mkfifo(path: &Path) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

#[test]
fn a_fifo_is_refused_without_waiting_for_a_writer() {
    let d = dir("fifo");
    let fifo = d.join("f.yaml");
    mkfifo(&fifo);
    let msg = refusal(&fifo);
    assert!(
        msg.ends_with(
            "it is a FIFO (named pipe), not a regular file (a symlink to a regular file is fine)"
        ),
        "{msg}"
    );
    // Through a symlink as well.
    let link = d.join("link.yaml");
    std::os::unix::fs::symlink(&fifo, &link).unwrap();
    assert!(refusal(&link).contains("it is a FIFO"));
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn devices_are_refused_before_a_byte_is_read() {
    let d = dir("dev");
    // /dev/zero and /dev/urandom never end: reading them would grow without bound.
    for dev in ["/dev/zero", "/dev/urandom", "/dev/null"] {
        let link = d.join(format!("{}.yaml", &dev[5..]));
        std::os::unix::fs::symlink(dev, &link).unwrap();
        let msg = refusal(&link);
        assert!(
            msg.contains("it is a character device, not a regular file"),
            "{msg}"
        );
        assert!(refusal(Path::new(dev)).contains("it is a character device"));
    }
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn a_directory_is_refused() {
    let d = dir("dir");
    let msg = refusal(&d);
    assert!(
        msg.contains("it is a directory, not a regular file"),
        "{msg}"
    );
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn a_file_over_the_limit_is_refused_without_reading_it() {
    let d = dir("big");
    let limit = usize::try_from(MAX_FILE_BYTES).unwrap();
    assert_eq!(limit, 1024 * 1024, "the documented limit");
    let want = "it is larger than 1048576 bytes (1 MiB), the limit for a configuration file";
    // One byte over.
    let over = d.join("over.yaml");
    let mut text = "# padding\n".repeat(limit / 10 + 1).into_bytes();
    text.truncate(limit + 1);
    std::fs::write(&over, &text).unwrap();
    assert!(refusal(&over).ends_with(want));
    // 200 MB (sparse: its size alone refuses it).
    let huge = d.join("huge.yaml");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(200 * 1024 * 1024)
        .unwrap();
    assert!(refusal(&huge).ends_with(want));
    // At the limit: read and parsed (comments only: the defaults). No time bound here: this
    // one is read whole, and parsing 1 MiB takes over a second under qemu-user (CI's aarch64
    // run); what the bound above proves is that the others are refused without reading.
    text.truncate(limit - 1);
    text.push(b'\n');
    let at = d.join("at.yaml");
    std::fs::write(&at, &text).unwrap();
    assert_eq!(load(&at).unwrap(), Config::default());
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn a_symlink_to_a_regular_file_is_read() {
    let d = dir("link");
    let file = d.join("real.yaml");
    std::fs::write(&file, "policy: ndiffports\n").unwrap();
    let link = d.join("mptcp-pm.yaml");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    assert_eq!(
        load_within_a_second(&link).unwrap().policy.name,
        "ndiffports"
    );
    let _ = std::fs::remove_dir_all(d);
}
