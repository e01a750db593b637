//! The kernel settings that change an answer, read in the calling thread's
//! network namespace (every file under /proc/sys/net follows the thread that
//! opens it; run [`Sysctls::read`] inside `Netns::run` for another
//! namespace).

use serde::{Deserialize, Serialize};

use crate::model::PortRange;

/// Linux's default `net.ipv4.ip_local_port_range`, used when the sysctl
/// cannot be read.
pub const DEFAULT_LOCAL_PORT_RANGE: PortRange = PortRange { lo: 32768, hi: 60999 };

/// Linux's default `net.ipv4.ip_unprivileged_port_start`.
pub const DEFAULT_UNPRIVILEGED_PORT_START: u16 = 1024;

const LOCAL_PORT_RANGE: &str = "/proc/sys/net/ipv4/ip_local_port_range";
const RESERVED_PORTS: &str = "/proc/sys/net/ipv4/ip_local_reserved_ports";
const TCP_MEM: &str = "/proc/sys/net/ipv4/tcp_mem";
const TCP_MAX_ORPHANS: &str = "/proc/sys/net/ipv4/tcp_max_orphans";

/// A u64 setting, `None` when unreadable.
fn wide(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok().and_then(|t| t.trim().parse().ok())
}

/// `net.core.somaxconn` of the calling thread's namespace.
pub fn somaxconn() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn").ok().and_then(|t| t.trim().parse().ok())
}

/// `net.ipv4.ip_local_port_range` of the calling thread's namespace, the
/// kernel's default when it cannot be read.
pub fn local_port_range() -> PortRange {
    std::fs::read_to_string(LOCAL_PORT_RANGE)
        .ok()
        .and_then(|t| parse_port_range(&t).ok())
        .unwrap_or(DEFAULT_LOCAL_PORT_RANGE)
}

/// One namespace's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysctls {
    /// `net.ipv6.bindv6only`: a new `[::]` socket is v6only by default.
    pub bindv6only: bool,
    /// `net.ipv4.ip_unprivileged_port_start`.
    pub unprivileged_port_start: u16,
    /// `net.ipv4.ip_local_port_range`; the error when it was unreadable
    /// (then [`DEFAULT_LOCAL_PORT_RANGE`] is what the kernel most likely uses).
    pub local_port_range: Result<PortRange, String>,
    /// `net.ipv4.ip_local_reserved_ports`, sorted and merged (empty when
    /// unreadable: the numbers are then only slightly pessimistic).
    pub reserved_ports: Vec<PortRange>,
    /// `net.core.somaxconn`: the cap on every listen() backlog.
    pub somaxconn: Option<u32>,
    /// `net.ipv4.tcp_max_syn_backlog`.
    pub tcp_max_syn_backlog: Option<u32>,
    /// `net.ipv4.tcp_mem`: host-wide, so only the initial namespace shows
    /// it (see [`Sysctls::fill_host_wide`]).
    pub tcp_mem: Option<TcpMem>,
    /// `net.ipv4.tcp_max_orphans`: host-wide too.
    pub tcp_max_orphans: Option<u64>,
    /// `net.ipv4.tcp_max_tw_buckets`: per namespace.
    pub tcp_max_tw_buckets: Option<u64>,
}

/// `net.ipv4.tcp_mem`, in pages: below `min` TCP does not limit memory;
/// above `pressure` it enters memory pressure (shrinks buffers) until it is
/// below `min` again; at `max` allocations fail (TcpExt TCPAbortOnMemory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpMem {
    pub min: u64,
    pub pressure: u64,
    pub max: u64,
}

impl Sysctls {
    /// Reads every setting; what cannot be read takes the kernel's default
    /// or stays unknown, never an error.
    pub fn read() -> Sysctls {
        let read = |p: &str| std::fs::read_to_string(p).map_err(|e| format!("could not read {p}: {e}"));
        let number = |p: &str| read(p).ok().and_then(|t| t.trim().parse::<u32>().ok());
        let local_port_range =
            read(LOCAL_PORT_RANGE).and_then(|t| parse_port_range(&t).map_err(|e| format!("{LOCAL_PORT_RANGE}: {e}")));
        let reserved_ports = read(RESERVED_PORTS).ok().and_then(|t| parse_reserved(&t).ok()).unwrap_or_default();
        Sysctls {
            bindv6only: number("/proc/sys/net/ipv6/bindv6only") == Some(1),
            unprivileged_port_start: number("/proc/sys/net/ipv4/ip_unprivileged_port_start")
                .and_then(|n| u16::try_from(n).ok())
                .unwrap_or(DEFAULT_UNPRIVILEGED_PORT_START),
            local_port_range,
            reserved_ports,
            somaxconn: number("/proc/sys/net/core/somaxconn"),
            tcp_max_syn_backlog: number("/proc/sys/net/ipv4/tcp_max_syn_backlog"),
            tcp_mem: read(TCP_MEM).ok().and_then(|t| parse_tcp_mem(&t)),
            tcp_max_orphans: wide(TCP_MAX_ORPHANS),
            tcp_max_tw_buckets: wide("/proc/sys/net/ipv4/tcp_max_tw_buckets"),
        }
    }

