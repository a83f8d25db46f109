//! End to end (issue 17 item 4): every client policy of the real `mptcp-pmd` honours the
//! peer's `deny_join_id0`. The server (in-kernel PM, two links) runs with
//! `net.mptcp.allow_join_initial_addr_port=0` and announces its second address (a `signal`
//! endpoint); the client (two links) runs the daemon. This server's kernel would accept a join
//! to its initial address all the same (docs: kernel facts), so what counts is what the client
//! *requested*: the daemon's own `command` lines (log level debug: every SUBFLOW_CREATE it
//! sends; written asynchronously, so the positive checks wait for them, and the negative
//! ones come after a settling time and are backed by the kernel's own view), the client
//! kernel's events and `ss`. Each test then opens a second connection with
//! the server's flag off, on the same daemon, and sees the join to the initial address made:
//! the observation can fail.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use integration::daemon::{daemon_bin, Daemon};
use integration::observe::{subflows, EventLog};
use integration::{kernel_tests_enabled, mptcp, wait_for, Pm, TopoOpts, Topology};
use mptcp_pmd_policies::{PmEvent, Token};

const PORT: u16 = 5201;
const WAIT: Duration = Duration::from_secs(15);
/// How long a policy gets to do something it must not, once it did what it must.
const SETTLE: Duration = Duration::from_millis(1500);
const RETRIES: &str = "subflow:\n  backoff_initial_ms: 200\n  backoff_max_ms: 1000\n";

/// The server announcing its second address, with `deny` = joins to its initial address
/// refused (`allow_join_initial_addr_port=0`); the client on the userspace PM.
fn topo() -> Topology {
    let t = Topology::build(TopoOpts {
        client_links: 2,
        server_links: 2,
        client_pm: Pm::Userspace,
        server_pm: Pm::Kernel,
        ..Default::default()
    })
    .expect("topology");
    t.server_signal_endpoint(1).unwrap();
    t.serve_echo(PORT).unwrap();
    t
}

fn deny(t: &Topology, deny: bool) {
    t.server
        .sysctl(
            "net.mptcp.allow_join_initial_addr_port",
            if deny { "0" } else { "1" },
        )
        .unwrap();
}

/// A connection from the client's first address to the server's initial one, pinged; its
/// token (from the client's ESTABLISHED, which must carry `deny_join_id0` = `denied`).
fn connect(t: &Topology, ev: &mut EventLog, denied: bool) -> (TcpStream, Token) {
    let (dst, src) = (SocketAddr::new(t.server_addr(0), PORT), t.client_addr(0));
    let mut s = t
        .client
        .exec(move || mptcp::connect(dst, Some(src)))
        .unwrap()
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    mptcp::ping(&mut s, b"establish").unwrap();
    let port = s.local_addr().unwrap().port();
    let est = ev.wait(
        "client ESTABLISHED",
        WAIT,
        |e| matches!(e, PmEvent::Established(i) if i.local.port() == port),
    );
    let PmEvent::Established(info) = est.event else {
        unreachable!()
    };
    assert_eq!(
        info.flags.deny_join_id0, denied,
        "the client's kernel reports the server's deny_join_id0 as {denied}: {info:?}"
    );
    (s, info.token)
}

/// Wait for the client kernel's SUB_ESTABLISHED of `token` from `local` to `remote`.
fn joined(ev: &mut EventLog, token: Token, local: IpAddr, remote: SocketAddr) {
    ev.wait(
        &format!("SUB_ESTABLISHED {local} -> {remote}"),
        WAIT,
        |e| matches!(e, PmEvent::SubEstablished(s) if s.token == token && s.local.ip() == local && s.remote == remote),
    );
}

/// The daemon's SUBFLOW_CREATE commands for `token` (its debug `command` lines), as
/// "local -> remote".
fn creates(d: &Daemon, token: Token) -> Vec<String> {
    let tok = format!("token: {token}");
    d.log()
        .lines()
        .filter(|l| l.contains("command") && l.contains("CreateSubflow") && l.contains(&tok))
        .map(|l| {
            let field = |name: &str| {
                l.split(&format!("{name}: "))
                    .nth(1)
                    .and_then(|r| r.split([',', ' ']).next())
                    .unwrap_or("?")
                    .to_string()
            };
            format!("{} -> {}", field("local"), field("remote"))
        })
        .collect()
}

/// [`creates`], once every one of `want` is among them (the log is written asynchronously:
/// a command's line can come after the kernel's event for it), or after 5 s.
fn creates_with(d: &Daemon, token: Token, want: &[String]) -> Vec<String> {
    let mut last = Vec::new();
    wait_for(Duration::from_secs(5), || {
        last = creates(d, token);
        want.iter().all(|w| last.contains(w)).then_some(())
    });
    last
}

/// Every subflow event of `token` the client kernel sent (claimed or not, from now on).
fn subflow_events(ev: &mut EventLog, token: Token) -> Vec<(IpAddr, SocketAddr, &'static str)> {
    ev.unclaimed()
        .into_iter()
        .filter_map(|e| match e {
            PmEvent::SubEstablished(s) if s.token == token => {
                Some((s.local.ip(), s.remote, "SUB_ESTABLISHED"))
            }
            PmEvent::SubClosed(s) if s.token == token => {
                Some((s.local.ip(), s.remote, "SUB_CLOSED"))
            }
            _ => None,
        })
        .collect()
}

