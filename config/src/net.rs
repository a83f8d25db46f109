//! Address and port matchers used by per-destination rules: [`Cidr`] and [`PortRange`].
//!
//! Both parse from the strings users write in the config and display back to the same
//! canonical form, so `--check-config` output can be pasted back into a config file.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// An IP prefix such as `198.51.100.0/24` or `2001:db8::/32`.
///
/// Invariant: no host bits are set beyond `prefix` (`198.51.100.7/24` is rejected, it
/// is almost always a typo and silently masking it would hide it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// Why a string or a pair is not a valid [`Cidr`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// The part before `/` is not an IP address.
    #[error("invalid CIDR {0:?}, expected an address with an optional prefix length, e.g. 198.51.100.0/24 or 2001:db8::/32")]
    BadAddress(String),
    /// The prefix length is not a number or is too long for the address family.
    #[error("invalid prefix length in {text:?}, expected 0..={max}")]
    BadPrefix {
        /// The text as written.
        text: String,
        /// 32 for IPv4, 128 for IPv6.
        max: u8,
    },
    /// Bits beyond the prefix are set.
    #[error("{text:?} has host bits set, did you mean {suggest}?")]
    HostBits {
        /// The text as written.
        text: String,
        /// The network with host bits cleared.
        suggest: String,
    },
}

fn max_prefix(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// Address as a left-aligned 128-bit number, so both families share the masking code.
fn bits(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)) << 96,
        IpAddr::V6(a) => u128::from(a),
    }
}

fn mask(prefix: u8) -> u128 {
    match prefix {
        0 => 0,
        p if p >= 128 => u128::MAX,
        p => u128::MAX << (128 - u32::from(p)),
    }
}

fn masked(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let m = (mask(prefix) >> 96) as u32;
            IpAddr::V4((u32::from(a) & m).into())
        }
        IpAddr::V6(a) => IpAddr::V6((u128::from(a) & mask(prefix)).into()),
    }
}

