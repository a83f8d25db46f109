//! Dropping privileges after start-up: once the sysctl is written and every socket is open,
//! the process keeps only CAP_NET_ADMIN (needed for each mptcp_pm command) in its effective and
//! permitted sets, empties the inheritable and ambient sets, reduces the bounding set to
//! CAP_NET_ADMIN when it may (CAP_SETPCAP; under the systemd unit it already is), and sets
//! no_new_privs. Capabilities are per thread: this must run before any other thread starts.
//! Also the scheduling priority (`kernel.nice`, `kernel.realtime_priority`), set while
//! CAP_SYS_NICE is still held and before any thread starts, so every thread inherits it.

use caps::{CapSet, Capability, CapsHashSet};

/// Dropping failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot drop capabilities ({what}): {source}")]
pub struct DropError {
    what: &'static str,
    source: caps::errors::CapsError,
}

/// What was done, for the log.
#[derive(Debug)]
pub struct Dropped {
    /// Whether the bounding set was reduced (false: no CAP_SETPCAP and it held more).
    pub bounding_reduced: bool,
}

/// Keep only CAP_NET_ADMIN. See the module docs.
pub fn drop_to_net_admin() -> Result<Dropped, DropError> {
    let err = |what| move |source| DropError { what, source };
    let keep = Capability::CAP_NET_ADMIN;
    caps::clear(None, CapSet::Ambient).map_err(err("ambient"))?;
    let bounding = caps::read(None, CapSet::Bounding).map_err(err("read bounding"))?;
    let extra: Vec<Capability> = bounding.into_iter().filter(|c| *c != keep).collect();
    let can = caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP)
        .map_err(err("read effective"))?;
    let bounding_reduced = extra.is_empty() || can;
    if can {
        for c in extra {
            caps::drop(None, CapSet::Bounding, c).map_err(err("bounding"))?;
        }
    }
    caps::clear(None, CapSet::Inheritable).map_err(err("inheritable"))?;
    let only: CapsHashSet = [keep].into_iter().collect();
    caps::set(None, CapSet::Effective, &only).map_err(err("effective"))?;
    caps::set(None, CapSet::Permitted, &only).map_err(err("permitted"))?;
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS) takes integer arguments only.
    let _ = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    Ok(Dropped { bounding_reduced })
}

/// Set the calling thread's nice value (threads started later inherit it). `nice == 0` does
/// nothing.
pub fn set_nice(nice: i8) -> std::io::Result<()> {
    if nice == 0 {
        return Ok(());
    }
    // SAFETY: setpriority on our own thread (who = 0).
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, libc::c_int::from(nice)) };
    os_result(libc::c_long::from(rc))
}

/// Put the calling thread (and threads it starts later) on SCHED_FIFO at `priority` (1..=99).
pub fn set_realtime(priority: u8) -> std::io::Result<()> {
    set_scheduler(libc::SCHED_FIFO, libc::c_int::from(priority))
}

/// Put the calling thread back on the normal scheduler (its nice value is kept).
pub fn set_normal_scheduler() -> std::io::Result<()> {
    set_scheduler(libc::SCHED_OTHER, 0)
}

/// The kernel's `sched_setscheduler` for the calling thread. Called as a raw system call: musl's
/// wrapper (the static build) always fails with ENOSYS, and its `sched_param` has extra fields,
/// while the kernel reads only the leading `int` priority.
fn set_scheduler(policy: libc::c_int, priority: libc::c_int) -> std::io::Result<()> {
    // SAFETY: the kernel reads one int through the pointer, which outlives the call; pid 0 is
    // the calling thread.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_sched_setscheduler,
            0 as libc::pid_t,
            policy,
            &priority as *const libc::c_int,
        )
    };
    os_result(rc)
}

/// A libc return value (`c_long`: `syscall` returns it, 32 bits on armv7): 0 is success, anything
/// else means `errno` holds the reason.
fn os_result(rc: libc::c_long) -> std::io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