    /// The host-wide settings (`tcp_mem`, `tcp_max_orphans`) that another
    /// namespace does not show, from the calling thread's namespace (where
    /// portctl runs, usually the initial one): they are the same in all.
    pub fn fill_host_wide(&mut self) {
        if self.tcp_mem.is_none() {
            self.tcp_mem = std::fs::read_to_string(TCP_MEM).ok().and_then(|t| parse_tcp_mem(&t));
        }
        if self.tcp_max_orphans.is_none() {
            self.tcp_max_orphans = wide(TCP_MAX_ORPHANS);
        }
    }

    /// The kernel's defaults, for a namespace whose settings could not be
    /// read at all (`why` says why).
    pub fn unknown(why: String) -> Sysctls {
        Sysctls {
            bindv6only: false,
            unprivileged_port_start: DEFAULT_UNPRIVILEGED_PORT_START,
            local_port_range: Err(why),
            reserved_ports: Vec::new(),
            somaxconn: None,
            tcp_max_syn_backlog: None,
            tcp_mem: None,
            tcp_max_orphans: None,
            tcp_max_tw_buckets: None,
        }
    }

    /// The ephemeral range, or the kernel's default when unreadable.
    pub fn local_range_or_default(&self) -> PortRange {
        self.local_port_range.clone().unwrap_or(DEFAULT_LOCAL_PORT_RANGE)
    }
}

/// `32768\t60999` -> 32768-60999.
pub fn parse_port_range(text: &str) -> Result<PortRange, String> {
    let mut it = text.split_whitespace().map(|w| w.parse::<u16>());
    match (it.next(), it.next(), it.next()) {
        (Some(Ok(lo)), Some(Ok(hi)), None) if lo <= hi => Ok(PortRange { lo, hi }),
        _ => Err(format!("expected two ports, low then high, got '{}'", text.trim())),
    }
}

/// `287898\t383867\t575796` -> min, pressure, max.
pub fn parse_tcp_mem(text: &str) -> Option<TcpMem> {
    let mut it = text.split_whitespace().map(|w| w.parse::<u64>().ok());
    match (it.next(), it.next(), it.next(), it.next()) {
        (Some(Some(min)), Some(Some(pressure)), Some(Some(max)), None) => Some(TcpMem { min, pressure, max }),
        _ => None,
    }
}

/// `8080,9000-9100` (or empty) -> ranges, sorted and merged.
pub fn parse_reserved(text: &str) -> Result<Vec<PortRange>, String> {
    let mut spans = Vec::new();
    for part in text.trim().split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || format!("'{part}' is not a port or a port range");
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<u16>().map_err(|_| bad())?, b.trim().parse::<u16>().map_err(|_| bad())?),
            None => {
                let p = part.parse::<u16>().map_err(|_| bad())?;
                (p, p)
            }
        };
        if lo > hi {
            return Err(bad());
        }
        spans.push(PortRange { lo, hi });
    }
    spans.sort();
    let mut merged: Vec<PortRange> = Vec::with_capacity(spans.len());
    for s in spans {
        match merged.last_mut() {
            Some(last) if u32::from(s.lo) <= u32::from(last.hi) + 1 => last.hi = last.hi.max(s.hi),
            _ => merged.push(s),
        }
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_range_and_reserved_ports() {
        assert_eq!(parse_port_range("32768\t60999\n"), Ok(PortRange { lo: 32768, hi: 60999 }));
        assert_eq!(parse_port_range("1024 1024"), Ok(PortRange { lo: 1024, hi: 1024 }));
        for bad in ["", "32768", "60999 32768", "a b", "1 2 3", "70000 70001"] {
            assert!(parse_port_range(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_reserved("\n"), Ok(vec![]));
        assert_eq!(
            parse_reserved("9100-9200,8080, 9150-9300,9301\n"),
            Ok(vec![PortRange { lo: 8080, hi: 8080 }, PortRange { lo: 9100, hi: 9301 }])
        );
        for bad in ["x", "5-", "9-3", "70000"] {
            assert!(parse_reserved(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn this_namespace_reads() {
        let s = Sysctls::read();
        let r = s.local_port_range.expect("ip_local_port_range is readable");
        assert!(r.lo <= r.hi);
        assert!(s.somaxconn.is_some() && s.somaxconn == somaxconn());
        assert!(s.tcp_max_tw_buckets.is_some());
    }

    #[test]
    fn tcp_mem_values() {
        assert_eq!(
            parse_tcp_mem("287898\t383867\t575796\n"),
            Some(TcpMem { min: 287898, pressure: 383867, max: 575796 })
        );
        for bad in ["", "1 2", "1 2 3 4", "a b c", "-1 2 3"] {
            assert_eq!(parse_tcp_mem(bad), None, "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn random_sysctl_text_never_panics(text in "\\PC{0,80}") {
            let _ = parse_port_range(&text);
            if let Ok(v) = parse_reserved(&text) {
                proptest::prop_assert!(v.windows(2).all(|w| u32::from(w[0].hi) + 1 < u32::from(w[1].lo)), "merged");
            }
        }
    }
}
