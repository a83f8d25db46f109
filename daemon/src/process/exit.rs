//! Exit codes (sysexits.h), documented in README.md.

/// Clean stop.
pub const OK: i32 = 0;
/// A client command was refused (by the daemon's state machine or the kernel, or no such
/// connection); the message says why.
pub const REFUSED: i32 = 1;
/// The daemon and this client do not understand each other (EX_PROTOCOL).
pub const PROTOCOL: i32 = 76;
/// Bad command-line usage.
pub const USAGE: i32 = 64;
/// The kernel lacks MPTCP or the userspace path manager.
pub const UNAVAILABLE: i32 = 69;
/// Internal error (a socket or the event loop failed).
pub const SOFTWARE: i32 = 70;
/// Missing CAP_NET_ADMIN; for a client, the daemon does not let this user do that.
pub const NOPERM: i32 = 77;
/// Bad configuration file.
pub const CONFIG: i32 = 78;
/// The control socket or the metrics endpoint cannot be created — notably because another
/// mptcp-pmd already serves the control socket (EX_CANTCREAT).
pub const CANTCREAT: i32 = 73;
/// Another mptcp-pmd already manages this network namespace (it holds the namespace's lock,
/// see `process::nslock`). EX_TEMPFAIL: unlike 73 (a path that cannot be created) or 69 (the
/// kernel lacks something), nothing is wrong with this host or this configuration, and the
/// same start succeeds once the other daemon stops; a supervisor may retry. For a client
/// subcommand: the daemon is busy (too many clients or monitors); try again.
pub const TEMPFAIL: i32 = 75;
