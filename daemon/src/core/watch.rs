//! What a connection asks the sock_diag poller's sampler for (pure): its established subflows
//! (4-tuple and bound interface) at its policy's period, and whether it waits for a probe whose
//! port it does not know yet (then the sampler looks among the SYN_SENT sockets, so that an
//! abandoned probe learns its port and can be destroyed). The connection actor sends a new
//! [`Watch`] when this changes, which it tells by a [`fingerprint`] (no allocation per pump).

use std::hash::{Hash, Hasher};

use mptcp_pmd_policies::conn::{Connection, Subflow, SubflowState};
use netlink_actor::actors::{Pace, Watch, WatchedSubflow};

/// The subflows worth sampling: established and not being closed by us.
fn sampled(s: &Subflow) -> Option<WatchedSubflow> {
    let key = s.key()?;
    (matches!(s.state, SubflowState::Established { .. }) && !s.closing).then_some(WatchedSubflow {
        key,
        if_index: s.if_index.unwrap_or(0),
    })
}

/// A probe in flight whose socket's port is unknown.
fn waiting_probe(s: &Subflow) -> bool {
    matches!(s.state, SubflowState::Requested { .. })
        && s.local_port.is_none()
        && s.timeout.is_some()
        && !s.closing
}

/// What `conn` asks to be sampled at `pace`.
pub fn watch_of(conn: &Connection, pace: Pace) -> Watch {
    Watch {
        pace,
        subflows: conn.subflows().iter().filter_map(sampled).collect(),
        discover: conn.subflows().iter().any(waiting_probe),
    }
}

/// A hash of [`watch_of`]`(conn, pace)`, computed without building it. It runs after
/// every message a connection handles, so it is a multiply-rotate fold (FxHash's), not
/// SipHash: nothing here is chosen by an attacker, and a collision only delays an update of
/// the watch until the next change.
pub fn fingerprint(conn: &Connection, pace: Pace) -> u64 {
    let mut h = Fold(0);
    pace.hash(&mut h);
    for w in conn.subflows().iter().filter_map(sampled) {
        w.hash(&mut h);
    }
    conn.subflows().iter().any(waiting_probe).hash(&mut h);
    h.finish()
}

/// FxHash's fold.
struct Fold(u64);

impl Hasher for Fold {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mptcp_pmd_policies::conn::ConnTimers;
    use mptcp_pmd_policies::policy::{Action, Decision, Reason};
    use mptcp_pmd_policies::{ConnFlags, ConnInfo, PmEvent, SubflowInfo, Token};
    use std::time::{Duration, Instant};

    fn established(t0: Instant) -> Connection {
        let mut c = Connection::new(Token(1), ConnTimers::default());
        c.handle_event(
            t0,
            &PmEvent::Established(ConnInfo {
                token: Token(1),
                local: "10.0.1.2:40000".parse().unwrap(),
                remote: "10.0.9.1:80".parse().unwrap(),
                loc_id: 0,
                rem_id: 0,
                flags: ConnFlags::default(),
            }),
        );
        c
    }

    fn open(probe: bool) -> Decision {
        Decision::new(
            Action::Open {
                local: "10.0.2.2".parse().unwrap(),
                if_index: Some(3),
                remote: "10.0.9.1:80".parse().unwrap(),
                backup: true,
                timeout: probe.then_some(Duration::from_millis(200)),
            },
            Reason::fixed("probe", "test"),
        )
    }

    #[test]
    fn established_subflows_are_watched_and_a_portless_probe_asks_for_discovery() {
        let t0 = Instant::now();
        let period = Pace {
            period: Duration::from_millis(20),
            skip_idle: false,
        };
        let mut c = established(t0);
        let w = watch_of(&c, period);
        assert_eq!(w.pace, period);
        assert_eq!(w.subflows.len(), 1);
        assert_eq!(w.subflows[0].key.local, "10.0.1.2:40000".parse().unwrap());
        assert!(!w.discover);
        let before = fingerprint(&c, period);
        let skip = Pace {
            skip_idle: true,
            ..period
        };
        assert_ne!(before, fingerprint(&c, skip));

        // A plain join in flight changes nothing; a probe in flight asks for discovery.
        c.handle_decisions(t0, vec![open(false)]);
        assert_eq!(fingerprint(&c, period), before);
        assert!(!watch_of(&c, period).discover);
        c.handle_decisions(t0, vec![open(true)]);
        while c.poll_command().is_some() {}
        let w = watch_of(&c, period);
        assert!(w.discover, "{c:?}");
        assert_ne!(fingerprint(&c, period), before);

        // The join establishes on its bound interface: watched, with the interface.
        c.handle_event(
            t0,
            &PmEvent::SubEstablished(SubflowInfo {
                token: Token(1),
                local: "10.0.2.2:41000".parse().unwrap(),
                remote: "10.0.9.1:80".parse().unwrap(),
                loc_id: 1,
                rem_id: 0,
                backup: true,
                if_idx: Some(3),
                error: None,
                reset_reason: None,
                reset_flags: None,
            }),
        );
        let w = watch_of(&c, period);
        assert_eq!(w.subflows.len(), 2);
        let join = w.subflows.iter().find(|s| s.key.local.port() == 41000);
        assert_eq!(join.map(|s| s.if_index), Some(3));
    }
}
