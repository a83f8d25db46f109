//! A client / router / server topology in three namespaces:
//!
//! ```text
//!  client c0 198.18.0.2 ---- 198.18.0.1 rc0 \
//!         c1 198.18.1.2 ---- 198.18.1.1 rc1  router  rs0 198.19.0.1 ---- 198.19.0.2 s0 server
//!         ..                                 /        rs1 198.19.1.1 ---- 198.19.1.2 s1
//! ```
//! (IPv6 too: `2001:db8:<i>::2` on client links, `2001:db8:1<j>::2` on server links.)
//! The client and the server route by source address (one table per link), so a subflow leaves
//! through the link of its source address. Addresses come from the benchmarking (198.18/15) and
//! documentation (2001:db8::/32) ranges and exist only inside these namespaces.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::netns::{HarnessError, Netns};

/// Which path manager a namespace uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pm {
    /// The in-kernel path manager.
    #[default]
    Kernel,
    /// The userspace path manager (`net.mptcp.path_manager=userspace`).
    Userspace,
}

/// Token bucket shaping of one link (`tc qdisc ... tbf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tbf {
    /// Rate in kbit/s.
    pub rate_kbit: u32,
    /// Bucket size in bytes.
    pub burst_bytes: u32,
    /// Maximum queueing latency in ms (queue length).
    pub latency_ms: u32,
}

impl Tbf {
    /// The hybrid-access link of issue 17's scenario: 20 Mbit/s, a 64 KiB bucket, 20 ms of
    /// queue. Used by the bench's hybrid section, `kernel_probe` and `daemon_active_standby`.
    pub const HYBRID: Tbf = Tbf {
        rate_kbit: 20_000,
        burst_bytes: 64 * 1024,
        latency_ms: 20,
    };
}

/// Options of a [`Topology`].
#[derive(Debug, Clone)]
pub struct TopoOpts {
    /// Client links (1..=4).
    pub client_links: usize,
    /// Server links (1..=2).
    pub server_links: usize,
    /// Path manager of the client namespace.
    pub client_pm: Pm,
    /// Path manager of the server namespace.
    pub server_pm: Pm,
    /// Optional shaping per client link (index = link).
    pub shaping: Vec<Option<Tbf>>,
}

impl Default for TopoOpts {
    fn default() -> Self {
        TopoOpts {
            client_links: 2,
            server_links: 1,
            client_pm: Pm::Userspace,
            server_pm: Pm::Kernel,
            shaping: Vec::new(),
        }
    }
}

/// Three namespaces wired as described in the module docs; torn down on drop.
#[derive(Debug)]
pub struct Topology {
    /// The multihomed client.
    pub client: Netns,
    /// The router between them.
    pub router: Netns,
    /// The server.
    pub server: Netns,
    opts: TopoOpts,
}

/// Client IPv4 address of link `i`.
pub fn client_v4(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, i as u8, 2)
}
/// Client IPv6 address of link `i`.
pub fn client_v6(i: usize) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, i as u16, 0, 0, 0, 0, 2)
}
/// Server IPv4 address of link `j`.
pub fn server_v4(j: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 19, j as u8, 2)
}
/// Server IPv6 address of link `j`.
pub fn server_v6(j: usize) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0x10 + j as u16, 0, 0, 0, 0, 2)
}

/// The router's addresses on client link `i` (the client's gateways there).
fn client_gw(i: usize) -> (Ipv4Addr, Ipv6Addr) {
    (
        Ipv4Addr::new(198, 18, i as u8, 1),
        Ipv6Addr::new(0x2001, 0xdb8, i as u16, 0, 0, 0, 0, 1),
    )
}
/// The router's addresses on server link `j` (the server's gateways there).
fn server_gw(j: usize) -> (Ipv4Addr, Ipv6Addr) {
    (
        Ipv4Addr::new(198, 19, j as u8, 1),
        Ipv6Addr::new(0x2001, 0xdb8, 0x10 + j as u16, 0, 0, 0, 0, 1),
    )
}

impl Topology {
    /// Build the topology.
    pub fn build(opts: TopoOpts) -> Result<Topology, HarnessError> {
        let client = Netns::new("cli")?;
        let router = Netns::new("rtr")?;
        let server = Netns::new("srv")?;
        let t = Topology {
            client,
            router,
            server,
            opts,
        };
        t.wire()?;
        Ok(t)
    }

