//! End to end: the real `mptcp-pmd`'s metrics endpoint. Its gauges are kept current by the
//! connection actors as states change (no snapshot per scrape), so after a churn of
//! connections opening and closing, subflows closing with a link and joins the server resets,
//! they must equal a full recount of `mptcp-pmd status --json`; and once every connection is
//! gone they must all read 0. Also what the endpoint answers to malformed requests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use integration::daemon::{daemon_bin, Daemon};
use integration::observe::subflows;
use integration::{kernel_tests_enabled, mptcp, wait_for, Pm, TopoOpts, Topology};

const PORT: u16 = 5302;
const METRICS_PORT: u16 = 9464;

/// The subflow and announcement states, as `status` and the gauges name them.
const SUBFLOW_STATES: [&str; 5] = ["pending", "requested", "established", "closed", "failed"];
const ANNOUNCE_STATES: [&str; 5] = ["sent", "unjoined", "joined", "withdrawn", "refused"];

/// The gauges: `connections`, `subflows/<state>`, `announced/<state>` -> value.
type Gauges = BTreeMap<String, i64>;

fn topo() -> Topology {
    let t = Topology::build(TopoOpts {
        client_links: 2,
        server_links: 1,
        client_pm: Pm::Userspace,
        server_pm: Pm::Kernel,
        ..Default::default()
    })
    .expect("topology");
    let addr = SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), PORT);
    let l = t.server.exec(move || mptcp::listen(addr)).unwrap().unwrap();
    t.server.exec_bg(move || mptcp::echo_server(l)).unwrap();
    t
}

fn connect(t: &Topology, n: usize) -> Vec<TcpStream> {
    t.connect_many(PORT, n).expect("connect")
}

/// The gauges as `/metrics` shows them.
fn scraped(t: &Topology) -> Gauges {
    let body = integration::metrics::scrape(&t.client, METRICS_PORT);
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    let m = integration::metrics::samples(&body);
    let get = |k: String| m.get(&k).copied().unwrap_or(-1.0) as i64;
    let mut g = Gauges::new();
    g.insert("connections".into(), get("mptcp_pmd_connections".into()));
    for s in SUBFLOW_STATES {
        g.insert(
            format!("subflows/{s}"),
            get(format!("mptcp_pmd_subflows{{state=\"{s}\"}}")),
        );
    }
    for s in ANNOUNCE_STATES {
        g.insert(
            format!("announced/{s}"),
            get(format!("mptcp_pmd_announced_addresses{{state=\"{s}\"}}")),
        );
    }
    g
}

/// The same counts, recounted from `mptcp-pmd status --json`.
fn recounted(d: &Daemon) -> Gauges {
    let o = std::process::Command::new(daemon_bin())
        .args(["status", "--json", "-s"])
        .arg(d.control_socket())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let conns = v["connections"].as_array().unwrap();
    let mut g = Gauges::new();
    g.insert("connections".into(), conns.len() as i64);
    for s in SUBFLOW_STATES {
        g.insert(format!("subflows/{s}"), 0);
    }
    for s in ANNOUNCE_STATES {
        g.insert(format!("announced/{s}"), 0);
    }
    for c in conns {
        for f in c["subflows"].as_array().unwrap() {
            *g.entry(format!("subflows/{}", f["state"].as_str().unwrap()))
                .or_default() += 1;
        }
        for a in c["announced"].as_array().unwrap() {
            *g.entry(format!("announced/{}", a["state"].as_str().unwrap()))
                .or_default() += 1;
        }
    }
    g
}

/// Wait for a moment when nothing changes across a scrape, a status and a scrape, and return
/// (scraped, recounted); on timeout the last pair, which the caller's assertion shows.
fn settled(t: &Topology, d: &Daemon) -> (Gauges, Gauges) {
    let mut last = (Gauges::new(), Gauges::new());
    wait_for(Duration::from_secs(20), || {
        let before = scraped(t);
        let status = recounted(d);
        let after = scraped(t);
        let done = before == after && after == status;
        last = (after, status);
        done.then_some(())
    });
    last
}

/// In the server namespace: reset (RST) every join SYN from `from`, or stop doing so.
fn reset_joins_from(t: &Topology, from: IpAddr, on: bool) {
    if on {
        t.server
            .run(&["nft", "add", "table", "inet", "pmdtest"])
            .unwrap();
        t.server
            .run(&[
                "nft", "add", "chain", "inet", "pmdtest", "input", "{", "type", "filter", "hook",
                "input", "priority", "0", ";", "}",
            ])
            .unwrap();
        let from = from.to_string();
        t.server
            .run(&[
                "nft",
                "add",
                "rule",
                "inet",
                "pmdtest",
                "input",
                "ip",
                "saddr",
                &from,
                "tcp",
                "flags",
                "&",
                "(syn|ack)",
                "==",
                "syn",
                "reject",
                "with",
                "tcp",
                "reset",
            ])
            .unwrap();
    } else {
        t.server
            .run(&["nft", "delete", "table", "inet", "pmdtest"])
            .unwrap();
    }
}

