//! End to end: steering and watching the real `mptcp-pmd` (issue 18) — every operator command
//! as the kernel shows its effect (`ss`, the peer's `mptcp_pm` events), the monitor stream in
//! causal order and with a stuck reader, `--dry-run`, `hold`, `control.group`'s read-only
//! access and the control protocol's answers to bad requests, the in-kernel PM endpoint warning
//! and `kernel.restore_path_manager_on_exit`.
//!
//! "A policy that creates nothing" is `ndiffports` with `subflows: 1` (documented: "1 creates
//! nothing"): the connection keeps its initial subflow, and every other subflow is the
//! operator's.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use integration::daemon::{daemon_bin, Daemon, DaemonOpts};
use integration::observe::{subflows, EventLog, SsSubflow};
use integration::{kernel_tests_enabled, wait_for, Pm, TopoOpts, Topology};
use mptcp_pmd_policies::PmEvent;
use serde_json::Value;

const NOTHING: &str = "policy: ndiffports\nndiffports:\n  subflows: 1\n";
const MESH: &str = "policy: fullmesh\n";

fn topo(port: u16) -> Topology {
    let t = Topology::build(TopoOpts::default()).expect("topology");
    t.serve_echo(port).expect("echo server");
    t
}

/// Run the CLI (outside the namespace: the control socket is a file).
fn cli(args: &[&str]) -> (Option<i32>, String, String) {
    cli_as(&[], args)
}

