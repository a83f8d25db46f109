//! A tiny shell-style glob matcher for interface names (`*` and `?` only).
//!
//! Interface names are short (at most 15 bytes), so the classic backtracking matcher with
//! a single remembered star is linear enough and needs no crate.

/// True if `name` matches `pattern`, where `*` matches any run of characters (including
/// none) and `?` matches exactly one character. Every other character matches itself;
/// there are no character classes or escapes.
///
/// ```
/// use mptcp_pmd_config::glob_match;
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
pub(crate) fn has_wildcard(pattern: &str) -> bool {
    pattern.contains(['*', '?'])
}

#[cfg(test)]
mod tests {
    use super::glob_match;

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
