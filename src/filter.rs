//! Value parsers for the command line (ports, ranges, CIDRs, states) and the
//! predicates that use them. No I/O here.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

pub use crate::model::PortRange;
use crate::model::{Proto, State, StateSet};

impl FromStr for PortRange {
    type Err = String;

    /// `8080`, `:8080`, `8000-8100`. Port 0 is never a real port to look for.
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim().trim_start_matches(':');
        if t.starts_with('-') {
            return Err(format!("'{t}' is not a port number"));
        }
        let (lo, hi) = match t.split_once('-') {
            Some((a, b)) => (parse_port(a)?, parse_port(b)?),
            None => {
                let p = parse_port(t)?;
                (p, p)
            }
        };
        if lo > hi {
            return Err(format!("range {lo}-{hi} is backwards (did you mean {hi}-{lo}?)"));
        }
        Ok(PortRange { lo, hi })
    }
}

/// A port number 1..=65535 with a message that names the bad value.
pub fn parse_port(s: &str) -> Result<u16, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty port".to_string());
    }
    if !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{t}' is not a port number"));
    }
    match t.parse::<u32>() {
        Ok(0) => Err("port 0 is not a real port (the kernel picks one)".to_string()),
        Ok(n) if n <= 65535 => Ok(n as u16),
        _ => Err(format!("port {t} is out of range (1-65535)")),
    }
}

/// An address with a prefix length: `10.0.0.0/8`, `::1`, `fe80::/10`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let (a, p) = match t.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (t, None),
        };
        let a = a.trim_start_matches('[').trim_end_matches(']');
        let addr: IpAddr = a.parse().map_err(|_| format!("'{a}' is not an IPv4 or IPv6 address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("prefix /{p} is out of range for {a} (0-{max})")),
            },
        };
        Ok(Cidr { addr, prefix })
    }
}

/// A `--port`/`--sport`/`--dport` value: a port or range, or a service
/// name (resolved later, with I/O); `!` in front excludes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortArg {
    pub negated: bool,
    pub value: PortArgValue,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortArgValue {
    Range(PortRange),
    Service(String),
}

impl FromStr for PortArg {
    type Err = String;

    /// `8080`, `:8080`, `8000-8100`, `https`, `!22`.
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let (negated, body) = match t.strip_prefix('!') {
            Some(b) => (true, b.trim()),
            None => (false, t),
        };
        let bare = body.trim_start_matches(':');
        let is_name = !bare.is_empty()
            && bare.bytes().any(|b| b.is_ascii_alphabetic())
            && bare.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        let value = if is_name { PortArgValue::Service(bare.to_string()) } else { PortArgValue::Range(body.parse()?) };
        Ok(PortArg { negated, value })
    }
}

/// A `--src`/`--dst` value: an address or network; `!` in front excludes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CidrArg {
    pub negated: bool,
    pub cidr: Cidr,
}

impl FromStr for CidrArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        match t.strip_prefix('!') {
            Some(b) => Ok(CidrArg { negated: true, cidr: b.parse()? }),
            None => Ok(CidrArg { negated: false, cidr: t.parse()? }),
        }
    }
}

/// A table column `-o/--columns` can name (listen and conns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Column {
    Proto,
    State,
    Local,
    Port,
    Remote,
    Service,
    Exposure,
    RecvQ,
    SendQ,
    Timer,
    Pid,
    Process,
    User,
    Fd,
    Cmdline,
    Uid,
    Inode,
    Netns,
    Context,
    Rtt,
    Retrans,
    Cwnd,
    /// The congestion algorithm.
    Cc,
    Mss,
    Lost,
    Delivery,
    Sent,
    Recv,
    /// Receive memory / buffer (socket memory).
    Rmem,
    Drops,
    /// A listener's accept queue: queued / backlog.
    AcceptQ,
}

/// A `--sort` key (listen and conns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum SortKey {
    /// The local port.
    Port,
    /// The local address and port.
    Local,
    /// The remote address and port.
    Remote,
    /// The remote port.
    Rport,
    State,
    Proto,
    /// The first holder's pid.
    Pid,
    /// The first holder's name.
    Process,
    /// The first holder's user.
    User,
    RecvQ,
    SendQ,
    Inode,
    Uid,
}

/// A port given as a number or a service name (resolved later, with I/O).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortRef {
    Number(u16),
    Service(String),
}

