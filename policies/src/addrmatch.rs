//! The address matchers shared by the configuration's filters and rules and by the policies
//! that choose local addresses: interface-name globs ([`glob_match`]) and IP prefixes
//! ([`Cidr`]). They live here, not in the config crate, because a policy parses its own
//! section (see [`crate::params`]) and the config depends on this crate, not the reverse.
//!
//! Globs know `*` and `?` only. Interface names are short (at most 15 bytes), so the classic
//! backtracking matcher with a single remembered star is linear enough and needs no crate.
//! A [`Cidr`] parses from the strings users write and displays back to the same canonical
//! form, so `--check-config` output can be pasted back into a config file.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Linux interface names are at most 15 bytes (IFNAMSIZ - 1).
pub const MAX_IFNAME: usize = 15;

/// True if `name` matches `pattern`, where `*` matches any run of characters (including
/// none) and `?` matches exactly one character. Every other character matches itself;
/// there are no character classes or escapes.
///
/// ```
/// use mptcp_pmd_policies::addrmatch::glob_match;
/// assert!(glob_match("docker*", "docker0"));
/// assert!(glob_match("wlan?", "wlan1"));
/// assert!(!glob_match("eth?", "eth10"));
/// ```
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0usize, 0usize);
    // Position of the last `*` seen and the name position it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == '?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                // Let the last star swallow one more character and retry.
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi.min(p.len())..].iter().all(|&c| c == '*')
}

/// True if `pattern` contains a wildcard.
pub fn has_wildcard(pattern: &str) -> bool {
    pattern.contains(['*', '?'])
}

/// Why `pattern` can never match a valid Linux interface name, if it cannot: it is empty,
/// contains `/`, `:`, whitespace or a control character, or is a literal longer than
/// [`MAX_IFNAME`]. Also refused: `[` and `]`, which other globs read as a character class
/// (`eth[01]`) and this matcher would take literally, matching nothing the writer meant.
pub fn interface_glob_problem(pattern: &str) -> Option<&'static str> {
    if pattern.is_empty() {
        return Some("it is empty");
    }
    if pattern.contains(['[', ']']) {
        return Some("'[' and ']' are not wildcards here, only '*' and '?' are");
    }
    if pattern
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Some("interface names cannot contain '/', ':' or whitespace");
    }
    if !has_wildcard(pattern) && pattern.len() > MAX_IFNAME {
        return Some("interface names are at most 15 bytes long");
    }
    None
}

/// An interface-name glob read from a policy's section: deserializing checks it with
/// [`interface_glob_problem`], so a pattern that can never match is a located value error
/// (`<section>.interfaces[1] must be ...`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct InterfaceGlob(pub String);

impl InterfaceGlob {
    /// True if interface `name` matches the pattern.
    pub fn matches(&self, name: &str) -> bool {
        glob_match(&self.0, name)
    }
}

/// What an [`InterfaceGlob`] must look like, worded for a value error.
struct GlobExpected(&'static str);

impl serde::de::Expected for GlobExpected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an interface name or glob ({})", self.0)
    }
}

impl<'de> Deserialize<'de> for InterfaceGlob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match interface_glob_problem(&text) {
            None => Ok(InterfaceGlob(text)),
            Some(why) => Err(<D::Error as serde::de::Error>::invalid_value(
                serde::de::Unexpected::Str(&text),
                &GlobExpected(why),
            )),
        }
    }
}

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

/// What a [`Cidr`] must look like, worded for a value error (`... must be <this>, got "x"`).
struct PrefixExpected<'a>(&'a CidrError);

impl serde::de::Expected for PrefixExpected<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            CidrError::BadAddress(_) => {
                f.write_str("an address or prefix such as 198.51.100.0/24 or 2001:db8::/32")
            }
            CidrError::BadPrefix { max, .. } => write!(f, "a prefix length between 0 and {max}"),
            CidrError::HostBits { suggest, .. } => {
                write!(f, "a prefix without host bits (did you mean {suggest}?)")
            }
        }
    }
}

/// Reads the string form (`"198.51.100.0/24"`, a bare address for one host); a bad prefix is
/// a value error that says what was expected.
impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(|e: CidrError| {
            <D::Error as serde::de::Error>::invalid_value(
                serde::de::Unexpected::Str(&text),
                &PrefixExpected(&e),
            )
        })
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
    fn literals_and_wildcards() {
        let cases = [
            ("eth0", "eth0", true),
            ("eth0", "eth1", false),
            ("eth0", "eth01", false),
            ("*", "", true),
            ("*", "anything", true),
            ("", "", true),
            ("", "x", false),
            ("eth*", "eth", true),
            ("eth*", "eth0", true),
            ("eth*", "et", false),
            ("*0", "eth0", true),
            ("*0", "eth1", false),
            ("e*h*0", "eth0", true),
            ("e*h*0", "ehhh0", true),
            ("e*h*0", "eth01", false),
            ("wlan?", "wlan1", true),
            ("wlan?", "wlan", false),
            ("wlan?", "wlan12", false),
            ("??", "ab", true),
            ("*a*b*c*", "xxaxxbxxcxx", true),
            ("*a*b*c*", "xxaxxcxxbxx", false),
            ("veth*@*", "veth0@if3", true),
            ("**", "x", true),
            ("a*", "ba", false),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(glob_match(pattern, name), want, "{pattern:?} vs {name:?}");
        }
    }
}