/// `mptcp-pmd status --json`: the connection of `token`.
fn status_of(d: &Daemon, token: Token) -> serde_json::Value {
    let o = std::process::Command::new(daemon_bin())
        .args([
            "status",
            "--json",
            "-s",
            d.control_socket().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "status: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let tok = format!("{:08x}", token.0);
    v["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["token"] == tok.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("connection {tok} not in status: {v:#}"))
}

/// A mesh policy (`policy_yaml`): with the flag, the announced address is joined from both
/// client addresses and nothing is requested towards the initial one; without it, the second
/// client address joins the initial one too.
fn mesh_policy_honours_the_flag(test: &str, policy_yaml: &str) {
    if !kernel_tests_enabled(test) {
        return;
    }
    let t = topo();
    deny(&t, true);
    let mut ev = EventLog::open(&t.client, "client");
    let d = Daemon::start(&t.client, &format!("{policy_yaml}{RETRIES}"));
    d.wait_ready();
    let initial = SocketAddr::new(t.server_addr(0), PORT);
    let announced = SocketAddr::new(t.server_addr(1), PORT);
    let (c0, c1) = (t.client_addr(0), t.client_addr(1));

    let (_s, token) = connect(&t, &mut ev, true);
    joined(&mut ev, token, c0, announced);
    joined(&mut ev, token, c1, announced);
    std::thread::sleep(SETTLE);

    // What the daemon asked the kernel for.
    let want: Vec<String> = [c0, c1].map(|l| format!("{l} -> {announced}")).to_vec();
    let asked = creates_with(&d, token, &want);
    assert!(
        asked.iter().all(|c| !c.ends_with(&format!("-> {initial}"))),
        "a SUBFLOW_CREATE towards the initial address of a peer that set deny_join_id0: {asked:?}"
    );
    for w in &want {
        assert!(asked.contains(w), "no join {w} requested: {asked:?}");
    }
    // What the client's kernel did: no subflow towards the initial address came or went.
    let towards_initial: Vec<_> = subflow_events(&mut ev, token)
        .into_iter()
        .filter(|(_, r, _)| *r == initial)
        .collect();
    assert!(towards_initial.is_empty(), "{towards_initial:?}");
    let mut pairs: Vec<(IpAddr, SocketAddr)> = subflows(&t.client, PORT)
        .into_values()
        .flatten()
        .map(|s| (s.local.ip(), s.remote))
        .collect();
    pairs.sort();
    assert_eq!(
        pairs,
        [(c0, initial), (c0, announced), (c1, announced)],
        "ss: the initial subflow and the joins to the announced address only"
    );
    // What status shows: the announced address, and no subflow (pending, failed or live)
    // towards the initial address but the initial one.
    let st = status_of(&d, token);
    let peer = st["peer_announced"].to_string();
    assert!(peer.contains(&t.server_addr(1).to_string()), "{st:#}");
    let to_initial: Vec<&serde_json::Value> = st["subflows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["remote"] == initial.to_string().as_str())
        .collect();
    assert_eq!(to_initial.len(), 1, "only the initial subflow: {st:#}");
    assert_eq!(
        to_initial[0]["local"]
            .as_str()
            .unwrap()
            .parse::<SocketAddr>()
            .unwrap()
            .ip(),
        c0
    );

    // Without the flag, the same daemon joins the initial address from the second address.
    deny(&t, false);
    let (_s2, token2) = connect(&t, &mut ev, false);
    joined(&mut ev, token2, c1, initial);
    let want = format!("{c1} -> {initial}");
    let asked = creates_with(&d, token2, std::slice::from_ref(&want));
    assert!(asked.contains(&want), "{asked:?}");
}

#[test]
fn fullmesh_honours_deny_join_id0() {
    mesh_policy_honours_the_flag("fullmesh_honours_deny_join_id0", "policy: fullmesh\n");
}

#[test]
fn rtt_based_honours_deny_join_id0() {
    mesh_policy_honours_the_flag("rtt_based_honours_deny_join_id0", "policy: rtt-based\n");
}

#[test]
fn active_standby_honours_deny_join_id0() {
    mesh_policy_honours_the_flag(
        "active_standby_honours_deny_join_id0",
        "policy: active-standby\n",
    );
}

/// ndiffports' subflows all join the initial address: with the flag, none is requested;
/// without it, they are.
#[test]
fn ndiffports_opens_nothing_when_joins_to_the_initial_address_are_denied() {
    if !kernel_tests_enabled(
        "ndiffports_opens_nothing_when_joins_to_the_initial_address_are_denied",
    ) {
        return;
    }
    let t = topo();
    deny(&t, true);
    let mut ev = EventLog::open(&t.client, "client");
    let d = Daemon::start(
        &t.client,
        &format!("policy: ndiffports\nndiffports:\n  subflows: 3\n{RETRIES}"),
    );
    d.wait_ready();
    let initial = SocketAddr::new(t.server_addr(0), PORT);
    let (_s, token) = connect(&t, &mut ev, true);
    // The server's announcement reaches the client: the daemon has seen everything it needs.
    ev.wait(
        "client ANNOUNCED",
        WAIT,
        |e| matches!(e, PmEvent::Announced { token: tk, .. } if *tk == token),
    );
    std::thread::sleep(SETTLE);
    assert_eq!(creates(&d, token), Vec::<String>::new());
    assert_eq!(subflow_events(&mut ev, token), vec![]);
    let st = status_of(&d, token);
    assert_eq!(st["subflows"].as_array().unwrap().len(), 1, "{st:#}");

    deny(&t, false);
    let (_s2, token2) = connect(&t, &mut ev, false);
    let c0 = t.client_addr(0);
    joined(&mut ev, token2, c0, initial);
    joined(&mut ev, token2, c0, initial);
    let want = vec![format!("{c0} -> {initial}"); 2];
    let mut asked = Vec::new();
    wait_for(Duration::from_secs(5), || {
        asked = creates(&d, token2);
        (asked == want).then_some(())
    });
    assert_eq!(
        asked, want,
        "without the flag ndiffports joins the initial address twice more"
    );
}
