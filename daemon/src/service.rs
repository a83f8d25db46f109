//! [`run`]`(config, env, shutdown)`: the daemon from start-up to stop, in the documented order
//! (docs/ARCHITECTURE.md, "Start-up order"), as four named steps:
//!
//! 1. [`claim_endpoints`]: the network namespace's lock (a second daemon in the namespace
//!    refuses here, before touching any kernel state, whatever its control socket), the control
//!    socket (shared with `control.group` if set) and the metrics listener;
//! 2. [`open_kernel`]: the MPTCP checks (selecting the userspace PM unless `--dry-run`), the
//!    events subscription *before* any state is read, the command, sock_diag and rtnetlink
//!    sockets, and the dump of links and addresses;
//! 3. [`drop_privileges`]: the scheduling priority, then every capability but CAP_NET_ADMIN —
//!    before any actix thread exists, as both are per thread;
//! 4. [`start_actors`] and [`serve`]: the actors, the control and metrics servers, adoption of
//!    the existing connections, `started` and READY=1, then configuration reloads until
//!    `shutdown` resolves (exit 0; the previous path manager is put back first if
//!    `kernel.restore_path_manager_on_exit`) or a kernel socket fails for good (exit 70, see
//!    [`crate::failure`]).
//!
//! The kernel actors are `netlink_actor::actors`; the daemon opens their sockets (it owns the
//! start-up order and its exit codes) and wires them to its own actors.
//!
//! Where reloads and the stop come from is the caller's business: signals in `main`, a channel
//! in the in-process tests.

use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;

use actix::prelude::*;
use mptcp_pmd_config::{Config, KernelConfig};
use netlink_actor::actors::addresses;
use netlink_actor::actors::{
    AddressMonitor, CommandPath, DiagPoller, EventActor, EventSinks, Failures, LocalsChanged,
    RtnlSockets, SetFilter, SocketFailure, Stats,
};
use netlink_actor::genl::{PmClient, PmEventSocket};
use netlink_actor::rtnl::RtnlSocket;
use netlink_actor::sock_diag::DiagSocket;
use slog::{debug, info, warn, Logger};
use tokio::sync::mpsc;

use crate::actors::coexist::EndpointWatch;
use crate::actors::connection::Peers;
use crate::actors::metering::{self, Metering};
use crate::actors::policy::{PolicyActor, SaveState, SetLimits, SetPolicy};
use crate::actors::registry::{AdoptExisting, Registry};
use crate::endpoints::control::{self, Control, Views};
use crate::endpoints::ctlsock::{self, Check, ControlSocket};
use crate::endpoints::http;
use crate::endpoints::metrics::Metrics;
use crate::endpoints::monitor::Monitor;
use crate::process::dirwatch::{Change, DirWatch};
use crate::process::failure::{self, FailureWatch};
use crate::process::nslock::{self, NsLock};
use crate::process::{exit, logging, notify, privs, startup};
use crate::wiring;

/// Why the daemon did not run or stopped on its own, with its exit code (README.md).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RunError {
    /// Exit code.
    pub code: i32,
    /// What failed.
    pub message: String,
}

impl From<SocketFailure> for RunError {
    fn from(f: SocketFailure) -> Self {
        RunError {
            code: exit::SOFTWARE,
            message: failure::stop_message(&f),
        }
    }
}

fn fail(code: i32, what: &str, e: impl std::fmt::Display) -> RunError {
    RunError {
        code,
        message: format!("{what}: {e}"),
    }
}

/// How long READY=1 waits for the `started` line to be written.
const READY_LOG_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// What the daemon runs with besides its configuration.
#[derive(Debug)]
pub struct Env {
    /// Where log lines go.
    pub log: Logger,
    /// New configurations to apply while running (SIGHUP in `main`): the policies, the
    /// address filters and whether subflows are sampled. A closed channel means no more.
    pub reloads: mpsc::UnboundedReceiver<Config>,
    /// `--dry-run`: track and decide, but send no command and leave the namespace's path
    /// manager as it is.
    pub dry_run: bool,
}