/// Every connection towards PORT has subflows from exactly the addresses in `want`.
fn meshed(t: &Topology, conns: usize, want: &[IpAddr]) -> bool {
    let m = subflows(&t.client, PORT);
    m.len() == conns
        && m.values().all(|v| {
            let mut locals: Vec<IpAddr> = v.iter().map(|s| s.local.ip()).collect();
            locals.sort();
            locals.dedup();
            locals.len() == v.len()
                && locals.iter().all(|a| want.contains(a))
                && locals.len() == want.len()
        })
}

/// The raw answer to `request` on the metrics endpoint.
fn http(t: &Topology, request: &'static [u8]) -> String {
    t.client
        .exec(move || {
            let mut s = TcpStream::connect(("127.0.0.1", METRICS_PORT)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(request).unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        })
        .unwrap()
}

#[test]
fn gauges_equal_a_recount_after_churn_and_zero_when_all_closed() {
    if !kernel_tests_enabled("gauges_equal_a_recount_after_churn_and_zero_when_all_closed") {
        return;
    }
    let t = topo();
    let d = Daemon::start(
        &t.client,
        &format!(
            "policy: fullmesh\nsubflow:\n  backoff_initial_ms: 200\n  backoff_max_ms: 1000\nmetrics:\n  listen: 127.0.0.1:{METRICS_PORT}\n"
        ),
    );
    d.wait_ready();
    let (c0, c1) = (t.client_addr(0), t.client_addr(1));
    let both = [c0, c1];

    // 8 connections, meshed over both client addresses.
    let mut a = connect(&t, 8);
    assert!(
        wait_for(Duration::from_secs(15), || meshed(&t, 8, &both)
            .then_some(()))
        .is_some(),
        "not meshed: {:#?}\n{}",
        subflows(&t.client, PORT),
        d.log()
    );
    // The server resets joins from the second address; that link goes down (its subflows
    // close) and up again (the new joins are reset: failed, retried after a backoff).
    reset_joins_from(&t, c1, true);
    t.set_link(1, false).unwrap();
    assert!(
        wait_for(Duration::from_secs(15), || meshed(&t, 8, &[c0])
            .then_some(()))
        .is_some(),
        "subflows on the dead link stayed: {:#?}\n{}",
        subflows(&t.client, PORT),
        d.log()
    );
    t.set_link(1, true).unwrap();
    // 8 more, whose joins are reset; 8 of the 16 close meanwhile.
    let mut b = connect(&t, 8);
    a.truncate(3);
    b.truncate(5);
    std::thread::sleep(Duration::from_secs(3));
    // Joins work again: 4 more connections mesh; 2 more close.
    reset_joins_from(&t, c1, false);
    let c = connect(&t, 4);
    a.truncate(1);
    assert!(
        wait_for(Duration::from_secs(15), || {
            (subflows(&t.client, PORT).len() == 10).then_some(())
        })
        .is_some(),
        "{:#?}",
        subflows(&t.client, PORT)
    );

    let (shown, recount) = settled(&t, &d);
    assert_eq!(
        shown,
        recount,
        "/metrics gauges vs status recount\n{}",
        d.log()
    );
    assert_eq!(recount["connections"], 10, "{recount:?}");
    // The churn did what it is for: subflows closed with the link and joins failed.
    assert!(recount["subflows/closed"] > 0, "{recount:?}");
    assert!(recount["subflows/failed"] > 0, "{recount:?}\n{}", d.log());
    assert!(recount["subflows/established"] >= 10, "{recount:?}");

    // Malformed requests get 400, a well-formed one of another path 404, another method 405.
    for (request, status) in [
        (&b"\r\n\r\n"[..], "400"),
        (b"garbage\r\n", "400"),
        (b"GET /metrics\r\n\r\n", "400"),
        (b"GET /metrics HTTP/1.1\r\nno colon\r\n\r\n", "400"),
        (b"GET / HTTP/1.1\r\n\r\n", "404"),
        (b"DELETE /metrics HTTP/1.1\r\n\r\n", "405"),
    ] {
        let answer = http(&t, request);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{:?}: {answer}",
            String::from_utf8_lossy(request)
        );
    }

    // Every connection closes: every gauge returns to 0 (the actors withdrew their counts).
    drop((a, b, c));
    let zero = wait_for(Duration::from_secs(20), || {
        let g = scraped(&t);
        g.values().all(|v| *v == 0).then_some(g)
    });
    assert!(
        zero.is_some(),
        "gauges after every connection closed: {:?}\nstatus: {:?}\n{}",
        scraped(&t),
        recounted(&d),
        d.log()
    );
    let body = integration::metrics::scrape(&t.client, METRICS_PORT);
    assert!(
        body.lines().any(|l| l == "mptcp_pmd_policy_objects 0"),
        "{body}"
    );
    assert_eq!(recounted(&d)["connections"], 0);
}
