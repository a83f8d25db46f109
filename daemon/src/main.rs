//! `mptcp-pmd`: the Multipath TCP userspace path manager daemon. `main` is thin: parse the
//! command line, load the config, check privileges, hand over to [`service::run`], and map every
//! failure to a documented exit code (see README.md).

mod actors;
mod addrset;
mod adopt;
mod cli;
mod exit;
mod logging;
mod metrics;
mod rules;
mod service;
mod startup;
mod wiring;

use clap::Parser;

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
    let (log, handle) = logging::init(level);
    if let Err(e) = startup::check_net_admin() {
        slog::crit!(log, "{}", e.message);
        eprintln!("mptcp-pmd: {}", e.message);
        return e.code;
    }
    slog::info!(log, "mptcp-pmd starting"; "version" => env!("CARGO_PKG_VERSION"), "config" => %cli.config.display());
    match service::run(config, cli.config, log.clone(), handle) {
        Ok(code) => code,
        Err(e) => {
            slog::crit!(log, "{}", e.message);
            e.code
        }
    }
}
