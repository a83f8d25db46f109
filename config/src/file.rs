//! The crate's only I/O: reading the configuration file so that no path can make the caller
//! wait or fill its memory.
//!
//! - The file is opened with `O_NONBLOCK | O_NOCTTY` (and `O_CLOEXEC`, as std always does):
//!   opening a FIFO nobody writes to returns at once instead of waiting for a writer, and a
//!   terminal does not become the daemon's controlling terminal.
//! - `fstat` on the opened file: anything but a regular file (a FIFO, a device such as
//!   `/dev/zero`, a directory, a socket) is refused before a byte is read. A symlink to a
//!   regular file is fine: the check is on what the path leads to.
//! - At most [`MAX_BYTES`] + 1 bytes are read, and a file larger than [`MAX_BYTES`] is refused
//!   (by its size before reading, and by what was read if it grew meanwhile).
//!
//! A read that still takes long (a hung network file system) is not this module's to bound:
//! the daemon reads the file on reload off its event loop (see the daemon's `signals`).

use std::fs::{File, FileType, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use crate::error::ConfigError;

/// The largest configuration file read: 1 MiB. A real one is a few KB (the shipped example,
/// with a comment on every key, is under 10 KB).
pub const MAX_BYTES: u64 = 1024 * 1024;

/// What a non-regular file is, for the message.
fn kind(t: FileType) -> &'static str {
    if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// The bytes of the regular file at `path` (at most [`MAX_BYTES`]). A refusal is a
/// [`ConfigError::Io`] whose message says what the path is or how large.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, ConfigError> {
    let io = |source| ConfigError::Io {
        path: path.to_owned(),
        source,
    };
    let refused = |kind, msg: String| io(std::io::Error::new(kind, msg));
    let file: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.file_type().is_file() {
        return Err(refused(
            ErrorKind::InvalidInput,
            format!(
                "it is {}, not a regular file (a symlink to a regular file is fine)",
                kind(meta.file_type())
            ),
        ));
    }
    let too_large = || {
        refused(
            ErrorKind::FileTooLarge,
            format!(
                "it is larger than {MAX_BYTES} bytes (1 MiB), the limit for a configuration file"
            ),
        )
    };
    if meta.len() > MAX_BYTES {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(too_large());
    }
    Ok(bytes)
}
