//! Start-up checks that run before any socket is opened: the CAP_NET_ADMIN capability and the
//! kernel's MPTCP and userspace path manager support. Each failure carries the exit code and a
//! message that says how to fix it. Also the namespace's path manager sysctl itself: which one
//! is in force ([`path_manager`]), selecting the userspace one ([`check_kernel`], which says
//! what it replaced) and putting the previous one back ([`restore_path_manager`]).

use std::fs;

use super::exit;

/// A start-up check failed.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StartupError {
    /// Exit code to use.
    pub code: i32,
    /// What is wrong and how to fix it.
    pub message: String,
}

fn fail(code: i32, message: impl Into<String>) -> StartupError {
    StartupError {
        code,
        message: message.into(),
    }
}

/// The effective capability set must hold CAP_NET_ADMIN.
pub fn check_net_admin() -> Result<(), StartupError> {
    use caps::{CapSet, Capability};
    match caps::has_cap(None, CapSet::Effective, Capability::CAP_NET_ADMIN) {
        Ok(true) => Ok(()),
        Ok(false) => Err(fail(
            exit::NOPERM,
            "missing CAP_NET_ADMIN: the MPTCP path manager commands and events need it. Run as root, \
             grant it with `setcap cap_net_admin+ep $(command -v mptcp-pmd)`, or use the systemd unit \
             (AmbientCapabilities=CAP_NET_ADMIN)",
        )),
        Err(e) => Err(fail(exit::NOPERM, format!("cannot read the process capabilities: {e}"))),
    }
}

const SYSCTL: &str = "/proc/sys/net/mptcp";

fn read(name: &str) -> Option<String> {
    fs::read_to_string(format!("{SYSCTL}/{name}"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// The path manager in force in this network namespace (`kernel` or `userspace`; read from
/// `net.mptcp.path_manager`, or `pm_type` on kernels before 6.15), if the kernel says.
pub fn path_manager() -> Option<String> {
    read("path_manager").or_else(|| {
        read("pm_type").map(|t| {
            if t == "1" {
                "userspace".into()
            } else {
                "kernel".into()
            }
        })
    })
}

/// Put `previous` (a value [`path_manager`] returned) back as the namespace's path manager.
pub fn restore_path_manager(previous: &str) -> std::io::Result<()> {
    if read("path_manager").is_some() {
        fs::write(format!("{SYSCTL}/path_manager"), previous)
    } else {
        let t = if previous == "userspace" { "1" } else { "0" };
        fs::write(format!("{SYSCTL}/pm_type"), t)
    }
}

/// What [`check_kernel`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelPm {
    /// The path manager in force now.
    pub now: String,
    /// The one the daemon replaced, if it switched.
    pub replaced: Option<String>,
}

/// MPTCP must be enabled (exit 69 otherwise). For `--dry-run`: the path manager in force,
/// whatever it is, left alone.
pub fn check_mptcp() -> Result<String, StartupError> {
    check_enabled()?;
    Ok(path_manager().unwrap_or_else(|| "unknown".into()))
}

fn check_enabled() -> Result<(), StartupError> {
    match read("enabled").as_deref() {
        None => Err(fail(
            exit::UNAVAILABLE,
            "this kernel has no MPTCP support (/proc/sys/net/mptcp is missing); build it with CONFIG_MPTCP=y",
        )),
        Some("1") => Ok(()),
        Some(_) => Err(fail(
            exit::UNAVAILABLE,
            "MPTCP is disabled in this network namespace: sysctl -w net.mptcp.enabled=1",
        )),
    }
}

/// MPTCP must be enabled; the userspace PM must be selected (selecting it when `set` is true).
/// Returns the path manager in force and the one it replaced.
pub fn check_kernel(set_userspace_pm: bool) -> Result<KernelPm, StartupError> {
    check_enabled()?;
    let before = path_manager();
    if before.as_deref() == Some("userspace") {
        return Ok(KernelPm {
            now: "userspace".into(),
            replaced: None,
        });
    }
    if !set_userspace_pm {
        return Err(fail(
            exit::UNAVAILABLE,
            "the userspace path manager is not selected in this network namespace and kernel.set_userspace_pm \
             is false: run `sysctl -w net.mptcp.path_manager=userspace` (kernels before 6.15: net.mptcp.pm_type=1)",
        ));
    }
    let wrote = if read("path_manager").is_some() {
        let available = read("available_path_managers").unwrap_or_default();
        if !available.split_whitespace().any(|p| p == "userspace") {
            return Err(fail(
                exit::UNAVAILABLE,
                format!("this kernel offers no userspace path manager (net.mptcp.available_path_managers = {available:?})"),
            ));
        }
        fs::write(format!("{SYSCTL}/path_manager"), "userspace")
    } else {
        fs::write(format!("{SYSCTL}/pm_type"), "1")
    };
    if let Err(e) = wrote {
        return Err(fail(
            exit::UNAVAILABLE,
            format!("cannot select the userspace path manager ({e}); run `sysctl -w net.mptcp.path_manager=userspace`"),
        ));
    }
    match path_manager().as_deref() {
        Some("userspace") => Ok(KernelPm {
            now: "userspace".into(),
            replaced: before,
        }),
        other => Err(fail(
            exit::UNAVAILABLE,
            format!("the kernel did not take the userspace path manager (now {other:?})"),
        )),
    }
}
