//! The port matcher used by per-connection rules: [`PortRange`]. (Address prefixes,
//! [`crate::Cidr`], and interface globs live in the policies crate, which a policy's own
//! section can use too.)
//!
//! It parses from the strings users write in the config and displays back to the same
//! canonical form, so `--check-config` output can be pasted back into a config file.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

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