    fn wire(&self) -> Result<(), HarnessError> {
        let (c, r, s) = (&self.client, &self.router, &self.server);
        for ns in [c, r, s] {
            for k in [
                "net.ipv4.conf.all.rp_filter",
                "net.ipv4.conf.default.rp_filter",
            ] {
                ns.sysctl(k, "0")?;
            }
            ns.sysctl("net.ipv6.conf.all.accept_dad", "0")?;
            ns.sysctl("net.ipv6.conf.default.accept_dad", "0")?;
            ns.sysctl("net.mptcp.enabled", "1")?;
        }
        r.sysctl("net.ipv4.ip_forward", "1")?;
        r.sysctl("net.ipv6.conf.all.forwarding", "1")?;
        for i in 0..self.opts.client_links {
            let (end_if, router_if) = (self.client_if(i), format!("rc{i}"));
            let end = (client_v4(i), client_v6(i));
            self.link(c, &end_if, &router_if, i, end, client_gw(i))?;
        }
        for j in 0..self.opts.server_links {
            let (end_if, router_if) = (self.server_if(j), format!("rs{j}"));
            let end = (server_v4(j), server_v6(j));
            self.link(s, &end_if, &router_if, j, end, server_gw(j))?;
        }
        for (ns, pm) in [(c, self.opts.client_pm), (s, self.opts.server_pm)] {
            let v = match pm {
                Pm::Kernel => "kernel",
                Pm::Userspace => "userspace",
            };
            ns.sysctl("net.mptcp.path_manager", v)?;
            ns.run(&[
                "ip",
                "mptcp",
                "limits",
                "set",
                "subflows",
                "8",
                "add_addr_accepted",
                "8",
            ])?;
        }
        for (i, shape) in self.opts.shaping.iter().enumerate() {
            if let Some(tbf) = shape {
                self.shape(i, *tbf)?;
            }
        }
        Ok(())
    }

    /// Link `i` of `end` (the client or the server): a veth pair `end_if` -- `router_if`, the
    /// end's addresses and the router's (its gateways) on it, the end's routes by source.
    fn link(
        &self,
        end: &Netns,
        end_if: &str,
        router_if: &str,
        i: usize,
        (v4, v6): (Ipv4Addr, Ipv6Addr),
        (gw4, gw6): (Ipv4Addr, Ipv6Addr),
    ) -> Result<(), HarnessError> {
        let r = &self.router;
        self.veth(end, end_if, r, router_if)?;
        for (ns, dev, a4, a6) in [(end, end_if, v4, v6), (r, router_if, gw4, gw6)] {
            ns.run(&["ip", "addr", "add", &format!("{a4}/24"), "dev", dev])?;
            ns.run(&[
                "ip",
                "-6",
                "addr",
                "add",
                &format!("{a6}/64"),
                "dev",
                dev,
                "nodad",
            ])?;
        }
        self.source_route(
            end,
            i,
            &v4.to_string(),
            &gw4.to_string(),
            &v6.to_string(),
            &gw6.to_string(),
            end_if,
        )
    }