/// Run the daemon until `shutdown` resolves (`Ok`: a clean stop) or it cannot go on (`Err`
/// with the exit code). Must be awaited inside an actix `System`
/// (`actix::System::new().block_on(run(..))`) on a thread that has started no other thread
/// yet, because the privilege drop applies to the calling thread and the threads it starts.
pub async fn run(
    config: Config,
    env: Env,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let endpoints = claim_endpoints(&config)?;
    let state = claim_state(&config, &env.log)?;
    let kernel = open_kernel(&config, env.dry_run, &env.log)?;
    let replaced_pm = kernel.pm.replaced.clone();
    drop_privileges(&config.kernel, &env.log)?;
    // From here on log lines go through the writer thread (started after the privilege drop,
    // which it inherits); the guard writes out its queue when `run` returns.
    let _log_writer = logging::start_writer();
    let metrics = Metrics::default();
    let (failures, failed) = failure::channel();
    let log = env.log.clone();
    let actors = start_actors(
        &config,
        kernel,
        state,
        &metrics,
        failures,
        env.dry_run,
        &env.log,
    );
    let res = serve(&config, endpoints, &actors, &metrics, env, failed, shutdown).await;
    actors.stop();
    if res.is_ok() && config.kernel.restore_path_manager_on_exit {
        restore_path_manager(replaced_pm.as_deref(), &log);
    }
    res
}

/// On a clean stop with `kernel.restore_path_manager_on_exit`: put back the path manager the
/// daemon replaced at start (nothing if it replaced none).
fn restore_path_manager(replaced: Option<&str>, log: &Logger) {
    let Some(previous) = replaced else {
        info!(
            log,
            "path manager left as it is: the daemon did not switch it at start"
        );
        return;
    };
    match startup::restore_path_manager(previous) {
        Ok(()) => info!(log, "path manager restored"; "path_manager" => previous),
        Err(e) => {
            warn!(log, "cannot restore the path manager"; "path_manager" => previous, "error" => %e)
        }
    }
}

/// The namespace's lock (held), the control socket (claimed) and the metrics listener (bound),
/// before any kernel state is touched.
struct Endpoints {
    /// Released when dropped.
    lock: NsLock,
    /// Removes the control socket file when dropped.
    control: ControlSocket,
    /// `control.group`'s id.
    group: Option<u32>,
    metrics: Option<std::net::TcpListener>,
}

/// Step 1: take the network namespace's lock (exit 75 if another daemon holds it), claim the
/// control socket (exit 73 if another daemon serves it; exit 78 if `control.group` names no
/// group) and bind the metrics listener (exit 73).
fn claim_endpoints(config: &Config) -> Result<Endpoints, RunError> {
    let lock = NsLock::acquire().map_err(|e| match e {
        e @ nslock::LockError::Held { .. } => RunError {
            code: exit::TEMPFAIL,
            message: e.to_string(),
        },
        e => fail(exit::SOFTWARE, "namespace lock", e),
    })?;
    let group = match &config.control.group {
        Some(name) => Some(ctlsock::resolve_group(name).map_err(|e| RunError {
            code: exit::CONFIG,
            message: e.to_string(),
        })?),
        None => None,
    };
    let mut control = ControlSocket::claim(&config.control.socket)
        .map_err(|e| fail(exit::CANTCREAT, "control socket", e))?;
    if let Some(gid) = group {
        control
            .share_with_group(gid)
            .map_err(|e| fail(exit::CANTCREAT, "control socket", e))?;
    }
    let metrics = match config.metrics.listen {
        Some(addr) => Some(std::net::TcpListener::bind(addr).map_err(|e| {
            fail(
                exit::CANTCREAT,
                &format!("cannot listen on metrics.listen {addr}"),
                e,
            )
        })?),
        None => None,
    };
    Ok(Endpoints {
        lock,
        control,
        group,
        metrics,
    })
}

/// Step 1b: with metered budgets configured, their state directory (created if missing, exit
/// 73 if it cannot be written) and what its state file holds (a file that cannot be used is
/// logged, and counting starts from zero). No thread yet: the writer starts with the actors.
fn claim_state(config: &Config, log: &Logger) -> Result<Option<metering::Claimed>, RunError> {
    if !config.metered.is_active() {
        return Ok(None);
    }
    metering::claim(&config.metered, log)
        .map(Some)
        .map_err(|e| fail(exit::CANTCREAT, "metered.state_directory", e))
}

/// The kernel sockets, opened in order, and the addresses dumped through them.
struct KernelSockets {
    events: PmEventSocket,
    commands: PmClient,
    diag: DiagSocket,
    rtnl: RtnlSockets,
    /// The path manager in force, and the one the daemon replaced.
    pm: startup::KernelPm,
}