/// Run the CLI under `setpriv PRIV...` (another uid and groups).
fn cli_as(privs: &[&str], args: &[&str]) -> (Option<i32>, String, String) {
    let bin = daemon_bin();
    let o = if privs.is_empty() {
        Command::new(&bin).args(args).output().unwrap()
    } else {
        Command::new("setpriv")
            .args(privs)
            .arg("--")
            .arg(&bin)
            .args(args)
            .output()
            .unwrap()
    };
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn sock_arg(d: &Daemon) -> String {
    d.control_socket().to_str().unwrap().to_string()
}

fn status(d: &Daemon) -> Value {
    let (code, out, err) = cli(&["status", "--json", "-s", &sock_arg(d)]);
    assert_eq!(code, Some(0), "status failed: {err}");
    serde_json::from_str(&out).unwrap()
}

/// The token of the only tracked connection, once the daemon saw it fully established.
fn only_token(d: &Daemon) -> String {
    wait_for(Duration::from_secs(15), || {
        let s = status(d);
        let c = s["connections"].as_array()?;
        (c.len() == 1 && c[0]["established"] == true)
            .then(|| c[0]["token"].as_str().unwrap().to_string())
    })
    .unwrap_or_else(|| panic!("no established connection in status\n{}", d.log()))
}

/// The established subflows of the one connection towards `port` (by `ss`).
fn ss_subflows(t: &Topology, port: u16) -> Vec<SsSubflow> {
    subflows(&t.client, port)
        .into_values()
        .next()
        .unwrap_or_default()
}

fn wait_subflows(
    t: &Topology,
    port: u16,
    d: &Daemon,
    what: &str,
    ok: impl Fn(&[SsSubflow]) -> bool,
) -> Vec<SsSubflow> {
    wait_for(Duration::from_secs(15), || {
        let v = ss_subflows(t, port);
        ok(&v).then_some(v)
    })
    .unwrap_or_else(|| panic!("{what}: ss shows {:#?}\n{}", ss_subflows(t, port), d.log()))
}

/// `mptcp-pmd monitor ARGS` as a child, its stdout lines collected on a thread.
struct MonitorProc {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl MonitorProc {
    fn start(d: &Daemon, args: &[&str]) -> MonitorProc {
        let before = d.count("monitor attached");
        let mut child = Command::new(daemon_bin())
            .arg("monitor")
            .args(args)
            .args(["-s", &sock_arg(d)])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let l2 = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                match line {
                    Ok(l) => l2.lock().unwrap().push(l),
                    Err(_) => return,
                }
            }
        });
        assert!(
            wait_for(Duration::from_secs(10), || (d.count("monitor attached")
                > before)
                .then_some(()))
            .is_some(),
            "monitor not attached:\n{}",
            d.log()
        );
        MonitorProc { child, lines }
    }

    fn json(&self) -> Vec<Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }

    fn text(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for MonitorProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The index of the first line at or after `from` matching `pred` (waiting for it).
fn find(m: &MonitorProc, from: usize, what: &str, pred: impl Fn(&Value) -> bool) -> usize {
    wait_for(Duration::from_secs(15), || {
        m.json()
            .iter()
            .enumerate()
            .skip(from)
            .find(|(_, v)| pred(v))
            .map(|(i, _)| i)
    })
    .unwrap_or_else(|| panic!("no {what} after line {from} in {:#?}", m.json()))
}

fn is(v: &Value, kind: &str, name: &str, token: &str) -> bool {
    v["kind"] == kind && v["name"] == name && v["token"] == token
}

fn ip_of(v: &Value, field: &str) -> Option<IpAddr> {
    let s = v[field].as_str()?;
    s.parse::<SocketAddr>()
        .map(|a| a.ip())
        .or_else(|_| s.parse::<IpAddr>())
        .ok()
}

#[test]
fn operator_commands_with_a_policy_that_creates_nothing() {
    if !kernel_tests_enabled("operator_commands_with_a_policy_that_creates_nothing") {
        return;
    }
    const PORT: u16 = 5401;
    let t = topo(PORT);
    let mut server_events = EventLog::open(&t.server, "server");
    let d = Daemon::start(&t.client, NOTHING);
    d.wait_ready();
    let s = sock_arg(&d);
    let mon = MonitorProc::start(&d, &["--json"]);
    let _conn = t.connect_many(PORT, 1).unwrap();
    let token = only_token(&d);
    let (a0, a1) = (t.client_addr(0), t.client_addr(1));
    let server = SocketAddr::new(t.server_addr(0), PORT).to_string();

    // The policy creates nothing: one subflow.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(ss_subflows(&t, PORT).len(), 1, "{}", d.log());

    // subflow create: the kernel shows the join.
    let (code, out, err) = cli(&[
        "subflow",
        "create",
        &token,
        &a1.to_string(),
        &server,
        "-s",
        &s,
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("SUBFLOW_CREATE"), "{out}");
    let v = wait_subflows(&t, PORT, &d, "manual join", |v| {
        v.len() == 2 && v.iter().any(|f| f.local.ip() == a1)
    });
    let joined = v.iter().find(|f| f.local.ip() == a1).unwrap().clone();
    // The state machine knows it, as made by hand.
    let st = wait_for(Duration::from_secs(5), || {
        let st = status(&d);
        let subs = st["connections"][0]["subflows"].as_array().unwrap().clone();
        subs.into_iter()
            .find(|f| f["local"] == joined.local.to_string() && f["state"] == "established")
    })
    .unwrap_or_else(|| panic!("status does not show the manual subflow\n{}", d.log()));
    assert_eq!(st["manual"], true, "{st}");
    assert!(
        st["why"]
            .as_str()
            .unwrap()
            .starts_with("operator: uid 0 pid "),
        "{st}"
    );
    // ... and the log names the caller.
    assert!(
        d.wait_log("operator command", Duration::from_secs(5)),
        "{}",
        d.log()
    );
    let logged = d
        .log()
        .lines()
        .find(|l| l.contains("operator command") && l.contains("subflow_create"))
        .map(String::from)
        .unwrap_or_default();
    assert!(
        logged.contains("uid: 0") || logged.contains("uid=0"),
        "{logged}"
    );
    assert!(logged.contains("pid"), "{logged}");

    // The monitor, started before the connection: its events, then that command (by the
    // operator, acknowledged), then the join's SUB_ESTABLISHED.
    let created = find(&mon, 0, "created", |v| is(v, "event", "created", &token));
    let established = find(&mon, created, "established", |v| {
        is(v, "event", "established", &token)
    });
    let command = find(&mon, established, "the operator's command", |v| {
        is(v, "command", "subflow_create", &token)
            && v["origin"] == "operator"
            && v["result"] == "ok"
            && ip_of(v, "local") == Some(a1)
            && v["uid"] == 0
    });
    find(&mon, command, "the join's sub_established", |v| {
        is(v, "event", "sub_established", &token) && ip_of(v, "local") == Some(a1)
    });
    assert!(
        mon.json()
            .iter()
            .all(|v| v["time"].as_f64().is_some_and(|t| t > 1.6e9)),
        "every line has a wall-clock time"
    );

    // subflow backup on/off: the kernel shows the flag ('b' in ss's MPTCP flags).
    let key = [joined.local.to_string(), joined.remote.to_string()];
    let (code, out, err) = cli(&[
        "subflow", "backup", &token, &key[0], &key[1], "on", "-s", &s,
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    wait_subflows(&t, PORT, &d, "backup flag set", |v| {
        v.iter()
            .any(|f| f.local == joined.local && f.flags.contains('b'))
    });
    let (code, out, err) = cli(&[
        "subflow", "backup", &token, &key[0], &key[1], "off", "-s", &s,
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    wait_subflows(&t, PORT, &d, "backup flag cleared", |v| {
        v.iter()
            .any(|f| f.local == joined.local && !f.flags.contains('b'))
    });

    // subflow destroy: the kernel closes it.
    let (code, out, err) = cli(&["subflow", "destroy", &token, &key[0], &key[1], "-s", &s]);
    assert_eq!(code, Some(0), "{out}{err}");
    wait_subflows(&t, PORT, &d, "destroyed", |v| {
        v.len() == 1 && v[0].local.ip() == a0
    });
    // Again: it is gone, the state machine says so, nothing is sent; exit 1.
    let (code, _, err) = cli(&["subflow", "destroy", &token, &key[0], &key[1], "-s", &s]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no established subflow"), "{err}");

    // announce: the peer's kernel reports the address; withdraw: it reports it removed.
    let (code, out, err) = cli(&["announce", &token, &a1.to_string(), "--id", "7", "-s", &s]);
    // a1 already has an id on this connection (its join used one): another is refused ...
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("already has address id"), "{err}");
    // ... and without --id it keeps its own.
    let (code, out, err) = cli(&["announce", &token, &a1.to_string(), "-s", &s]);
    assert_eq!(code, Some(0), "{out}{err}");
    let ann = server_events.wait(
        "ANNOUNCED of a1",
        Duration::from_secs(10),
        |e| matches!(e, PmEvent::Announced { addr, .. } if *addr == a1),
    );
    let PmEvent::Announced { rem_id, .. } = ann.event else {
        unreachable!()
    };
    let st = status(&d);
    let announced = &st["connections"][0]["announced"][0];
    assert_eq!(announced["id"], u64::from(rem_id), "{st}");
    assert_eq!(announced["manual"], true, "{st}");
    let (code, out, err) = cli(&["withdraw", &token, &rem_id.to_string(), "-s", &s]);
    assert_eq!(code, Some(0), "{out}{err}");
    server_events.wait(
        "REMOVED of a1's id",
        Duration::from_secs(10),
        |e| matches!(e, PmEvent::Removed { rem_id: r, .. } if *r == rem_id),
    );

    // A kernel refusal comes back with the kernel's errno and message and exit 1: a create
    // from an address this host does not have.
    let (code, _, err) = cli(&["subflow", "create", &token, "192.0.2.99", &server, "-s", &s]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("the kernel refused subflow_create with errno"),
        "{err}"
    );
    let refused = find(&mon, 0, "the refused command", |v| {
        is(v, "command", "subflow_create", &token)
            && v["result"] == "refused"
            && v["errno"].as_i64().is_some_and(|e| e > 0)
    });
    eprintln!("kernel refusal: {err}monitor: {}", mon.json()[refused]);
    // A create from an address of the other family is refused before the kernel.
    let (code, _, err) = cli(&[
        "subflow",
        "create",
        &token,
        &t.client_addr6(1).to_string(),
        &server,
        "-s",
        &s,
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("different address families"), "{err}");
    // A token nobody has.
    let (code, _, err) = cli(&["hold", "12345678", "-s", &s]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no tracked connection"), "{err}");
}

#[test]
fn monitor_shows_events_decision_and_command_in_order() {
    if !kernel_tests_enabled("monitor_shows_events_decision_and_command_in_order") {
        return;
    }
    const PORT: u16 = 5402;
    let t = topo(PORT);
    let d = Daemon::start(&t.client, MESH);
    d.wait_ready();
    let json = MonitorProc::start(&d, &["--json"]);
    let text = MonitorProc::start(&d, &["--kind", "decision"]);
    let _conn = t.connect_many(PORT, 1).unwrap();
    let token = only_token(&d);
    let a1 = t.client_addr(1);
    let created = find(&json, 0, "created", |v| is(v, "event", "created", &token));
    let established = find(&json, created, "established", |v| {
        is(v, "event", "established", &token)
    });
    let decision = find(&json, established, "the open decision", |v| {
        is(v, "decision", "open", &token)
            && ip_of(v, "local") == Some(a1)
            && v["policy"] == "fullmesh"
            && v["reason"].as_str().is_some_and(|r| !r.is_empty())
    });
    let command = find(&json, decision, "its command", |v| {
        is(v, "command", "subflow_create", &token)
            && v["origin"] == "policy"
            && v["result"] == "ok"
            && ip_of(v, "local") == Some(a1)
    });
    find(&json, command, "the join", |v| {
        is(v, "event", "sub_established", &token) && ip_of(v, "local") == Some(a1)
    });
    // Columns, filtered: only decisions.
    let lines = wait_for(Duration::from_secs(5), || {
        let l = text.text();
        (l.len() >= 2).then_some(l)
    })
    .unwrap_or_else(|| panic!("no text line: {:?}", text.text()));
    eprintln!("{}", lines.join("\n"));
    assert!(lines[0].starts_with("TIME"), "{lines:?}");
    for l in &lines[1..] {
        assert!(l.contains(" decision "), "only decisions: {l}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&token) && l.contains("open") && l.contains(&a1.to_string())),
        "{lines:?}"
    );
}

#[test]
fn a_stuck_monitor_does_not_delay_other_connections() {
    if !kernel_tests_enabled("a_stuck_monitor_does_not_delay_other_connections") {
        return;
    }
    const PORT: u16 = 5403;
    const CONNS: usize = 400;
    let t = topo(PORT);
    let d = Daemon::start(&t.client, MESH);
    d.wait_ready();
    // A reader that subscribes and then never reads.
    let mut stuck = UnixStream::connect(d.control_socket()).unwrap();
    stuck.write_all(b"{\"v\":1,\"cmd\":\"monitor\"}\n").unwrap();
    let mut r = BufReader::new(stuck.try_clone().unwrap());
    let mut reply = String::new();
    r.read_line(&mut reply).unwrap();
    let v: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(v["ok"], true, "{reply}");
    let queue = v["monitor"]["queue"].as_u64().unwrap();

    let started = Instant::now();
    let conns = t.connect_many(PORT, CONNS).unwrap();
    let (a0, a1) = (t.client_addr(0), t.client_addr(1));
    let meshed = wait_for(Duration::from_secs(90), || {
        let m = subflows(&t.client, PORT);
        (m.len() == CONNS
            && m.values().all(|v| {
                v.len() == 2
                    && v.iter().any(|s| s.local.ip() == a0)
                    && v.iter().any(|s| s.local.ip() == a1)
            }))
        .then_some(())
    });
    assert!(
        meshed.is_some(),
        "not every connection meshed with a stuck monitor: {} of {CONNS}\n{}",
        subflows(&t.client, PORT)
            .values()
            .filter(|v| v.len() == 2)
            .count(),
        d.log()
    );
    eprintln!(
        "{CONNS} connections meshed {:?} after the first connect",
        started.elapsed()
    );
    // The daemon still answers.
    assert_eq!(status(&d)["connections"].as_array().unwrap().len(), CONNS);
    drop(conns);
    // Their closes are more lines the stuck reader does not take.
    assert!(
        wait_for(Duration::from_secs(30), || status(&d)["connections"]
            .as_array()
            .unwrap()
            .is_empty()
            .then_some(()))
        .is_some(),
        "{}",
        d.log()
    );

    // Now read: every line is JSON, and the daemon says how many it dropped.
    stuck
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut lost = 0;
    let mut lines = 0;
    let mut buf = String::new();
    loop {
        buf.clear();
        match r.read_line(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let v: Value = serde_json::from_str(&buf)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {buf:?}"));
                lines += 1;
                if v["kind"] == "lost" {
                    lost += v["lines"].as_u64().unwrap();
                }
            }
        }
    }
    eprintln!("stuck reader: {lines} lines read, {lost} reported lost (queue {queue})");
    assert!(
        lost > 0,
        "{CONNS} connections made only {lines} lines: nothing was dropped"
    );
    assert!(lines as u64 > queue, "{lines} lines, queue {queue}");
}

#[test]
fn dry_run_makes_no_join_and_names_the_addresses() {
    if !kernel_tests_enabled("dry_run_makes_no_join_and_names_the_addresses") {
        return;
    }
    const PORT: u16 = 5404;
    let t = topo(PORT);
    // The namespace runs the in-kernel PM (no endpoints: it creates nothing itself); a dry
    // run must leave that alone.
    t.client.sysctl("net.mptcp.path_manager", "kernel").unwrap();
    let d = Daemon::spawn(
        &t.client,
        MESH,
        DaemonOpts {
            args: vec!["--dry-run".into()],
            ..DaemonOpts::default()
        },
    );
    d.wait_ready();
    let mon = MonitorProc::start(&d, &["--json", "--kind", "decision,command"]);
    let _conn = t.connect_many(PORT, 1).unwrap();
    let token = only_token(&d);
    let a1 = t.client_addr(1);
    // The decision is logged, naming the local address it would have used ...
    let line = wait_for(Duration::from_secs(10), || {
        d.log()
            .lines()
            .find(|l| l.contains("dry run: not carried out") && l.contains(&a1.to_string()))
            .map(String::from)
    })
    .unwrap_or_else(|| panic!("no dry-run decision naming {a1}:\n{}", d.log()));
    eprintln!("{line}");
    assert!(line.contains("open"), "{line}");
    // ... and streamed as not carried out.
    let i = find(&mon, 0, "a dry-run decision", |v| {
        is(v, "decision", "open", &token) && v["dry_run"] == true && ip_of(v, "local") == Some(a1)
    });
    // No join: give a real run's join ample time, then look.
    std::thread::sleep(Duration::from_secs(2));
    let v = ss_subflows(&t, PORT);
    assert_eq!(v.len(), 1, "a dry run made a join: {v:#?}\n{}", d.log());
    assert!(
        mon.json()[i..].iter().all(|v| v["kind"] != "command"),
        "a dry run sent a command: {:#?}",
        mon.json()
    );
    // The path manager was left alone.
    let pm = t
        .client
        .run(&["sysctl", "-n", "net.mptcp.path_manager"])
        .unwrap();
    assert_eq!(pm.trim(), "kernel");
    // Operator commands are refused too.
    let server = SocketAddr::new(t.server_addr(0), PORT).to_string();
    let (code, _, err) = cli(&[
        "subflow",
        "create",
        &token,
        &a1.to_string(),
        &server,
        "-s",
        &sock_arg(&d),
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--dry-run"), "{err}");
}

#[test]
fn a_held_connection_keeps_what_the_operator_did() {
    if !kernel_tests_enabled("a_held_connection_keeps_what_the_operator_did") {
        return;
    }
    const PORT: u16 = 5405;
    let t = topo(PORT);
    let d = Daemon::start(
        &t.client,
        "policy: fullmesh\nsubflow:\n  backoff_initial_ms: 100\n  backoff_max_ms: 200\n",
    );
    d.wait_ready();
    let s = sock_arg(&d);
    let _conn = t.connect_many(PORT, 1).unwrap();
    let token = only_token(&d);
    let (a0, a1) = (t.client_addr(0), t.client_addr(1));
    let v = wait_subflows(&t, PORT, &d, "meshed", |v| v.len() == 2);
    let second = v.iter().find(|f| f.local.ip() == a1).unwrap().clone();

    let mon = MonitorProc::start(&d, &["--json", "--kind", "command"]);
    let (code, out, err) = cli(&["hold", &token, "-s", &s]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("held"), "{out}");
    // The monitor says who took the connection from its policy.
    find(&mon, 0, "the hold", |v| {
        is(v, "command", "hold", &token) && v["origin"] == "operator" && v["uid"] == 0
    });
    assert_eq!(status(&d)["connections"][0]["held"], true);
    let (code, out, err) = cli(&[
        "subflow",
        "destroy",
        &token,
        &second.local.to_string(),
        &second.remote.to_string(),
        "-s",
        &s,
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    wait_subflows(&t, PORT, &d, "destroyed", |v| {
        v.len() == 1 && v[0].local.ip() == a0
    });
    // fullmesh would re-create it at once (an intentional close has no backoff); held, it
    // does not.
    std::thread::sleep(Duration::from_secs(2));
    let v = ss_subflows(&t, PORT);
    assert_eq!(
        v.len(),
        1,
        "the policy undid the operator's destroy: {v:#?}\n{}",
        d.log()
    );

    // Released, the policy acts again: the mesh comes back.
    let (code, out, err) = cli(&["release", &token, "-s", &s]);
    assert_eq!(code, Some(0), "{out}{err}");
    wait_subflows(&t, PORT, &d, "re-meshed after release", |v| {
        v.len() == 2 && v.iter().any(|f| f.local.ip() == a1)
    });
    assert_eq!(status(&d)["connections"][0]["held"], false);
}

/// A scratch directory others may enter (for the non-root clients).
fn open_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mptcp-pmd-op-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// The daemon binary where any uid can run it.
fn public_bin(dir: &Path) -> PathBuf {
    let p = dir.join("mptcp-pmd");
    std::fs::copy(daemon_bin(), &p).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn run_as(bin: &Path, privs: &[&str], args: &[&str]) -> (Option<i32>, String) {
    let o = Command::new("setpriv")
        .args(privs)
        .arg("--")
        .arg(bin)
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

/// One request on a raw connection; the reply line.
fn raw(sock: &Path, bytes: &[u8]) -> Value {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The daemon may answer and close before it read everything of a long request.
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = String::new();
    // Until the daemon closes: a clean end (it read what was sent), not a reset.
    s.read_to_string(&mut out)
        .unwrap_or_else(|e| panic!("{e} after {out:?}"));
    assert_eq!(out.matches('\n').count(), 1, "one reply line: {out:?}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out:?}"))
}

#[test]
fn control_group_reads_but_never_commands_and_bad_requests_get_replies() {
    if !kernel_tests_enabled("control_group_reads_but_never_commands_and_bad_requests_get_replies")
    {
        return;
    }
    const PORT: u16 = 5406;
    const GID: &str = "4242";
    let t = topo(PORT);
    let dir = open_dir("group");
    let sock = dir.join("ctl.sock");
    let d = Daemon::start(
        &t.client,
        &format!(
            "{NOTHING}control:\n  socket: {}\n  group: {GID}\n",
            sock.display()
        ),
    );
    d.wait_ready();
    let meta = std::fs::metadata(&sock).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), 4242);
    let _conn = t.connect_many(PORT, 1).unwrap();
    let s = sock.to_str().unwrap();
    let token = wait_for(Duration::from_secs(15), || {
        let (_, out, _) = cli(&["status", "--json", "-s", s]);
        let v: Value = serde_json::from_str(&out).ok()?;
        v["connections"][0]["token"].as_str().map(String::from)
    })
    .unwrap();
    let bin = public_bin(&dir);
    let member = ["--reuid=65534", "--regid=65534", "--groups=4242"];
    let primary = ["--reuid=65533", "--regid=4242", "--clear-groups"];
    let outsider = ["--reuid=65532", "--regid=65532", "--clear-groups"];

    for who in [&member[..], &primary[..]] {
        let (code, out) = run_as(&bin, who, &["status", "--json", "-s", s]);
        assert_eq!(code, Some(0), "{who:?}: {out}");
        assert!(out.contains(&token), "{out}");
        let (code, out) = run_as(&bin, who, &["addresses", "-s", s]);
        assert_eq!(code, Some(0), "{who:?}: {out}");
        let (code, out) = run_as(&bin, who, &["hold", &token, "-s", s]);
        assert_eq!(code, Some(77), "{who:?}: {out}");
        assert!(out.contains("only root"), "{out}");
    }
    // The group's monitor works.
    let mut m = Command::new("setpriv")
        .args(member)
        .arg("--")
        .arg(&bin)
        .args(["monitor", "--json", "-s", s])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        d.wait_log("monitor attached", Duration::from_secs(10)),
        "{}",
        d.log()
    );
    let _ = m.kill();
    let _ = m.wait();
    // The members' holds did not take effect.
    let (_, out, _) = cli(&["status", "--json", "-s", s]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["connections"][0]["held"], false,
        "a member's hold took effect"
    );

    // Outside the group: the socket's mode keeps it out ...
    let (code, out) = run_as(&bin, &outsider, &["status", "-s", s]);
    assert_eq!(code, Some(69), "{out}");
    assert!(out.contains("Permission denied"), "{out}");
    // ... and so does the daemon itself when the mode would let it in.
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (code, out) = run_as(&bin, &outsider, &["status", "-s", s]);
    assert_eq!(code, Some(77), "{out}");
    assert!(
        out.contains("uid 65532 may not use the control socket"),
        "{out}"
    );
    let logged = d.count("control request refused");
    assert!(logged >= 1, "{}", d.log());

    // Bad requests: each gets one {"ok":false,...} line with a code (issue 15 item 4).
    for (what, bytes, code) in [
        ("binary", b"\x00\x01\x02\xff\xfe\n".to_vec(), "bad_request"),
        (
            "invalid UTF-8",
            b"{\"v\":1,\"cmd\":\"st\xc3\x28tus\"}\n".to_vec(),
            "bad_request",
        ),
        ("64 KB", vec![b'a'; 64 * 1024], "too_large"),
        (
            "64 KB of JSON",
            {
                let mut v = b"{\"v\":1,\"cmd\":\"status\",\"x\":\"".to_vec();
                v.extend(std::iter::repeat_n(b'x', 64 * 1024));
                v
            },
            "too_large",
        ),
        (
            "unknown command",
            b"{\"v\":1,\"cmd\":\"reboot\"}\n".to_vec(),
            "unknown_command",
        ),
        (
            "future version",
            b"{\"v\":9,\"cmd\":\"status\"}\n".to_vec(),
            "unsupported_version",
        ),
        ("empty", b"\n".to_vec(), "bad_request"),
    ] {
        let v = raw(&sock, &bytes);
        assert_eq!(v["ok"], false, "{what}: {v}");
        assert_eq!(v["code"], code, "{what}: {v}");
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{what}: {v}"
        );
    }
    // The first protocol's bare word still works.
    let v = raw(&sock, b"status\n");
    assert_eq!(v["ok"], true);
    assert_eq!(v["v"], 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn warns_about_idle_kernel_endpoints_and_restores_the_path_manager() {
    if !kernel_tests_enabled("warns_about_idle_kernel_endpoints_and_restores_the_path_manager") {
        return;
    }
    let t = Topology::build(TopoOpts {
        client_pm: Pm::Kernel,
        ..TopoOpts::default()
    })
    .unwrap();
    // Another tool configured the in-kernel PM.
    let a1 = t.client_addr(1).to_string();
    t.client
        .run(&["ip", "mptcp", "endpoint", "add", &a1, "subflow"])
        .unwrap();
    let mut d = Daemon::start(
        &t.client,
        "policy: fullmesh\nkernel:\n  restore_path_manager_on_exit: true\n",
    );
    d.wait_ready();
    let pm = || {
        t.client
            .run(&["sysctl", "-n", "net.mptcp.path_manager"])
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(pm(), "userspace");
    assert!(
        d.wait_log(
            "do nothing while the userspace path manager is selected",
            Duration::from_secs(10)
        ),
        "{}",
        d.log()
    );
    let warning = d
        .log()
        .lines()
        .find(|l| l.contains("do nothing while"))
        .unwrap()
        .to_string();
    assert!(
        warning.contains(&a1) && warning.contains("subflow"),
        "{warning}"
    );
    assert_eq!(d.stop(Duration::from_secs(10)), Some(0), "{}", d.log());
    assert_eq!(pm(), "kernel", "restored on a clean stop:\n{}", d.log());
    assert!(d.log().contains("path manager restored"), "{}", d.log());
}
