//! `mptcp-pmd`: parse the command line, run a client subcommand or load the configuration,
//! check CAP_NET_ADMIN, build the shutdown future from signals and hand over to
//! [`service::run`]; every failure maps to a documented exit code (README.md).

use clap::Parser;
use mptcp_pmd::{cli, client, exit, logging, service, signals, startup, trim};

fn main() {
    std::process::exit(real_main());
}

fn real_main() -> i32 {
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return code;
        }
    };
    if let Some(command) = &cli.command {
        return client::run(&cli, command);
    }
    // Before the first thread (the log writer) is started. Returns only when it did not
    // re-execute the daemon (a configuration check runs too briefly to need it).
    let reexec_failed = if cli.check_config {
        None
    } else {
        trim::reexec_without_tcache()
    };
    let tuned = trim::tune_allocator();
    let config = match mptcp_pmd_config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mptcp-pmd: {e}");
            return exit::CONFIG;
        }
    };
    if cli.check_config {
        print!("{}", config.effective_yaml());
        return exit::OK;
    }
    let level_name = cli
        .log_level
        .clone()
        .unwrap_or_else(|| config.log.level.as_str().to_string());
    let level = logging::parse_level(&level_name).unwrap_or(slog::Level::Info);
    let (log, handle) = logging::init(level, config.log.format);
    if let Err(e) = startup::check_net_admin() {
        slog::crit!(log, "{}", e.message);
        eprintln!("mptcp-pmd: {}", e.message);
        return e.code;
    }
    slog::info!(log, "mptcp-pmd starting"; "version" => cli::VERSION, "config" => %cli.config.display(), "allocator_tuned" => tuned);
    if let Some(e) = reexec_failed {
        slog::warn!(log, "could not restart with glibc's per-thread malloc cache off; running with it (more memory stays resident after a burst of connections)"; "error" => %e);
    }
    // A current-thread runtime: no thread exists before the privilege drop in `run`.
    let res = actix::System::new().block_on(async {
        // Installed before anything can announce the daemon (`started`, READY=1): a signal
        // sent right after would otherwise hit its default action.
        let signals = signals::Signals::install().map_err(|e| service::RunError {
            code: exit::SOFTWARE,
            message: format!("cannot install signal handlers: {e}"),
        })?;
        let (reload_tx, reloads) = tokio::sync::mpsc::unbounded_channel();
        let shutdown = signals.until_stop(cli.config.clone(), handle, reload_tx, log.clone());
        let env = service::Env {
            log: log.clone(),
            reloads,
            dry_run: cli.dry_run,
        };
        service::run(config, env, shutdown).await
    });
    match res {
        Ok(()) => exit::OK,
        Err(e) => {
            slog::crit!(log, "{}", e.message);
            e.code
        }
    }
}