/// `who`/`kill`/`wait` target: `8080`, `:8080`, `8080/tcp`, `127.0.0.1:8080`,
/// `[::1]:8080/udp`, `postgresql`, `https/tcp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    pub port: PortRef,
    /// None: TCP and UDP.
    pub proto: Option<Proto>,
    /// A specific local address to ask about.
    pub addr: Option<IpAddr>,
}

impl FromStr for PortSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.is_empty() {
            return Err("empty port spec".to_string());
        }
        let (body, proto) = match t.rsplit_once('/') {
            Some((b, p)) => {
                let proto = match p.to_ascii_lowercase().as_str() {
                    "tcp" => Proto::Tcp,
                    "udp" => Proto::Udp,
                    other => return Err(format!("unknown protocol '{other}' in '{t}' (tcp or udp)")),
                };
                (b, Some(proto))
            }
            None => (t, None),
        };
        let (addr, port) = if let Some(rest) = body.strip_prefix('[') {
            let Some((a, after)) = rest.split_once(']') else {
                return Err(format!("'{body}' is missing the closing ']'"));
            };
            let a: std::net::Ipv6Addr = a.parse().map_err(|_| format!("'{a}' is not an IPv6 address"))?;
            let Some(p) = after.strip_prefix(':') else {
                return Err(format!("'{body}' needs a port after the address, like [{a}]:8080"));
            };
            (Some(IpAddr::V6(a)), p)
        } else if body.matches(':').count() > 1 {
            return Err(format!("write IPv6 addresses in brackets, like [::1]:8080 (got '{body}')"));
        } else if let Some((a, p)) = body.split_once(':') {
            let addr = if a.is_empty() {
                None
            } else {
                Some(IpAddr::V4(a.parse().map_err(|_| format!("'{a}' is not an IP address"))?))
            };
            (addr, p)
        } else {
            (None, body)
        };
        let port = if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
            PortRef::Number(parse_port(port)?)
        } else if addr.is_none()
            && !port.is_empty()
            && port.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            PortRef::Service(port.to_string())
        } else {
            return Err(format!("'{port}' is not a port number or service name"));
        };
        Ok(PortSpec { port, proto, addr })
    }
}

/// The most a unix socket name can hold: `sun_path` is 108 bytes, and a
/// path may fill it (no NUL needed); an abstract name has one NUL before it.
pub const SUN_PATH_MAX: usize = 108;

/// A unix socket named on the command line: a filesystem path (absolute)
/// or an abstract name (`@name`, the name without the `@`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnixSpec {
    Path(String),
    Abstract(String),
}

impl UnixSpec {
    /// `/run/app.sock` or `@name`, as typed.
    pub fn label(&self) -> String {
        match self {
            UnixSpec::Path(p) => p.clone(),
            UnixSpec::Abstract(n) => format!("@{n}"),
        }
    }
}

/// What `who`, `kill` and `wait` are about: a port (see [`PortSpec`]) or a
/// unix socket: `/path/to.sock`, or `@name` for an abstract one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    Port(PortSpec),
    Unix(UnixSpec),
}

impl FromStr for TargetSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        // Names are taken as typed: a path may end in a space.
        if let Some(name) = s.strip_prefix('@') {
            if name.is_empty() {
                return Err("'@' alone names no socket: put the abstract name after it (@name)".to_string());
            }
            if name.contains('\n') {
                return Err("a unix socket name with a newline in it: portctl does not look for those".to_string());
            }
            if name.len() + 1 > SUN_PATH_MAX {
                return Err(format!(
                    "abstract name of {} bytes: no unix socket name is longer than {} (sun_path holds {SUN_PATH_MAX} bytes, one of them the leading NUL)",
                    name.len(),
                    SUN_PATH_MAX - 1
                ));
            }
            return Ok(TargetSpec::Unix(UnixSpec::Abstract(name.to_string())));
        }
        if s.starts_with('/') {
            if s.contains('\n') {
                return Err("a socket path with a newline in it: portctl does not look for those (no server can be told such a path reliably either)".to_string());
            }
            if s.len() > SUN_PATH_MAX {
                return Err(format!(
                    "path of {} bytes: no unix socket can be bound to it (sun_path holds {SUN_PATH_MAX}); a server given it fails with EINVAL",
                    s.len()
                ));
            }
            return Ok(TargetSpec::Unix(UnixSpec::Path(s.to_string())));
        }
        let t = s.trim();
        let relative = t.starts_with("./")
            || t.starts_with("../")
            || t.starts_with('~')
            || t.matches('/').count() > 1
            || [".sock", ".socket", ".ctl"].iter().any(|ext| t.ends_with(ext));
        if relative {
            return Err(format!(
                "'{t}' looks like a relative path: give the socket's absolute path (portctl who $(realpath {t}))"
            ));
        }
        t.parse().map(TargetSpec::Port)
    }
}