/// Step 2: check MPTCP and the userspace PM (exit 69; selected when configured; with
/// `dry_run` only MPTCP is checked and the path manager left as it is), subscribe to
/// `mptcp_pm_events` before reading any state so nothing falls in between, open the command,
/// sock_diag and rtnetlink sockets and dump links and addresses.
fn open_kernel(config: &Config, dry_run: bool, log: &Logger) -> Result<KernelSockets, RunError> {
    let startup_error = |e: startup::StartupError| RunError {
        code: e.code,
        message: e.message,
    };
    let pm = if dry_run {
        let now = startup::check_mptcp().map_err(startup_error)?;
        warn!(log, "dry run: decisions are logged and streamed, no command is sent, the path manager is left as it is"; "path_manager" => &now);
        startup::KernelPm {
            now,
            replaced: None,
        }
    } else {
        startup::check_kernel(config.kernel.set_userspace_pm).map_err(startup_error)?
    };
    info!(log, "kernel ready"; "path_manager" => &pm.now, "replaced" => pm.replaced.as_deref().unwrap_or("-"));
    let events = PmEventSocket::open(config.kernel.events_rcvbuf as usize).map_err(|e| {
        fail(
            exit::UNAVAILABLE,
            "cannot subscribe to mptcp_pm events (is MPTCP built in?)",
            e,
        )
    })?;
    let commands = PmClient::open().map_err(|e| {
        fail(
            exit::UNAVAILABLE,
            "cannot open the mptcp_pm command socket",
            e,
        )
    })?;
    let diag = DiagSocket::open()
        .map_err(|e| fail(exit::SOFTWARE, "cannot open the sock_diag socket", e))?;
    let monitor = RtnlSocket::open_monitor()
        .map_err(|e| fail(exit::SOFTWARE, "cannot subscribe to rtnetlink", e))?;
    let mut dumper =
        RtnlSocket::open().map_err(|e| fail(exit::SOFTWARE, "cannot open rtnetlink", e))?;
    let set = addresses::dump(&mut dumper)
        .map_err(|e| fail(exit::SOFTWARE, "cannot read local addresses", e))?;
    let (usable, skipped) = set.evaluate(&config.addresses);
    for l in &usable {
        info!(log, "usable local address"; "addr" => %l.addr, "if" => &l.if_name, "backup" => l.backup);
    }
    for s in &skipped {
        info!(log, "skipping local address"; "addr" => %s.addr, "if" => &s.if_name, "reason" => s.reason);
    }
    Ok(KernelSockets {
        events,
        commands,
        pm,
        diag,
        rtnl: RtnlSockets {
            monitor,
            dumper,
            set,
        },
    })
}

/// Step 3: raise the scheduling priority while we may (CAP_SYS_NICE; a warning if not), then
/// keep only CAP_NET_ADMIN (exit 70 if that fails). Both are per thread and inherited, hence
/// before any actix arbiter starts its thread.
fn drop_privileges(kernel: &KernelConfig, log: &Logger) -> Result<(), RunError> {
    match privs::set_nice(kernel.nice) {
        Ok(()) if kernel.nice != 0 => {
            info!(log, "scheduling priority set"; "nice" => kernel.nice)
        }
        Ok(()) => {}
        Err(e) => {
            warn!(log, "cannot set the scheduling priority, keeping the current one"; "nice" => kernel.nice, "error" => %e)
        }
    }
    let realtime = kernel.realtime_priority;
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
    let d = privs::drop_to_net_admin().map_err(|e| fail(exit::SOFTWARE, "privilege drop", e))?;
    info!(log, "capabilities dropped"; "kept" => "CAP_NET_ADMIN", "bounding_reduced" => d.bounding_reduced);
    Ok(())
}

/// The running actors.
struct Actors {
    policy: Addr<PolicyActor>,
    registry: Addr<Registry>,
    monitor: Addr<AddressMonitor>,
    diag: Addr<DiagPoller>,
    /// The sock_diag poller's own thread.
    diag_arbiter: Arbiter,
    /// What `mptcp-pmd monitor` streams.
    stream: Monitor,
    dry_run: bool,
}

impl Actors {
    /// Stop the sock_diag poller's thread and wait for it; the actors on the calling thread
    /// end with its actix `System`.
    fn stop(self) {
        if self.diag_arbiter.stop() {
            self.diag_arbiter.join().ok();
        }
    }
}