    fn veth(&self, a: &Netns, a_if: &str, b: &Netns, b_if: &str) -> Result<(), HarnessError> {
        a.run(&[
            "ip",
            "link",
            "add",
            a_if,
            "type",
            "veth",
            "peer",
            "name",
            b_if,
            "netns",
            b.name(),
        ])?;
        a.run(&["ip", "link", "set", a_if, "up"])?;
        b.run(&["ip", "link", "set", b_if, "up"])?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn source_route(
        &self,
        ns: &Netns,
        i: usize,
        v4: &str,
        gw4: &str,
        v6: &str,
        gw6: &str,
        dev: &str,
    ) -> Result<(), HarnessError> {
        let table = (100 + i).to_string();
        ns.run(&["ip", "rule", "add", "from", v4, "table", &table])?;
        ns.run(&[
            "ip", "route", "add", "default", "via", gw4, "dev", dev, "table", &table,
        ])?;
        ns.run(&["ip", "-6", "rule", "add", "from", v6, "table", &table])?;
        ns.run(&[
            "ip", "-6", "route", "add", "default", "via", gw6, "dev", dev, "table", &table,
        ])?;
        if i == 0 {
            ns.run(&["ip", "route", "add", "default", "via", gw4, "dev", dev])?;
            ns.run(&[
                "ip", "-6", "route", "add", "default", "via", gw6, "dev", dev,
            ])?;
        }
        Ok(())
    }

    /// The options this topology was built with.
    pub fn opts(&self) -> &TopoOpts {
        &self.opts
    }
    /// Client IPv4 address of link `i`.
    pub fn client_addr(&self, i: usize) -> IpAddr {
        IpAddr::V4(client_v4(i))
    }
    /// Client IPv6 address of link `i`.
    pub fn client_addr6(&self, i: usize) -> IpAddr {
        IpAddr::V6(client_v6(i))
    }
    /// Server IPv4 address of link `j`.
    pub fn server_addr(&self, j: usize) -> IpAddr {
        IpAddr::V4(server_v4(j))
    }
    /// Server IPv6 address of link `j`.
    pub fn server_addr6(&self, j: usize) -> IpAddr {
        IpAddr::V6(server_v6(j))
    }
    /// Client interface name of link `i`.
    pub fn client_if(&self, i: usize) -> String {
        format!("c{i}")
    }

    /// Shape client link `i` in both directions with tbf.
    pub fn shape(&self, i: usize, tbf: Tbf) -> Result<(), HarnessError> {
        self.tbf(&self.client, &self.client_if(i), &format!("rc{i}"), tbf)
    }

    /// Shape server link `j` in both directions with tbf (the server's end and the router's).
    pub fn shape_server(&self, j: usize, tbf: Tbf) -> Result<(), HarnessError> {
        self.tbf(&self.server, &self.server_if(j), &format!("rs{j}"), tbf)
    }

    /// tbf on both ends of a link: `end_if` in `end` and `router_if` in the router.
    fn tbf(
        &self,
        end: &Netns,
        end_if: &str,
        router_if: &str,
        tbf: Tbf,
    ) -> Result<(), HarnessError> {
        let rate = format!("{}kbit", tbf.rate_kbit);
        let burst = tbf.burst_bytes.to_string();
        let lat = format!("{}ms", tbf.latency_ms);
        for (ns, dev) in [(end, end_if), (&self.router, router_if)] {
            ns.run(&[
                "tc", "qdisc", "replace", "dev", dev, "root", "tbf", "rate", &rate, "burst",
                &burst, "latency", &lat,
            ])?;
        }
        Ok(())
    }

    /// Remove the shaping of client link `i`.
    pub fn unshape(&self, i: usize) -> Result<(), HarnessError> {
        for (ns, dev) in [
            (&self.client, format!("c{i}")),
            (&self.router, format!("rc{i}")),
        ] {
            ns.run(&["tc", "qdisc", "del", "dev", &dev, "root"])?;
        }
        Ok(())
    }

    /// Take client link `i` down (both ends) or up again.
    pub fn set_link(&self, i: usize, up: bool) -> Result<(), HarnessError> {
        let state = if up { "up" } else { "down" };
        self.client
            .run(&["ip", "link", "set", &format!("c{i}"), state])?;
        // Routes in per-link tables vanish with the link; restore them when it comes back.
        if up {
            let table = (100 + i).to_string();
            let (gw4, gw6) = client_gw(i);
            let (gw4, gw6) = (gw4.to_string(), gw6.to_string());
            let dev = format!("c{i}");
            // A link going down drops its global IPv6 address (keep_addr_on_down=0): restore it.
            let v6 = format!("{}/64", client_v6(i));
            let _ = self
                .client
                .run(&["ip", "-6", "addr", "replace", &v6, "dev", &dev, "nodad"]);
            let _ = self.client.run(&[
                "ip", "route", "replace", "default", "via", &gw4, "dev", &dev, "table", &table,
            ]);
            let _ = self.client.run(&[
                "ip", "-6", "route", "replace", "default", "via", &gw6, "dev", &dev, "table",
                &table,
            ]);
            if i == 0 {
                let _ = self.client.run(&[
                    "ip", "route", "replace", "default", "via", &gw4, "dev", &dev,
                ]);
                let _ = self.client.run(&[
                    "ip", "-6", "route", "replace", "default", "via", &gw6, "dev", &dev,
                ]);
            }
        }
        Ok(())
    }
}

impl Topology {
    /// `ip mptcp endpoint add <server address j> dev s<j> signal` in the server namespace: its
    /// in-kernel PM announces that address on every connection.
    pub fn server_signal_endpoint(&self, j: usize) -> Result<(), HarnessError> {
        let (addr, dev) = (self.server_addr(j).to_string(), self.server_if(j));
        self.server
            .run(&[
                "ip", "mptcp", "endpoint", "add", &addr, "dev", &dev, "signal",
            ])
            .map(|_| ())
    }