/// A `--user` value: a numeric uid, or a name looked up later (with I/O,
/// in `query::resolve_user`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserSpec {
    Uid(u32),
    Name(String),
}

impl FromStr for UserSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.is_empty() {
            return Err("empty user".to_string());
        }
        if t.bytes().all(|b| b.is_ascii_digit()) {
            return t.parse().map(UserSpec::Uid).map_err(|_| format!("uid {t} is out of range"));
        }
        if t.chars().any(|c| c.is_whitespace() || c.is_control() || c == ':' || c == '/') {
            return Err(format!("'{t}' is not a user name or uid"));
        }
        Ok(UserSpec::Name(t.to_string()))
    }
}

/// A `--state` value (and a state after `state`/`exclude` in a filter
/// expression): one state or a named group, with the names and meanings
/// `ss` gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateSpec(pub StateSet);

/// Groups `ss` users know, by the names `ss` uses.
const GROUPS: [&str; 5] = ["all", "connected", "synchronized", "bucket", "big"];

impl FromStr for StateSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim().to_ascii_lowercase().replace('-', "_");
        let one = |st: State| Ok(StateSpec(StateSet::of(&[st])));
        // Every state, UDP's unconnected one included (ss's "closed").
        let all_but = |out: &[State]| {
            let v: Vec<State> =
                State::TCP.iter().chain([State::Unconn].iter()).copied().filter(|st| !out.contains(st)).collect();
            StateSpec(StateSet::of(&v))
        };
        let closed = [State::Close, State::Unconn];
        match t.as_str() {
            "all" => Ok(StateSpec(StateSet::all())),
            // As in ss: everything but listening and closed (TIME_WAIT
            // and SYN_RECV included).
            "connected" => Ok(all_but(&[State::Listen, State::Close, State::Unconn])),
            "synchronized" => Ok(all_but(&[State::Listen, State::Close, State::Unconn, State::SynSent])),
            "bucket" => Ok(StateSpec(StateSet::of(&[State::TimeWait, State::SynRecv]))),
            "big" => Ok(all_but(&[State::TimeWait, State::SynRecv])),
            // ss's "closed" is the kernel's TCP_CLOSE: unconnected UDP too.
            "close" | "closed" | "unconnected" => Ok(StateSpec(StateSet::of(&closed))),
            _ => {
                if let Some(st) = State::TCP.iter().chain([State::Unconn].iter()).find(|st| st.as_str() == t) {
                    return one(*st);
                }
                let aliases = [
                    ("estab", State::Established),
                    ("time_wait", State::TimeWait),
                    ("timewait", State::TimeWait),
                    ("listening", State::Listen),
                    ("syn_rcv", State::SynRecv),
                    // ss spells these fin-wait-1 / fin-wait-2
                    ("fin_wait_1", State::FinWait1),
                    ("fin_wait_2", State::FinWait2),
                ];
                if let Some((_, st)) = aliases.iter().find(|(a, _)| *a == t) {
                    return one(*st);
                }
                let mut msg = format!("unknown state '{s}'");
                if let Some(near) = nearest_state(&t) {
                    msg.push_str(&format!(" (did you mean '{near}'?)"));
                } else {
                    msg.push_str(&format!(
                        "; states: {}, unconn; groups: {}",
                        State::TCP.map(|s| s.as_str()).join(", "),
                        GROUPS.join(", ")
                    ));
                }
                Err(msg)
            }
        }
    }
}

/// Edits (insertions, deletions, substitutions of characters) from `a` to
/// `b`: how near a mistyped word is to a known one, for "did you mean"
/// hints (here and in `expr`).
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest known state or group name, for a "did you mean" hint.
fn nearest_state(t: &str) -> Option<&'static str> {
    let names = State::TCP.iter().map(|s| s.as_str()).chain(["unconn"]).chain(GROUPS);
    names
        .filter_map(|n| {
            let d = if t.starts_with(n) || n.starts_with(t) { 1 } else { edit_distance(t, n) };
            (d <= 3.max(n.len() / 3)).then_some((d, n))
        })
        .min()
        .map(|(_, n)| n)
}