impl Cidr {
    /// A prefix; fails if `prefix` is too long for the family or host bits are set.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, CidrError> {
        let max = max_prefix(addr);
        if prefix > max {
            return Err(CidrError::BadPrefix {
                text: format!("{addr}/{prefix}"),
                max,
            });
        }
        let net = masked(addr, prefix);
        if net != addr {
            return Err(CidrError::HostBits {
                text: format!("{addr}/{prefix}"),
                suggest: format!("{net}/{prefix}"),
            });
        }
        Ok(Cidr { addr, prefix })
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// True if `ip` is inside this prefix. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`,
    /// as seen on dual-stack sockets) are compared as the IPv4 address they carry.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        // Both families are left-aligned in `bits`, so the same mask works for both.
        let m = mask(self.prefix);
        bits(ip) & m == bits(self.addr) & m
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// Parses `addr/len`, or a bare address meaning a single host (`/32` or `/128`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr_text, prefix_text) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| CidrError::BadAddress(s.to_owned()))?;
        let max = max_prefix(addr);
        let prefix = match prefix_text {
            None => max,
            Some(p) => {
                // Only plain decimal digits: `u8::from_str` would also accept "+24".
                if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(CidrError::BadPrefix {
                        text: s.to_owned(),
                        max,
                    });
                }
                p.parse::<u8>().map_err(|_| CidrError::BadPrefix {
                    text: s.to_owned(),
                    max,
                })?
            }
        };
        if prefix > max {
            return Err(CidrError::BadPrefix {
                text: s.to_owned(),
                max,
            });
        }
        Cidr::new(addr, prefix).map_err(|e| match e {
            CidrError::HostBits { suggest, .. } => CidrError::HostBits {
                text: s.to_owned(),
                suggest,
            },
            other => other,
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An inclusive range of TCP ports, `lo..=hi`, with `1 <= lo <= hi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    lo: u16,
    hi: u16,
}

/// Why a string or a pair is not a valid [`PortRange`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortRangeError {
    /// Not a number or `LO-HI`, or a number outside 1..=65535.
    #[error(
        "invalid port {0:?}, expected a port 1-65535 or a range \"LO-HI\" such as \"8000-8100\""
    )]
    Syntax(String),
    /// `lo > hi`.
    #[error("invalid port range {0:?}: the first port must not be greater than the second")]
    Reversed(String),
}

fn parse_port(s: &str) -> Option<u16> {
    let s = s.trim();
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u16>().ok().filter(|&p| p != 0)
}

impl PortRange {
    /// A range `lo..=hi`; fails if `lo` is 0 or `lo > hi`.
    pub fn new(lo: u16, hi: u16) -> Result<Self, PortRangeError> {
        if lo == 0 {
            return Err(PortRangeError::Syntax(format!("{lo}-{hi}")));
        }
        if lo > hi {
            return Err(PortRangeError::Reversed(format!("{lo}-{hi}")));
        }
        Ok(PortRange { lo, hi })
    }

    /// A single port.
    pub fn single(port: u16) -> Result<Self, PortRangeError> {
        PortRange::new(port, port)
    }

    /// First port of the range.
    pub fn lo(&self) -> u16 {
        self.lo
    }

    /// Last port of the range (inclusive).
    pub fn hi(&self) -> u16 {
        self.hi
    }

    /// True if `port` is in `lo..=hi`.
    pub fn contains(&self, port: u16) -> bool {
        (self.lo..=self.hi).contains(&port)
    }
}

impl FromStr for PortRange {
    type Err = PortRangeError;

    /// Parses `443` or `8000-8100`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || PortRangeError::Syntax(s.to_owned());
        match s.split_once('-') {
            None => parse_port(s)
                .map(|p| PortRange { lo: p, hi: p })
                .ok_or_else(syntax),
            Some((a, b)) => {
                let lo = parse_port(a).ok_or_else(syntax)?;
                let hi = parse_port(b).ok_or_else(syntax)?;
                if lo > hi {
                    return Err(PortRangeError::Reversed(s.to_owned()));
                }
                Ok(PortRange { lo, hi })
            }
        }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

impl Serialize for PortRange {
    /// A single port is written as an integer, a range as a `"LO-HI"` string.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.lo == self.hi {
            s.serialize_u16(self.lo)
        } else {
            s.collect_str(self)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_parse_and_contains() {
        let c: Cidr = "198.51.100.0/24".parse().unwrap();
        assert_eq!(c.prefix(), 24);
        assert!(c.contains(ip("198.51.100.1")));
        assert!(c.contains(ip("198.51.100.255")));
        assert!(!c.contains(ip("198.51.101.0")));
        assert!(c.contains(ip("::ffff:198.51.100.9")));
        assert!(!c.contains(ip("2001:db8::1")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("1.2.3.4")));
        assert!(!all.contains(ip("::1")));
        let host: Cidr = "10.0.0.1".parse().unwrap();
        assert_eq!(host.prefix(), 32);
        assert!(host.contains(ip("10.0.0.1")));
        assert!(!host.contains(ip("10.0.0.2")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("32.1.13.184")));
        let any6: Cidr = "::/0".parse().unwrap();
        assert!(any6.contains(ip("fe80::1")));
        assert_eq!(v6.to_string(), "2001:db8::/32");
    }

    #[test]
    fn cidr_errors() {
        assert!(matches!(
            "10.0.0.0/33".parse::<Cidr>(),
            Err(CidrError::BadPrefix { max: 32, .. })
        ));
        assert!(matches!(
            "::/129".parse::<Cidr>(),
            Err(CidrError::BadPrefix { max: 128, .. })
        ));
        assert!(matches!(
            "10.0.0.0/".parse::<Cidr>(),
            Err(CidrError::BadPrefix { .. })
        ));
        assert!(matches!(
            "10.0.0.0/+8".parse::<Cidr>(),
            Err(CidrError::BadPrefix { .. })
        ));
        assert!(matches!(
            "10.0.0/8".parse::<Cidr>(),
            Err(CidrError::BadAddress(_))
        ));
        assert_eq!(
            "10.1.0.0/8".parse::<Cidr>(),
            Err(CidrError::HostBits {
                text: "10.1.0.0/8".into(),
                suggest: "10.0.0.0/8".into()
            })
        );
        assert!(Cidr::new(ip("10.0.0.0"), 40).is_err());
    }

    #[test]
    fn port_ranges() {
        let p: PortRange = "443".parse().unwrap();
        assert!(p.contains(443) && !p.contains(444));
        let r: PortRange = "8000-8100".parse().unwrap();
        assert!(r.contains(8000) && r.contains(8100) && !r.contains(8101) && !r.contains(7999));
        assert_eq!(r.to_string(), "8000-8100");
        assert!(matches!(
            "9000-8000".parse::<PortRange>(),
            Err(PortRangeError::Reversed(_))
        ));
        for bad in ["0", "65536", "x", "", "1-", "-1", "+5", "1-2-3"] {
            assert!(bad.parse::<PortRange>().is_err(), "{bad}");
        }
        assert!(PortRange::new(0, 1).is_err());
        assert!(PortRange::new(2, 1).is_err());
    }
}