/// Step 4a: start the actors (policy, registry and its sock_diag poller on its own thread,
/// address monitor, events, endpoint watch) on the sockets of [`open_kernel`]. A socket that
/// fails for good is reported to `failures`.
fn start_actors(
    config: &Config,
    kernel: KernelSockets,
    state: Option<metering::Claimed>,
    metrics: &Metrics,
    failures: Failures,
    dry_run: bool,
    log: &Logger,
) -> Actors {
    let KernelSockets {
        events,
        commands,
        diag,
        rtnl,
        pm: _,
    } = kernel;
    let stream = Monitor::default();
    let book = wiring::build_book(config);
    let sampling = wiring::sampling(config, &book);
    let locals = Arc::new(rtnl.set.evaluate(&config.addresses).0);
    let metering = Metering::new(config, state, log.new(slog::o!("actor" => "metering")));
    let policy = PolicyActor::new(
        book,
        locals,
        metering,
        metrics.clone(),
        stream.clone(),
        dry_run,
        log.new(slog::o!("actor" => "policy")),
    )
    .start();
    EndpointWatch::new(dry_run, log.new(slog::o!("actor" => "endpoints"))).start();
    // Commands are a direct call from the connection actors on this thread (see
    // netlink-actor's actors/commands.rs for why not an actor).
    let stats: Arc<dyn Stats> = Arc::new(metrics.clone());
    let cmds = CommandPath::new(
        commands,
        stats.clone(),
        failures.clone(),
        log.new(slog::o!("actor" => "commands")),
    );
    let diag_arbiter = Arbiter::new();
    if config.kernel.realtime_priority > 0 {
        // A full sock_diag dump can take 100 ms of kernel time: not at real-time priority.
        let diag_sched_log = log.clone();
        diag_arbiter.spawn_fn(move || {
            if let Err(e) = privs::set_normal_scheduler() {
                warn!(diag_sched_log, "sock_diag thread: cannot leave real-time scheduling"; "error" => %e);
            }
        });
    }
    let timers = wiring::timers(config);
    let interval = wiring::poll_interval(config);
    info!(log, "sock_diag polling"; "interval_ms" => interval.as_millis() as u64,
        "subflow_samples" => if sampling { "on (a policy or a metered budget reads them; a policy's connections only, each at its period)" } else { "off (nothing reads them)" });
    // The registry and the poller need each other's address: make the registry's mailbox
    // first, start the poller on its own thread with it, then run the registry.
    let reg_ctx = Context::<Registry>::new();
    let reg_addr = reg_ctx.address();
    let sink = reg_addr.clone().recipient();
    let fresh = reg_addr.clone().recipient();
    let (diag_stats, diag_failures) = (stats.clone(), failures.clone());
    let diag_log = log.new(slog::o!("actor" => "diag"));
    let diag = DiagPoller::start_in_arbiter(&diag_arbiter.handle(), move |_| {
        DiagPoller::new(
            diag,
            sink,
            fresh,
            interval,
            diag_stats,
            diag_failures,
            diag_log,
        )
    });
    let peers = Peers {
        policy: policy.clone(),
        cmds,
        gone: reg_addr.recipient(),
        log: log.new(slog::o!("actor" => "registry")),
        metrics: metrics.clone(),
        stream: stream.clone(),
        dry_run,
        diag: diag.clone(),
    };
    let registry = reg_ctx.run(Registry::new(peers, diag.clone(), timers));
    let sinks: Vec<Recipient<LocalsChanged>> =
        vec![policy.clone().recipient(), registry.clone().recipient()];
    let monitor = AddressMonitor::new(
        rtnl,
        config.addresses.clone(),
        sinks,
        failures.clone(),
        log.new(slog::o!("actor" => "addresses")),
    )
    .start();
    let event_sinks = EventSinks {
        events: registry.clone().recipient(),
        resync: registry.clone().recipient(),
    };
    EventActor::new(
        events,
        event_sinks,
        stats,
        failures,
        log.new(slog::o!("actor" => "events")),
    )
    .start();
    Actors {
        policy,
        registry,
        monitor,
        diag,
        diag_arbiter,
        stream,
        dry_run,
    }
}