/// A signal by name (`TERM`, `SIGTERM`, `term`) or number (`15`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalSpec {
    pub number: i32,
    pub name: &'static str,
}

const SIGNALS: [(&str, i32); 12] = [
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("USR2", libc::SIGUSR2),
    ("TERM", libc::SIGTERM),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("ALRM", libc::SIGALRM),
    ("PIPE", libc::SIGPIPE),
];

impl FromStr for SignalSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if let Ok(n) = t.parse::<i32>() {
            if !(1..=64).contains(&n) {
                return Err(format!("signal {n} is out of range (1-64)"));
            }
            let name = SIGNALS.iter().find(|(_, v)| *v == n).map_or("signal", |(k, _)| k);
            return Ok(SignalSpec { number: n, name });
        }
        let up = t.to_ascii_uppercase();
        let bare = up.strip_prefix("SIG").unwrap_or(&up);
        SIGNALS
            .iter()
            .find(|(k, _)| *k == bare)
            .map(|&(name, number)| SignalSpec { number, name })
            .ok_or_else(|| format!("unknown signal '{t}' (one of {}, or a number)", SIGNALS.map(|(k, _)| k).join(", ")))
    }
}

/// A positive duration: `30s`, `100ms`, `2m`, `1.5s`, or plain seconds (`30`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationArg(pub std::time::Duration);