    /// Server interface name of link `j`.
    pub fn server_if(&self, j: usize) -> String {
        format!("s{j}")
    }

    /// Take server link `j` down (the server's end) or up again, restoring what a link going
    /// down takes with it: its global IPv6 address and the routes of its table.
    pub fn set_server_link(&self, j: usize, up: bool) -> Result<(), HarnessError> {
        let dev = self.server_if(j);
        self.server
            .run(&["ip", "link", "set", &dev, if up { "up" } else { "down" }])?;
        if up {
            let table = (100 + j).to_string();
            let (gw4, gw6) = server_gw(j);
            let (gw4, gw6) = (gw4.to_string(), gw6.to_string());
            let v6 = format!("{}/64", server_v6(j));
            self.server
                .run(&["ip", "-6", "addr", "replace", &v6, "dev", &dev, "nodad"])?;
            self.server.run(&[
                "ip", "route", "replace", "default", "via", &gw4, "dev", &dev, "table", &table,
            ])?;
            self.server.run(&[
                "ip", "-6", "route", "replace", "default", "via", &gw6, "dev", &dev, "table",
                &table,
            ])?;
            if j == 0 {
                self.server.run(&[
                    "ip", "route", "replace", "default", "via", &gw4, "dev", &dev,
                ])?;
                self.server.run(&[
                    "ip", "-6", "route", "replace", "default", "via", &gw6, "dev", &dev,
                ])?;
            }
        }
        Ok(())
    }
}

impl Topology {
    /// Make what the router forwards from client link `i` to the server's first address enter
    /// the server on its link `j` (a policy route by source on the router; the server accepts
    /// it there: rp_filter is off). With each client link steered to a server link of its
    /// own, the server's interface counters split what arrived by the client path it took,
    /// counted after anything the router dropped.
    pub fn steer_client_link(&self, i: usize, j: usize) -> Result<(), HarnessError> {
        let table = (200 + i).to_string();
        let from = format!("{}/24", client_v4(i));
        let to = server_v4(0).to_string();
        let (via, dev) = (server_v4(j).to_string(), format!("rs{j}"));
        let r = &self.router;
        r.run(&[
            "ip", "rule", "add", "from", &from, "to", &to, "table", &table,
        ])?;
        r.run(&[
            "ip", "route", "add", &to, "via", &via, "dev", &dev, "table", &table,
        ])?;
        Ok(())
    }
}

impl Topology {
    /// Serve an MPTCP echo server on every server address (`0.0.0.0:port`: joins towards any
    /// server address reach it).
    pub fn serve_echo(&self, port: u16) -> Result<(), HarnessError> {
        let addr = std::net::SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port);
        let listener = self
            .server
            .exec(move || crate::mptcp::listen(addr))?
            .map_err(|source| HarnessError::Spawn {
                cmd: format!("mptcp listen {addr}"),
                source,
            })?;
        self.server
            .exec_bg(move || crate::mptcp::echo_server(listener))?;
        Ok(())
    }

    /// Open `n` MPTCP connections from the client to `server_addr(0):port` and ping each, so
    /// every one is fully established (joins become possible) when this returns.
    pub fn connect_many(
        &self,
        port: u16,
        n: usize,
    ) -> Result<Vec<std::net::TcpStream>, HarnessError> {
        let dst = std::net::SocketAddr::new(self.server_addr(0), port);
        let fail = |source| HarnessError::Spawn {
            cmd: format!("mptcp connect {dst}"),
            source,
        };
        (0..n)
            .map(|_| {
                let mut s = self
                    .client
                    .exec(move || crate::mptcp::connect(dst, None))?
                    .map_err(fail)?;
                s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                    .map_err(fail)?;
                crate::mptcp::ping(&mut s, b"establish").map_err(fail)?;
                Ok(s)
            })
            .collect()
    }
}
