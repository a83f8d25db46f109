//! `run(config)`: claims the control socket, opens the kernel sockets in the documented order
//! (and the metrics listener), drops every capability but CAP_NET_ADMIN, starts the actors,
//! serves the control socket and metrics, adopts existing connections, tells systemd it is ready,
//! then serves until SIGTERM/SIGINT; SIGHUP reloads the config file.

use std::path::PathBuf;
use std::sync::Arc;

use actix::prelude::*;
use mptcp_pmd_config::Config;
use netlink_actor::genl::{PmClient, PmEventSocket};
use netlink_actor::rtnl::RtnlSocket;
use netlink_actor::sock_diag::DiagSocket;
use slog::{debug, error, info, warn, Logger};

use crate::actors::addresses::{self, AddressMonitor, SetFilter};
use crate::actors::commands::CommandPath;
use crate::actors::diag::DiagPoller;
use crate::actors::events::EventActor;
use crate::actors::messages::{LocalsChanged, SetSampling};
use crate::actors::policy::{PolicyActor, SetPolicy};
use crate::actors::registry::{AdoptExisting, Registry};
use crate::control::{ControlSocket, Views};
use crate::logging::LevelHandle;
use crate::metrics::Metrics;
use crate::{control, exit, http, notify, privs, startup, wiring};

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
    // First, so a second daemon refuses before touching any kernel state.
    let mut control_sock = ControlSocket::claim(&config.control.socket)
        .map_err(|e| fail(exit::CANTCREAT, "control socket", e))?;
    let control_listener = control_sock.take_listener();
    let metrics_listener = match config.metrics.listen {
        Some(addr) => Some(std::net::TcpListener::bind(addr).map_err(|e| {
            fail(
                exit::CANTCREAT,
                &format!("cannot listen on metrics.listen {addr}"),
                e,
            )
        })?),
        None => None,
    };
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

    // Raise our priority while we may (CAP_SYS_NICE); threads started later inherit it.
    match privs::set_nice(config.kernel.nice) {
        Ok(()) if config.kernel.nice != 0 => {
            info!(log, "scheduling priority set"; "nice" => config.kernel.nice)
        }
        Ok(()) => {}
        Err(e) => {
            warn!(log, "cannot set the scheduling priority, keeping the current one"; "nice" => config.kernel.nice, "error" => %e)
        }
    }
    let realtime = config.kernel.realtime_priority;
    if realtime > 0 {
        match privs::set_realtime(realtime) {
            Ok(()) => {
                info!(log, "real-time scheduling on"; "policy" => "SCHED_FIFO", "priority" => realtime)
            }
            Err(e) => {
                warn!(log, "cannot switch to real-time scheduling, keeping the normal scheduler";
                "priority" => realtime, "error" => %e)
            }
        }
    }
    // Every socket is open and the sysctl written: keep only CAP_NET_ADMIN. Capabilities are
    // per thread, so this runs before the actix arbiters start their threads.
    match privs::drop_to_net_admin() {
        Ok(d) => {
            info!(log, "capabilities dropped"; "kept" => "CAP_NET_ADMIN", "bounding_reduced" => d.bounding_reduced)
        }
        Err(e) => return Err(fail(exit::SOFTWARE, "privilege drop", e)),
    }

    let metrics = Metrics::default();
    let sys = System::new();
    let code = sys.block_on(async move {
        let book = wiring::build_book(&config);
        let sampling = book.wants_samples();
        let policy = PolicyActor::new(book, locals.clone(), metrics.clone(), log.new(slog::o!("actor" => "policy"))).start();
        // Commands are a direct call from the connection actors on this thread (see
        // actors/commands.rs for why not an actor).
        let cmds = CommandPath::new(client, metrics.clone(), log.new(slog::o!("actor" => "commands")));
        let diag_arbiter = Arbiter::new();
        if realtime > 0 {
            // A full sock_diag dump can take 100 ms of kernel time: not at real-time priority.
            let diag_sched_log = log.clone();
            diag_arbiter.spawn_fn(move || {
                if let Err(e) = privs::set_normal_scheduler() {
                    warn!(diag_sched_log, "sock_diag thread: cannot leave real-time scheduling"; "error" => %e);
                }
            });
        }
        let timers = wiring::timers(&config);
        let interval = wiring::poll_interval(&config);
        let reg_log = log.new(slog::o!("actor" => "registry"));
        let diag_log = log.new(slog::o!("actor" => "diag"));
        let reg_metrics = metrics.clone();
        let diag_metrics = metrics.clone();
        let reg_policy = policy.clone();
        info!(log, "sock_diag polling"; "interval_ms" => interval.as_millis() as u64,
            "subflow_samples" => if sampling { "on (a policy reads them)" } else { "off (no policy reads them)" });
        let mut diag_out = None;
        let registry = Registry::create(|ctx| {
            let sink = ctx.address().recipient();
            let diag_addr = DiagPoller::start_in_arbiter(&diag_arbiter.handle(), move |_| {
                DiagPoller::new(diag, sink, interval, sampling, diag_metrics, diag_log)
            });
            diag_out = Some(diag_addr.clone());
            Registry::new(reg_policy, cmds, diag_addr, timers, reg_metrics, reg_log, ctx)
        });
        let Some(diag) = diag_out else {
            error!(log, "the sock_diag poller did not start");
            return exit::SOFTWARE;
        };
        let sinks: Vec<Recipient<LocalsChanged>> = vec![policy.clone().recipient(), registry.clone().recipient()];
        let monitor = AddressMonitor::new(rtnl_monitor, rtnl_dumper, addrs, config.addresses.clone(), sinks, log.new(slog::o!("actor" => "addresses"))).start();
        EventActor::new(events, registry.clone(), metrics.clone(), log.new(slog::o!("actor" => "events"))).start();

        let views = Views { registry: registry.clone(), policy: policy.clone(), monitor: monitor.clone(), diag: diag.clone(), metrics: metrics.clone() };
        if let Some(l) = control_listener {
            if let Err(e) = control::serve(l, views.clone(), log.new(slog::o!("actor" => "control"))) {
                error!(log, "cannot serve the control socket"; "error" => %e);
                return exit::SOFTWARE;
            }
        }
        if let Some(l) = metrics_listener {
            if let Err(e) = http::serve(l, views, log.new(slog::o!("actor" => "metrics"))) {
                error!(log, "cannot serve metrics"; "error" => %e);
                return exit::SOFTWARE;
            }
        }

        // Signal handlers go in before anyone can be told we are up ("started", READY=1): a
        // SIGTERM or SIGHUP sent right after would otherwise hit the default action and kill us.
        let signals = match Signals::install() {
            Ok(s) => s,
            Err(e) => {
                error!(log, "cannot install signal handlers"; "error" => %e);
                return exit::SOFTWARE;
            }
        };
        match registry.send(AdoptExisting).await {
            Ok(n) => info!(log, "started"; "adopted_connections" => n, "policy" => config.policy.to_string(),
                "control" => %config.control.socket.display(), "metrics" => config.metrics.listen.map(|a| a.to_string()).unwrap_or_else(|| "off".into())),
            Err(e) => warn!(log, "start-up adoption failed"; "error" => %e),
        }
        match notify::notify("READY=1\nSTATUS=managing MPTCP subflows") {
            Ok(true) => debug!(log, "told systemd we are ready"),
            Ok(false) => {}
            Err(e) => warn!(log, "cannot notify systemd (NOTIFY_SOCKET)"; "error" => %e),
        }

        let peers = Reloadable { policy, monitor, diag, level };
        let code = wait_for_signals(signals, path, peers, log.clone()).await;
        if let Err(e) = notify::notify("STOPPING=1") {
            warn!(log, "cannot notify systemd (NOTIFY_SOCKET)"; "error" => %e);
        }
        let c = metrics.snapshot();
        info!(log, "stopped"; "events" => ?c.events, "commands" => ?c.commands, "overruns" => c.overruns, "resyncs" => c.resyncs);
        code
    });
    drop(control_sock);
    Ok(code)
}