impl FromStr for DurationArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-')).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: f64 = num.parse().map_err(|_| format!("'{t}' is not a duration (like 30s, 500ms, 2m)"))?;
        let secs = match unit {
            "" | "s" => n,
            "ms" => n / 1000.0,
            "m" | "min" => n * 60.0,
            "h" => n * 3600.0,
            _ => return Err(format!("unknown unit '{unit}' in '{t}' (ms, s, m, h)")),
        };
        if !secs.is_finite() || secs <= 0.0 {
            return Err(format!("duration '{t}' must be positive"));
        }
        if secs > 366.0 * 86400.0 {
            return Err(format!("duration '{t}' is too long"));
        }
        Ok(DurationArg(std::time::Duration::from_secs_f64(secs)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges() {
        let good = [
            ("80", (80, 80)),
            (":8080", (8080, 8080)),
            ("8000-8100", (8000, 8100)),
            ("1-65535", (1, 65535)),
            (" 22 ", (22, 22)),
            ("443-443", (443, 443)),
        ];
        for (s, (lo, hi)) in good {
            assert_eq!(s.parse::<PortRange>(), Ok(PortRange { lo, hi }), "{s}");
        }
        let bad = [
            ("70000", "out of range"),
            ("65536", "out of range"),
            ("abc", "not a port number"),
            ("9-3", "backwards"),
            ("0", "port 0"),
            ("", "empty"),
            ("-5", "not a port number"),
            ("8080-", "empty"),
            ("+80", "not a port"),
            ("99999999999999999999", "out of range"),
        ];
        for (s, want) in bad {
            let e = s.parse::<PortRange>().unwrap_err();
            assert!(e.contains(want), "{s}: {e}");
        }
    }

    #[test]
    fn port_args_take_names_and_exclusions() {
        let r = |lo, hi| PortArgValue::Range(PortRange { lo, hi });
        let ok = [
            ("80", false, r(80, 80)),
            ("!22", true, r(22, 22)),
            ("! 8000-8100", true, r(8000, 8100)),
            (":443", false, r(443, 443)),
            ("https", false, PortArgValue::Service("https".into())),
            ("!:http-alt", true, PortArgValue::Service("http-alt".into())),
        ];
        for (s, negated, value) in ok {
            assert_eq!(s.parse::<PortArg>(), Ok(PortArg { negated, value }), "{s}");
        }
        for (bad, want) in
            [("70000", "out of range"), ("!", "empty"), ("9-3", "backwards"), ("a b", "not a port"), ("0", "port 0")]
        {
            let e = bad.parse::<PortArg>().unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
        }
        assert_eq!("!10.0.0.0/8".parse::<CidrArg>().map(|c| (c.negated, c.cidr.prefix)), Ok((true, 8)));
        assert!("!10.0.0.0/33".parse::<CidrArg>().is_err());
    }

    impl Cidr {
        /// The kernel filter's meaning of the prefix (one definition, in
        /// sock_diag::bytecode).
        fn contains(&self, addr: &IpAddr) -> bool {
            crate::sock_diag::bytecode::prefix_contains(self.addr, self.prefix, *addr)
        }
    }

    #[test]
    fn cidrs() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains(&"10.255.1.2".parse().unwrap()));
        assert!(!c.contains(&"11.0.0.1".parse().unwrap()));
        assert!(c.contains(&"::ffff:10.1.2.3".parse().unwrap()), "v4 prefix matches v4-mapped");
        assert!(!c.contains(&"::1".parse().unwrap()));
        let c: Cidr = "fe80::/10".parse().unwrap();
        assert!(c.contains(&"fe80::1".parse().unwrap()));
        assert!(c.contains(&"febf::1".parse().unwrap()));
        assert!(!c.contains(&"fec0::1".parse().unwrap()));
        assert!(!c.contains(&"10.0.0.1".parse().unwrap()));
        let c: Cidr = "[::1]".parse().unwrap();
        assert_eq!(c.prefix, 128);
        let c: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(c.contains(&"1.2.3.4".parse().unwrap()));
        let c: Cidr = "192.168.1.77/27".parse().unwrap();
        assert!(c.contains(&"192.168.1.64".parse().unwrap()));
        assert!(!c.contains(&"192.168.1.96".parse().unwrap()));
        for (bad, want) in [
            ("10.0.0.0/33", "out of range"),
            ("::1/129", "out of range"),
            ("10.0.0/8", "not an IPv4"),
            ("x", "not an IPv4"),
            ("1.2.3.4/-1", "out of range"),
        ] {
            let e = bad.parse::<Cidr>().unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn signals() {
        let ok = [("TERM", 15), ("sigkill", 9), ("Hup", 1), ("INT", 2), ("9", 9), ("64", 64)];
        for (s, n) in ok {
            assert_eq!(s.parse::<SignalSpec>().map(|x| x.number), Ok(n), "{s}");
        }
        for bad in ["TERMINATE", "0", "65", "-9", "", "SIG"] {
            assert!(bad.parse::<SignalSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        use std::time::Duration;
        let ok = [("30s", 30_000), ("100ms", 100), ("2m", 120_000), ("1.5s", 1500), ("30", 30_000), ("1h", 3_600_000)];
        for (s, ms) in ok {
            assert_eq!(s.parse::<DurationArg>(), Ok(DurationArg(Duration::from_millis(ms))), "{s}");
        }
        for (bad, want) in [
            ("0", "positive"),
            ("-5s", "positive"),
            ("0ms", "positive"),
            ("abc", "not a duration"),
            ("5x", "unknown unit"),
            ("", "not a duration"),
        ] {
            let e = bad.parse::<DurationArg>().unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn port_specs() {
        let n = |p| PortRef::Number(p);
        let v4 = |a: &str| Some(a.parse::<IpAddr>().unwrap());
        let good: [(&str, PortRef, Option<Proto>, Option<IpAddr>); 9] = [
            ("8080", n(8080), None, None),
            (":8080", n(8080), None, None),
            ("8080/tcp", n(8080), Some(Proto::Tcp), None),
            ("8080/UDP", n(8080), Some(Proto::Udp), None),
            ("127.0.0.1:8080", n(8080), None, v4("127.0.0.1")),
            ("[::1]:8080", n(8080), None, v4("::1")),
            ("[::]:53/udp", n(53), Some(Proto::Udp), v4("::")),
            ("postgresql", PortRef::Service("postgresql".into()), None, None),
            ("https/tcp", PortRef::Service("https".into()), Some(Proto::Tcp), None),
        ];
        for (s, port, proto, addr) in good {
            assert_eq!(s.parse::<PortSpec>(), Ok(PortSpec { port, proto, addr }), "{s}");
        }
        let bad = [
            (":0", "port 0"),
            (":65536", "out of range"),
            ("abc:80", "not an IP address"),
            ("[::1", "closing ']'"),
            ("[::1]", "needs a port"),
            ("8080/sctp", "unknown protocol 'sctp'"),
            ("::1:8080", "brackets"),
            ("127.0.0.1:http", "not a port number"),
            ("", "empty"),
            ("80 80", "not a port number"),
            ("[zz::1]:80", "not an IPv6"),
        ];
        for (s, want) in bad {
            let e = s.parse::<PortSpec>().unwrap_err();
            assert!(e.contains(want), "{s}: {e}");
        }
    }

    #[test]
    fn target_specs() {
        let unix = |s: &str| match s.parse::<TargetSpec>() {
            Ok(TargetSpec::Unix(u)) => u,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(unix("/run/app.sock"), UnixSpec::Path("/run/app.sock".into()));
        assert_eq!(unix("/tmp/with space "), UnixSpec::Path("/tmp/with space ".into()));
        assert_eq!(unix("@/org/kernel/udev"), UnixSpec::Abstract("/org/kernel/udev".into()));
        assert_eq!(unix(&format!("/{}", "a".repeat(107))), UnixSpec::Path(format!("/{}", "a".repeat(107))));
        assert_eq!(unix(&format!("@{}", "b".repeat(107))), UnixSpec::Abstract("b".repeat(107)));
        assert!(matches!("8080/tcp".parse::<TargetSpec>(), Ok(TargetSpec::Port(_))));
        assert!(matches!("postgresql".parse::<TargetSpec>(), Ok(TargetSpec::Port(_))));
        for (bad, want) in [
            ("@", "'@' alone"),
            ("/tmp/a\nb", "newline"),
            ("@a\nb", "newline"),
            (&format!("/{}", "a".repeat(108)), "path of 109 bytes"),
            (&format!("@{}", "b".repeat(108)), "abstract name of 108 bytes"),
            ("./app.sock", "relative path"),
            ("app.sock", "relative path"),
            ("run/x/app", "relative path"),
            ("../x", "relative path"),
            ("8080/sctp", "unknown protocol"),
        ] {
            let e = bad.parse::<TargetSpec>().unwrap_err();
            assert!(e.contains(want), "{bad:?}: {e}");
            assert!(!e.contains('\n'), "one line: {e:?}");
        }
    }

    #[test]
    fn user_specs() {
        assert_eq!("1000".parse::<UserSpec>(), Ok(UserSpec::Uid(1000)));
        assert_eq!(" www-data ".parse::<UserSpec>(), Ok(UserSpec::Name("www-data".into())));
        for (bad, want) in
            [("", "empty"), ("99999999999", "out of range"), ("a b", "not a user"), ("x:y", "not a user")]
        {
            let e = bad.parse::<UserSpec>().unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn states_and_groups() {
        let s = |x: &str| x.parse::<StateSpec>().unwrap().0;
        assert!(s("listen").contains(State::Listen));
        assert!(s("TIME-WAIT").contains(State::TimeWait));
        assert!(s("estab").contains(State::Established));
        assert!(s("fin-wait-2").contains(State::FinWait2) && s("FIN-WAIT-1").contains(State::FinWait1));
        assert!(s("unconn").contains(State::Unconn));
        let all = s("all");
        assert!(State::TCP.iter().all(|&st| all.contains(st)) && all.contains(State::Unconn));
        // ss's groups: connected has TIME_WAIT and SYN_RECV, not listening or closed.
        let conn = s("connected");
        assert!(conn.contains(State::Established) && conn.contains(State::CloseWait) && conn.contains(State::SynSent));
        assert!(conn.contains(State::TimeWait) && conn.contains(State::SynRecv));
        assert!(!conn.contains(State::Listen) && !conn.contains(State::Close) && !conn.contains(State::Unconn));
        assert!(!s("synchronized").contains(State::SynSent) && s("synchronized").contains(State::TimeWait));
        let b = s("bucket");
        assert!(b.contains(State::TimeWait) && b.contains(State::SynRecv) && !b.contains(State::Established));
        let big = s("big");
        assert!(!big.contains(State::TimeWait) && big.contains(State::Listen) && big.contains(State::Unconn));
        // ss's closed is TCP_CLOSE, which unconnected UDP sockets are in.
        assert_eq!(s("closed"), StateSet::of(&[State::Close, State::Unconn]));
        assert_eq!(s("close"), s("unconnected"));
        assert_eq!(s("listening"), StateSet::of(&[State::Listen]));
        assert_eq!(s("syn-rcv"), StateSet::of(&[State::SynRecv]));
    }

    #[test]
    fn state_typos_get_a_hint() {
        let e = "listenning".parse::<StateSpec>().unwrap_err();
        assert!(e.contains("did you mean 'listen'"), "{e}");
        let e = "establised".parse::<StateSpec>().unwrap_err();
        assert!(e.contains("did you mean 'established'"), "{e}");
        let e = "zzzzzzzzzzzzz".parse::<StateSpec>().unwrap_err();
        assert!(e.contains("groups: all"), "{e}");
    }
}
