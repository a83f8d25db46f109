//! Experiments (exploratory, ignored): what probing a dead path costs on this kernel.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use integration::nft::PathCut;
use integration::observe::{mib, EventLog};
use integration::{mptcp, Pm, Tbf, TopoOpts, Topology};
use mptcp_pmd_policies::{PmCommand, PmEvent, SubflowKey, Token};
use netlink_actor::genl::PmClient;
use netlink_actor::sock_diag::DiagSocket;
use netlink_actor::Error as GenlError;

const LINK: Tbf = Tbf {
    rate_kbit: 20_000,
    burst_bytes: 64 * 1024,
    latency_ms: 20,
};

fn syn_sent(diag: &mut DiagSocket, local: IpAddr) -> Vec<(SubflowKey, netlink_actor::sock_diag::SubflowDiag)> {
    diag.subflows()
        .unwrap()
        .items
        .into_iter()
        .filter(|s| s.state == 2 && s.key.local.ip() == local)
        .map(|s| (s.key, s))
        .collect()
}

#[test]
#[ignore]
fn experiment_destroy_cost() {
    let t = Topology::build(TopoOpts {
        client_links: 2,
        server_links: 2,
        client_pm: Pm::Userspace,
        server_pm: Pm::Kernel,
        shaping: vec![Some(LINK); 2],
    })
    .unwrap();
    t.steer_client_link(0, 0).unwrap();
    t.steer_client_link(1, 1).unwrap();
    let mut cut = PathCut::install(&t.router).unwrap();
    let mut ev = EventLog::open(&t.client, "client");
    let mut cpm = t.client.exec(PmClient::open).unwrap().unwrap();
    let mut diag = t.client.exec(DiagSocket::open).unwrap().unwrap();
    let srv = SocketAddr::new(t.server_addr(0), 5300);
    let any = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 5300);
    let l = t.server.exec(move || mptcp::listen(any)).unwrap().unwrap();
    let read = Arc::new(Mutex::new(0u64));
    let r2 = read.clone();
    t.server
        .exec_bg(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = vec![0u8; 256 * 1024];
            while let Ok(n) = std::io::Read::read(&mut s, &mut buf) {
                if n == 0 {
                    break;
                }
                *r2.lock().unwrap() += n as u64;
            }
        })
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    let (p0, p1) = (t.client_addr(0), t.client_addr(1));
    let _client = t
        .client
        .exec_bg(move || {
            let mut s = mptcp::connect(srv, Some(p0)).unwrap();
            let buf = vec![0x5au8; 64 * 1024];
            while !st.load(Ordering::Relaxed) {
                let _ = s.write(&buf);
            }
        })
        .unwrap();
    let est = ev.wait("ESTABLISHED", Duration::from_secs(5), |e| {
        matches!(e, PmEvent::Established(_))
    });
    let PmEvent::Established(c) = est.event else {
        unreachable!()
    };
    let token: Token = c.token;
    cpm.execute(&PmCommand::CreateSubflow {
        token,
        local: p1,
        local_id: 1,
        if_index: None,
        remote: srv,
        backup: false,
    })
    .unwrap();
    ev.wait("SUB_ESTABLISHED", Duration::from_secs(5), |e| {
        matches!(e, PmEvent::SubEstablished(s) if s.local.ip() == p1)
    });
    std::thread::sleep(Duration::from_secs(1));
    cut.cut("rc0").unwrap();
    let initial = SubflowKey {
        local: c.local,
        remote: c.remote,
    };
    std::thread::sleep(Duration::from_millis(150));
    cpm.execute(&PmCommand::DestroySubflow { token, key: initial })
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let dup = || mib(&t.server, "MPTcpExt", "DuplicateData").unwrap_or(0);
    let rtx = || mib(&t.client, "MPTcpExt", "RetransSegs").unwrap_or(0);
    let mut id = 2u8;
    let mut window = |what: &str, cpm: &mut PmClient, diag: &mut DiagSocket, n: usize, how: &str| {
        // n probes on the dead primary path.
        let mut refused = 0;
        for _ in 0..n {
            match cpm.execute(&PmCommand::CreateSubflow {
                token,
                local: p0,
                local_id: 10,
                if_index: None,
                remote: srv,
                backup: true,
            }) {
                Ok(()) => {}
                Err(GenlError::Kernel { errno, message, .. }) => {
                    refused += 1;
                    eprintln!("create refused {errno} {message:?}");
                }
                Err(e) => panic!("{e}"),
            }
        }
        id += 1;
        std::thread::sleep(Duration::from_millis(300));
        let probes = syn_sent(diag, p0);
        let (d0, r0, b0, t0) = (dup(), rtx(), *read.lock().unwrap(), Instant::now());
        match how {
            "spread" => {
                for (k, _) in &probes {
                    cpm.execute(&PmCommand::DestroySubflow { token, key: *k }).unwrap();
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
            "batch" => {
                for (k, _) in &probes {
                    cpm.execute(&PmCommand::DestroySubflow { token, key: *k }).unwrap();
                }
            }
            _ => {}
        }
        let left = Duration::from_secs(3).saturating_sub(t0.elapsed());
        std::thread::sleep(left);
        if how == "none" {
            for (k, _) in &probes {
                cpm.execute(&PmCommand::DestroySubflow { token, key: *k }).unwrap();
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        let secs = t0.elapsed().as_secs_f64();
        let b = *read.lock().unwrap() - b0;
        eprintln!(
            "{what}: {n} probes ({} SYN_SENT, {refused} refused), destroy {how}: dup {} segs, client rtx {} segs, goodput {:.1} Mbit/s over {secs:.1} s",
            probes.len(),
            dup() - d0,
            rtx() - r0,
            b as f64 * 8.0 / secs / 1e6
        );
    };
    window("base", &mut cpm, &mut diag, 0, "none");
    window("none", &mut cpm, &mut diag, 5, "none-keep");
    window("spread", &mut cpm, &mut diag, 5, "spread");
    window("batch", &mut cpm, &mut diag, 5, "batch");
    window("spread", &mut cpm, &mut diag, 5, "spread");
    window("batch", &mut cpm, &mut diag, 5, "batch");
    window("one", &mut cpm, &mut diag, 1, "batch");
    window("batch12", &mut cpm, &mut diag, 12, "batch");
    window("base", &mut cpm, &mut diag, 0, "none");
    stop.store(true, Ordering::Relaxed);
}

#[test]
#[ignore]
fn experiment_syn_schedule() {
    let t = Topology::build(TopoOpts {
        client_links: 2,
        server_links: 1,
        client_pm: Pm::Userspace,
        server_pm: Pm::Kernel,
        ..Default::default()
    })
    .unwrap();
    let mut cut = PathCut::install(&t.router).unwrap();
    let mut ev = EventLog::open(&t.client, "client");
    let mut cpm = t.client.exec(PmClient::open).unwrap().unwrap();
    let mut diag = t.client.exec(DiagSocket::open).unwrap().unwrap();
    let srv = SocketAddr::new(t.server_addr(0), 5301);
    t.serve_echo(5301).unwrap();
    let (p0, p1) = (t.client_addr(0), t.client_addr(1));
    let mut s = t.client.exec(move || mptcp::connect(srv, Some(p0))).unwrap().unwrap();
    mptcp::ping(&mut s, b"hi").unwrap();
    let est = ev.wait("ESTABLISHED", Duration::from_secs(5), |e| {
        matches!(e, PmEvent::Established(_))
    });
    let PmEvent::Established(c) = est.event else {
        unreachable!()
    };
    cut.cut("rc1").unwrap();
    let before = Instant::now();
    cpm.execute(&PmCommand::CreateSubflow {
        token: c.token,
        local: p1,
        local_id: 1,
        if_index: None,
        remote: srv,
        backup: true,
    })
    .unwrap();
    eprintln!("create took {:?}", before.elapsed());
    let t0 = Instant::now();
    let mut last = None;
    let mut lastall = String::new();
    for _ in 0..5 {
        let a = Instant::now();
        let n = diag.subflows().unwrap().items.len();
        let b = a.elapsed();
        let c = Instant::now();
        let m = diag.mptcp_connections().unwrap().items.len();
        eprintln!("{:6.0} ms: subflow dump {n} in {b:?}, mptcp dump {m} in {:?}", t0.elapsed().as_secs_f64() * 1e3, c.elapsed());
    }
    while t0.elapsed() < Duration::from_millis(1500) {
        let all: Vec<_> = diag.subflows().unwrap().items.into_iter().filter(|s| s.key.local.ip() == p1).map(|s| (s.key.local.port(), s.state, s.token, s.flags.0)).collect();
        let raw = t.client.run(&["ss", "-tinHO", "state", "syn-sent"]).unwrap_or_default();
        let txt = format!("{all:?} ss={raw}");
        if txt != lastall {
            eprintln!("{:6.0} ms {txt}", t0.elapsed().as_secs_f64() * 1e3);
            lastall = txt;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    while t0.elapsed() < Duration::from_secs(6) {
        let p = syn_sent(&mut diag, p1);
        let v = p.first().map(|(_, d)| (d.sample.retransmits, d.sample.backoff, d.sample.rto_us, d.sample.total_retrans, d.sample.segs_out, d.flags.0));
        if v != last {
            eprintln!("{:6.0} ms {:?}", t0.elapsed().as_secs_f64() * 1e3, v);
            last = v;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
#[ignore]
fn experiment_set_flags_after_join() {
    let t = Topology::build(TopoOpts {
        client_links: 2,
        server_links: 1,
        client_pm: Pm::Userspace,
        server_pm: Pm::Kernel,
        ..Default::default()
    })
    .unwrap();
    let srv = SocketAddr::new(t.server_addr(0), 5302);
    t.serve_echo(5302).unwrap();
    let (p0, p1) = (t.client_addr(0), t.client_addr(1));
    let results: Arc<Mutex<Vec<String>>> = Arc::default();
    let r2 = results.clone();
    let react_pm = Mutex::new(t.client.exec(PmClient::open).unwrap().unwrap());
    let react_diag = Mutex::new(t.client.exec(DiagSocket::open).unwrap().unwrap());
    let mut ev = EventLog::open_reacting(&t.client, "client", move |s| {
        if let PmEvent::SubEstablished(sub) = &s.event {
            let mut pm = react_pm.lock().unwrap();
            let mut d = react_diag.lock().unwrap();
            let fe = |d: &mut DiagSocket| {
                d.subflows()
                    .unwrap()
                    .items
                    .iter()
                    .find(|x| x.key == sub.key())
                    .map(|x| (x.sample.fully_established, x.flags.0))
            };
            let r = pm.execute(&PmCommand::SetBackup {
                token: sub.token,
                key: sub.key(),
                backup: false,
            });
            let took = s.at.elapsed();
            let after = fe(&mut d);
            let r2b = pm.execute(&PmCommand::SetBackup {
                token: sub.token,
                key: sub.key(),
                backup: false,
            });
            r2.lock().unwrap().push(format!(
                "{took:?} after event: {r:?} (fully established after: {after:?}; again: {r2b:?})"
            ));
        }
    });
    let mut cpm = t.client.exec(PmClient::open).unwrap().unwrap();
    let mut diag = t.client.exec(DiagSocket::open).unwrap().unwrap();
    let mut s = t.client.exec(move || mptcp::connect(srv, Some(p0))).unwrap().unwrap();
    mptcp::ping(&mut s, b"hi").unwrap();
    let est = ev.wait("ESTABLISHED", Duration::from_secs(5), |e| {
        matches!(e, PmEvent::Established(_))
    });
    let PmEvent::Established(c) = est.event else {
        unreachable!()
    };
    let hold_fourth = std::env::var_os("HOLD4").is_some();
    if hold_fourth {
        // Drop what the server sends to the client's second address without SYN: the join's
        // SYN-ACK passes, its fourth ACK does not.
        t.router.run(&["nft", "add", "table", "inet", "h4"]).unwrap();
        t.router.run(&["nft", "add chain inet h4 f { type filter hook forward priority 0; policy accept; }"]).unwrap();
        t.router.run(&["nft", &format!("add rule inet h4 f ip daddr {p1} tcp flags & syn == 0 counter drop")]).unwrap();
    }
    for id in [1u8, 1, 1] {
        cpm.execute(&PmCommand::CreateSubflow {
            token: c.token,
            local: p1,
            local_id: id,
            if_index: None,
            remote: srv,
            backup: true,
        })
        .unwrap();
        let e = ev.wait("SUB_ESTABLISHED", Duration::from_secs(5), |e| {
            matches!(e, PmEvent::SubEstablished(x) if x.local.ip() == p1)
        });
        let mut t0 = Instant::now();
        let PmEvent::SubEstablished(sub) = e.event else {
            unreachable!()
        };
        let mut hold_fourth_done = false;
        loop {
            let hold_fourth = hold_fourth && !hold_fourth_done;
            let f = diag
                .subflows()
                .unwrap()
                .items
                .iter()
                .find(|x| x.key == sub.key())
                .map(|x| (x.sample.fully_established, x.flags.0, x.sample.backup));
            if hold_fourth && t0.elapsed() > Duration::from_millis(500) {
                let r = cpm.execute(&PmCommand::SetBackup {
                    token: c.token,
                    key: sub.key(),
                    backup: true,
                });
                eprintln!("held 4th ack, {f:?}: SET_FLAGS {r:?}");
                t.router.run(&["nft", "flush chain inet h4 f"]).unwrap();
                t0 = Instant::now();
                hold_fourth_done = true;
            }
            if f.is_some_and(|f| f.0) || t0.elapsed() > Duration::from_secs(3) {
                eprintln!("fully established after {:?}: {f:?}", t0.elapsed());
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let r = cpm.execute(&PmCommand::SetBackup {
            token: c.token,
            key: sub.key(),
            backup: true,
        });
        eprintln!("later SET_FLAGS: {r:?}; event backup field {}", sub.backup);
    }
    for r in results.lock().unwrap().iter() {
        eprintln!("{r}");
    }
}

/// Healthy bulk uploads from a cold start over a 20 Mbit/s tbf link: the client's subflow
/// sampled with sock_diag as fast as it goes, written to $SERIES_OUT (one file per run).
#[test]
#[ignore]
fn experiment_healthy_series() {
    let out = std::env::var("SERIES_OUT").unwrap_or_else(|_| "/tmp/series".into());
    let runs: usize = std::env::var("SERIES_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    std::fs::create_dir_all(&out).unwrap();
    let t = Topology::build(TopoOpts {
        client_links: 1,
        server_links: 1,
        client_pm: Pm::Kernel,
        server_pm: Pm::Kernel,
        shaping: vec![Some(LINK)],
    })
    .unwrap();
    let srv = SocketAddr::new(t.server_addr(0), 5303);
    let any = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 5303);
    let l = t.server.exec(move || mptcp::listen(any)).unwrap().unwrap();
    t.server
        .exec_bg(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { break };
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 256 * 1024];
                    while let Ok(n) = std::io::Read::read(&mut s, &mut buf) {
                        if n == 0 {
                            break;
                        }
                    }
                });
            }
        })
        .unwrap();
    let p0 = t.client_addr(0);
    for run in 0..runs {
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let sampler = t
            .client
            .exec_bg(move || {
                let mut d = DiagSocket::open().unwrap();
                let t0 = Instant::now();
                let mut v = String::new();
                while !st.load(Ordering::Relaxed) {
                    if let Ok(subs) = d.subflows() {
                        let at = t0.elapsed().as_secs_f64() * 1e3;
                        for s in subs.items.iter().filter(|s| s.key.remote.port() == 5303) {
                            let x = &s.sample;
                            v.push_str(&format!(
                                "{at:.1} state={} unacked={} bytes_acked={} last_ack_recv_ms={} last_data_sent_ms={} srtt_us={} rttvar_us={} rto_us={} retransmits={} probes={} backoff={} lost={} total_retrans={}\n",
                                s.state, x.unacked, x.bytes_acked, x.last_ack_recv_ms, x.last_data_sent_ms, x.srtt_us, x.rttvar_us, x.rto_us, x.retransmits, x.probes, x.backoff, x.lost, x.total_retrans
                            ));
                        }
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                v
            })
            .unwrap();
        let mut s = t.client.exec(move || mptcp::connect(srv, Some(p0))).unwrap().unwrap();
        let buf = vec![0x5au8; 64 * 1024];
        let t0 = Instant::now();
        s.set_write_timeout(Some(Duration::from_millis(200))).unwrap();
        while t0.elapsed() < Duration::from_secs(3) {
            let _ = s.write(&buf);
        }
        drop(s);
        stop.store(true, Ordering::Relaxed);
        let v = sampler.join().unwrap();
        std::fs::write(format!("{out}/run{run}.txt"), v).unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
}