/// Step 4b: serve the control socket and metrics, adopt the existing connections, log
/// `started` and tell systemd, then apply reloads until `shutdown` resolves or a kernel socket
/// fails for good.
async fn serve(
    config: &Config,
    endpoints: Endpoints,
    actors: &Actors,
    metrics: &Metrics,
    env: Env,
    mut failed: FailureWatch,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let Env {
        log, mut reloads, ..
    } = env;
    let Endpoints {
        mut lock,
        control: mut control_sock,
        group,
        metrics: metrics_listener,
    } = endpoints;
    let answer = nslock::Answer {
        pid: std::process::id(),
        control: config.control.socket.display().to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    if let Err(e) = lock.answer_probes(&answer, log.new(slog::o!("actor" => "nslock"))) {
        // The lock still holds; a second daemon only learns less about us.
        warn!(log, "cannot answer probes of the namespace lock"; "error" => %e);
    }
    let views = Views {
        registry: actors.registry.clone(),
        policy: actors.policy.clone(),
        monitor: actors.monitor.clone(),
        diag: actors.diag.clone(),
        metrics: metrics.clone(),
    };
    let control_log = log.new(slog::o!("actor" => "control"));
    let control = Rc::new(Control::new(
        views.clone(),
        actors.stream.clone(),
        group,
        actors.dry_run,
        control_log.clone(),
    ));
    let mut control_server = match control_sock.take_listener() {
        Some(l) => Some(
            control::serve(l, control.clone())
                .map_err(|e| fail(exit::SOFTWARE, "cannot serve the control socket", e))?,
        ),
        None => None,
    };
    if let Some(l) = metrics_listener {
        http::serve(l, views.clone(), log.new(slog::o!("actor" => "metrics")))
            .map_err(|e| fail(exit::SOFTWARE, "cannot serve metrics", e))?;
    }
    match actors.registry.send(AdoptExisting).await {
        Ok(n) => {
            info!(log, "started"; "adopted_connections" => n, "policy" => config.policy.to_string(), "dry_run" => actors.dry_run,
            "control" => %config.control.socket.display(), "metrics" => config.metrics.listen.map(|a| a.to_string()).unwrap_or_else(|| "off".into()))
        }
        Err(e) => warn!(log, "start-up adoption failed"; "error" => %e),
    }
    // Whoever reads READY=1 (systemd, a test, the bench) finds the `started` line written,
    // unless stderr is stuck (logging never blocks the loop; READY=1 then goes out anyway).
    logging::caught_up(READY_LOG_WAIT).await;
    match notify::notify("READY=1\nSTATUS=managing MPTCP subflows") {
        Ok(true) => debug!(log, "told systemd we are ready"),
        Ok(false) => {}
        Err(e) => warn!(log, "cannot notify systemd (NOTIFY_SOCKET)"; "error" => %e),
    }

    tokio::pin!(shutdown);
    let mut reloading = true;
    // The control socket's file is checked when its directory changes (inotify: no wake-up
    // while nothing happens); while the directory cannot be watched (gone, or inotify
    // unavailable) or a re-creation failed, every WATCH_EVERY too, and the directory is
    // watched again at the next of those checks. The first check is at once: the file may
    // have gone while the daemon was starting, before the directory was watched.
    let mut dir_watch = watch_socket_dir(control_sock.path(), &control_log);
    let mut poll = Some(ctlsock_poll(tokio::time::Instant::now()));
    let mut occupied = None;
    let res = loop {
        // (check the file, try to watch the directory again if it is not watched)
        let (look, rewatch) = tokio::select! {
            () = &mut shutdown => break Ok(()),
            f = failed.first() => break Err(RunError::from(f)),
            new = reloads.recv(), if reloading => {
                match new {
                    Some(new) => apply(&new, actors),
                    None => reloading = false,
                }
                (false, false)
            }
            change = async {
                match &dir_watch {
                    Some(w) => w.changed().await,
                    None => std::future::pending().await,
                }
            } => {
                match change {
                    Ok(Change::Entries) => (true, false),
                    Ok(Change::Lost) => {
                        dir_watch = None;
                        (true, true)
                    }
                    Err(e) => {
                        // Watched again at the next check, a second later: a read that
                        // keeps failing must not spin.
                        warn!(control_log, "cannot read the control socket directory's watch: checking every second instead"; "error" => %e);
                        dir_watch = None;
                        (true, false)
                    }
                }
            }
            _ = async {
                match poll.as_mut() {
                    Some(p) => { p.tick().await; }
                    None => std::future::pending().await,
                }
            } => (true, true),
        };
        if look {
            let check = control_sock.check();
            // A socket that could not be re-created, or a path another process's live socket
            // holds, is looked at again every second even while the directory is watched:
            // nothing in it changes when that process exits and leaves a stale file.
            let retry = matches!(
                check,
                Check::Failed(_) | Check::Occupied(ctlsock::ClaimError::AlreadyRunning(_))
            );
            keep_control_socket(
                check,
                &mut control_server,
                &mut occupied,
                &control,
                &control_log,
            );
            if dir_watch.is_none() && rewatch {
                dir_watch = DirWatch::of_parent(control_sock.path()).ok();
            }
            poll = match (dir_watch.is_none() || retry, poll.take()) {
                (true, Some(p)) => Some(p),
                // Just checked: the next check a period from now.
                (true, None) => Some(ctlsock_poll(
                    tokio::time::Instant::now() + ctlsock::WATCH_EVERY,
                )),
                (false, _) => None,
            };
        }
    };
    if let Err(e) = notify::notify("STOPPING=1") {
        warn!(log, "cannot notify systemd (NOTIFY_SOCKET)"; "error" => %e);
    }
    if let Err(e) = actors.policy.send(SaveState).await {
        warn!(log, "cannot save the metered state at stop"; "error" => %e);
    }
    let c = metrics.snapshot();
    info!(log, "stopped"; "events" => ?c.events, "commands" => ?c.commands, "overruns" => c.overruns, "resyncs" => c.resyncs);
    drop(control_sock);
    drop(lock);
    res
}

/// The watch of the control socket's directory, or `None` (logged) when it cannot be had.
fn watch_socket_dir(path: &std::path::Path, log: &Logger) -> Option<DirWatch> {
    match DirWatch::of_parent(path) {
        Ok(w) => Some(w),
        Err(e) => {
            warn!(log, "cannot watch the control socket's directory (inotify): checking the file every second instead"; "error" => %e);
            None
        }
    }
}

/// The fallback check of the control socket file, every [`ctlsock::WATCH_EVERY`] from
/// `first`.
fn ctlsock_poll(first: tokio::time::Instant) -> tokio::time::Interval {
    let mut i = tokio::time::interval_at(first, ctlsock::WATCH_EVERY);
    i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    i
}

/// Act on what the watch of the control socket file found: serve a re-created socket (ending
/// the accept loop of the old one, whose file is gone), and log a path that something else
/// occupies — once per distinct cause, and again when it changes.
fn keep_control_socket(
    check: Check,
    server: &mut Option<tokio::task::JoinHandle<()>>,
    reported: &mut Option<String>,
    control: &Rc<Control>,
    log: &Logger,
) {
    match check {
        Check::Ours => *reported = None,
        Check::Recreated(listener) => {
            *reported = None;
            match control::serve(listener, control.clone()) {
                Ok(task) => {
                    if let Some(old) = server.replace(task) {
                        old.abort();
                    }
                    warn!(
                        log,
                        "the control socket file was gone (deleted?): re-created it"
                    );
                }
                Err(e) => {
                    warn!(log, "cannot serve the re-created control socket"; "error" => %e)
                }
            }
        }
        Check::Occupied(e) => {
            let text = e.to_string();
            if reported.as_deref() != Some(text.as_str()) {
                warn!(log, "the control socket path is taken by something else: left alone; this daemon \
                    is unreachable there until the path is free again (checked when its directory changes, and every second while another process's socket holds it)"; "error" => &text);
                *reported = Some(text);
            }
        }
        Check::Failed(e) => {
            let text = e.to_string();
            if reported.as_deref() != Some(text.as_str()) {
                warn!(log, "the control socket file is gone and cannot be re-created now; trying again every second";
                    "error" => &text);
                *reported = Some(text);
            }
        }
    }
}

/// Apply a reloaded configuration: the policies (and with them which connections are sampled
/// how often: each connection learns it at its next decision), the per-interface limits
/// (budgets, caps), the address filters. (The log level is the caller's: it owns the logger.)
fn apply(config: &Config, actors: &Actors) {
    let book = wiring::build_book(config);
    actors.policy.do_send(SetPolicy(book));
    actors.policy.do_send(SetLimits(Box::new(config.clone())));
    actors.monitor.do_send(SetFilter(config.addresses.clone()));
}