/// The stop and reload signals, installed (their default actions replaced) once created.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }
}

/// What a SIGHUP reload updates.
struct Reloadable {
    policy: Addr<PolicyActor>,
    monitor: Addr<AddressMonitor>,
    diag: Addr<DiagPoller>,
    level: LevelHandle,
}

/// Serve signals: SIGHUP reloads, SIGTERM/SIGINT stop. Returns the exit code.
async fn wait_for_signals(signals: Signals, path: PathBuf, peers: Reloadable, log: Logger) -> i32 {
    let Reloadable {
        policy,
        monitor,
        diag,
        level,
    } = peers;
    let Signals {
        mut term,
        mut int,
        mut hup,
    } = signals;
    loop {
        tokio::select! {
            _ = term.recv() => { info!(log, "SIGTERM: stopping"); return exit::OK; }
            _ = int.recv() => { info!(log, "SIGINT: stopping"); return exit::OK; }
            _ = hup.recv() => {
                match mptcp_pmd_config::load(&path) {
                    Ok(new) => {
                        info!(log, "SIGHUP: configuration reloaded"; "file" => %path.display(), "policy" => new.policy.to_string());
                        let book = wiring::build_book(&new);
                        diag.do_send(SetSampling(book.wants_samples()));
                        policy.do_send(SetPolicy(book));
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
