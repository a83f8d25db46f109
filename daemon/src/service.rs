//! `run(config)`: opens the kernel sockets in the documented order, starts the actors, adopts
//! existing connections, then serves until SIGTERM/SIGINT; SIGHUP reloads the config file.

use std::path::PathBuf;
use std::sync::Arc;

use actix::prelude::*;
use mptcp_pmd_config::Config;
use netlink_actor::genl::{PmClient, PmEventSocket};
use netlink_actor::rtnl::RtnlSocket;
use netlink_actor::sock_diag::DiagSocket;
use slog::{error, info, warn, Logger};

use crate::actors::addresses::{self, AddressMonitor, SetFilter};
use crate::actors::commands::CommandActor;
use crate::actors::diag::DiagPoller;
use crate::actors::events::EventActor;
use crate::actors::messages::LocalsChanged;
use crate::actors::policy::{PolicyActor, SetPolicy};
use crate::actors::registry::{AdoptExisting, Registry};
use crate::logging::LevelHandle;
use crate::metrics::Metrics;
use crate::{exit, startup, wiring};

/// A failure to start, with its exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct RunError {
    /// Exit code.
    pub code: i32,
    /// What failed.
    pub message: String,
}

fn fail(code: i32, what: &str, e: impl std::fmt::Display) -> RunError {
    RunError {
        code,
        message: format!("{what}: {e}"),
    }
}

/// Run the daemon until a stop signal. Returns the exit code.
pub fn run(
    config: Config,
    path: PathBuf,
    log: Logger,
    level: LevelHandle,
) -> Result<i32, RunError> {
    let pm = startup::check_kernel(config.kernel.set_userspace_pm).map_err(|e| RunError {
        code: e.code,
        message: e.message,
    })?;
    info!(log, "kernel ready"; "path_manager" => pm);

    // Subscribe to events before reading any state, so nothing falls in between.
    let events = PmEventSocket::open(config.kernel.events_rcvbuf as usize).map_err(|e| {
        fail(
            exit::UNAVAILABLE,
            "cannot subscribe to mptcp_pm events (is MPTCP built in?)",
            e,
        )
    })?;
    let client = PmClient::open().map_err(|e| {
        fail(
            exit::UNAVAILABLE,
            "cannot open the mptcp_pm command socket",
            e,
        )
    })?;
    let diag = DiagSocket::open()
        .map_err(|e| fail(exit::SOFTWARE, "cannot open the sock_diag socket", e))?;
    let rtnl_monitor = RtnlSocket::open_monitor()
        .map_err(|e| fail(exit::SOFTWARE, "cannot subscribe to rtnetlink", e))?;
    let mut rtnl_dumper =
        RtnlSocket::open().map_err(|e| fail(exit::SOFTWARE, "cannot open rtnetlink", e))?;
    let addrs = addresses::dump(&mut rtnl_dumper)
        .map_err(|e| fail(exit::SOFTWARE, "cannot read local addresses", e))?;
    let (usable, skipped) = addrs.evaluate(&config.addresses);
    for l in &usable {
        info!(log, "usable local address"; "addr" => %l.addr, "if" => &l.if_name, "backup" => l.backup);
    }
    for s in &skipped {
        info!(log, "skipping local address"; "addr" => %s.addr, "if" => &s.if_name, "reason" => s.reason);
    }
    let locals = Arc::new(usable);

    let metrics = Metrics::default();
    let sys = System::new();
    let code = sys.block_on(async move {
        let policy = PolicyActor::new(wiring::build_book(&config), locals.clone(), log.new(slog::o!("actor" => "policy"))).start();
        let cmd_arbiter = Arbiter::new();
        let cmd_log = log.new(slog::o!("actor" => "commands"));
        let cmd_metrics = metrics.clone();
        let cmds = CommandActor::start_in_arbiter(&cmd_arbiter.handle(), move |_| CommandActor::new(client, cmd_metrics, cmd_log));
        let diag_arbiter = Arbiter::new();
        let timers = wiring::timers(&config);
        let interval = wiring::poll_interval(&config);
        let reg_log = log.new(slog::o!("actor" => "registry"));
        let diag_log = log.new(slog::o!("actor" => "diag"));
        let reg_metrics = metrics.clone();
        let reg_policy = policy.clone();
        let registry = Registry::create(move |ctx| {
            let sink = ctx.address().recipient();
            let diag_addr = DiagPoller::start_in_arbiter(&diag_arbiter.handle(), move |_| {
                DiagPoller::new(diag, sink, interval, diag_log)
            });
            Registry::new(reg_policy, cmds, diag_addr, timers, reg_metrics, reg_log)
        });
        let sinks: Vec<Recipient<LocalsChanged>> = vec![policy.clone().recipient(), registry.clone().recipient()];
        let monitor = AddressMonitor::new(rtnl_monitor, rtnl_dumper, addrs, config.addresses.clone(), sinks, log.new(slog::o!("actor" => "addresses"))).start();
        EventActor::new(events, registry.clone(), metrics.clone(), log.new(slog::o!("actor" => "events"))).start();

        match registry.send(AdoptExisting).await {
            Ok(n) => info!(log, "started"; "adopted_connections" => n, "policy" => config.policy.to_string()),
            Err(e) => warn!(log, "start-up adoption failed"; "error" => %e),
        }

        let code = wait_for_signals(path, policy, monitor, level, log.clone()).await;
        let c = metrics.snapshot();
        info!(log, "stopped"; "events" => ?c.events, "commands" => ?c.commands, "overruns" => c.overruns, "resyncs" => c.resyncs);
        code
    });
    Ok(code)
}

/// Serve signals: SIGHUP reloads, SIGTERM/SIGINT stop. Returns the exit code.
async fn wait_for_signals(
    path: PathBuf,
    policy: Addr<PolicyActor>,
    monitor: Addr<AddressMonitor>,
    level: LevelHandle,
    log: Logger,
) -> i32 {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        error!(log, "cannot install signal handlers");
        return exit::SOFTWARE;
    };
    loop {
        tokio::select! {
            _ = term.recv() => { info!(log, "SIGTERM: stopping"); return exit::OK; }
            _ = int.recv() => { info!(log, "SIGINT: stopping"); return exit::OK; }
            _ = hup.recv() => {
                match mptcp_pmd_config::load(&path) {
                    Ok(new) => {
                        info!(log, "SIGHUP: configuration reloaded"; "file" => %path.display(), "policy" => new.policy.to_string());
                        policy.do_send(SetPolicy(wiring::build_book(&new)));
                        monitor.do_send(SetFilter(new.addresses.clone()));
                        if let Some(l) = crate::logging::parse_level(new.log.level.as_str()) {
                            level.set(l);
                        }
                    }
                    Err(e) => error!(log, "SIGHUP: new configuration rejected, keeping the old one"; "error" => %e),
                }
            }
        }
    }
}
