//! The process around the daemon: start-up checks ([`startup`]), the lock that keeps one daemon
//! per network namespace ([`nslock`]), scheduling priority and capabilities ([`privs`]),
//! signals ([`signals`]), systemd notification ([`notify`]), exit codes ([`exit`]), what a dead
//! kernel socket means for the process ([`failure`]), logging ([`logging`]), returning freed
//! heap to the kernel ([`trim`]), waking when the control socket's directory changes
//! ([`dirwatch`]), the metered budgets' state file ([`state_file`]) and the wall
//! clock and time zone they are counted on ([`wallclock`]). The public ones are
//! re-exported at the crate root (`mptcp_pmd::exit`, ...), where `main` and the tests find
//! them.

pub mod dirwatch;
pub mod exit;
pub mod failure;
pub mod logging;
pub mod notify;
pub mod nslock;
pub mod privs;
pub mod signals;
pub mod startup;
pub mod state_file;
pub mod trim;
pub mod wallclock;
