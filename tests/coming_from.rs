//! docs/coming-from.md, run: every pair of its tables (ss, lsof, netstat,
//! fuser beside portctl) on the population of `common::population`,
//! comparing the sockets each side lists (protocol, local end, remote end)
//! or, for the commands that print pids, the pids.
//!
//! How each side is read: `ss` and `netstat` tables (netstat with `-W`, so
//! IPv6 addresses are not cut), `lsof` with `-F pPtn` appended, `fuser`'s
//! pids; portctl with `--json` (or its `--pids` lines). What closes or
//! signals is run as a dry run on both sides: `ss -K` without `-K` (ss
//! lists what it would close), `fuser -k` without `-k`, `portctl close` and
//! `portctl kill` with `--dry-run --json`.

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use common::population::Population;
use common::*;
use portctl::model::{Endpoint, Proto};

type Key = (Proto, Endpoint, Option<Endpoint>);

/// The pairs of the page's tables: (tool command, portctl command).
fn pairs() -> Vec<(String, String)> {
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/coming-from.md")).unwrap();
    let mut out = Vec::new();
    for line in page.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split(" | ").collect();
        let code = |c: &str| c.trim_matches(|ch| ch == '|' || ch == ' ').trim_matches('`').to_string();
        let (tool, portctl) = (code(cells[0]), code(cells[1]));
        assert!(portctl.starts_with("portctl "), "a row without a portctl command: {line}");
        out.push((tool, portctl));
    }
    out
}

/// Splits a command line as a shell would, for the quoting the page uses
/// (single quotes).
fn split(cmd: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for ch in cmd.chars() {
        match ch {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            c => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// `127.0.0.1:22`, `[::1]:8080`, `*:443`, `:::443`, `0.0.0.0:*`,
/// `::ffff:127.0.0.1:443`: an endpoint, or `None` for a `*` port.
fn endpoint(text: &str, v6: bool) -> Option<Endpoint> {
    let (host, port) = text.rsplit_once(':').unwrap_or_else(|| panic!("no port in {text:?}"));
    if port == "*" {
        return None;
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addr: IpAddr = if host == "*" || host.is_empty() {
        if v6 { IpAddr::V6(Ipv6Addr::UNSPECIFIED) } else { IpAddr::V4(Ipv4Addr::UNSPECIFIED) }
    } else {
        let host = host.split('%').next().unwrap();
        host.parse().unwrap_or_else(|_| panic!("not an address: {text:?}"))
    };
    Some(Endpoint { addr, port: port.parse().unwrap_or_else(|_| panic!("not a port: {text:?}")) })
}

/// ss's table: `[Netid] [State] Recv-Q Send-Q Local Peer [Process]`.
fn read_ss(out: &str, words: &[String]) -> BTreeSet<Key> {
    let flags: String = words.iter().filter(|w| w.starts_with('-')).map(|w| w.as_str()).collect();
    let only = if flags.contains('t') && !flags.contains('u') {
        Some(Proto::Tcp)
    } else if flags.contains('u') && !flags.contains('t') {
        Some(Proto::Udp)
    } else {
        None
    };
    let mut keys = BTreeSet::new();
    for line in out.lines().filter(|l| !l.is_empty() && !["Netid", "State", "Recv-Q"].iter().any(|h| l.starts_with(h)))
    {
        let f: Vec<&str> = line.split_whitespace().collect();
        let mut i = 0;
        let proto = match f[0] {
            "tcp" => {
                i = 1;
                Proto::Tcp
            }
            "udp" => {
                i = 1;
                Proto::Udp
            }
            _ => only.unwrap_or_else(|| panic!("ss line without a protocol: {line}")),
        };
        if f[i].parse::<u32>().is_err() {
            i += 1; // the State column
        }
        let (local, peer) = (f[i + 2], f[i + 3]);
        let v6 = local.starts_with('[') || local.starts_with('*');
        keys.insert((proto, endpoint(local, v6).expect("a local port"), endpoint(peer, v6)));
    }
    keys
}

/// netstat's table: `Proto Recv-Q Send-Q Local Foreign [State] [PID/Program]`.
fn read_netstat(out: &str) -> BTreeSet<Key> {
    let mut keys = BTreeSet::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let proto = match f.first().copied() {
            Some("tcp" | "tcp6") => Proto::Tcp,
            Some("udp" | "udp6") => Proto::Udp,
            _ => continue,
        };
        let v6 = f[0].ends_with('6');
        // netstat prints a tcp6 socket's IPv4-mapped ends as IPv4.
        let mapped = |e: Endpoint| match e.addr {
            IpAddr::V4(a) if v6 => Endpoint { addr: IpAddr::V6(a.to_ipv6_mapped()), port: e.port },
            _ => e,
        };
        keys.insert((proto, mapped(endpoint(f[3], v6).expect("a local port")), endpoint(f[4], v6).map(mapped)));
    }
    keys
}

/// lsof -F: `p` process, `t` IPv4|IPv6, `P` TCP|UDP, `n` name
/// (`local` or `local->remote`), one field a line.
fn read_lsof(out: &str) -> BTreeSet<Key> {
    let mut keys = BTreeSet::new();
    let (mut v6, mut proto) = (false, None);
    for line in out.lines() {
        let (tag, value) = line.split_at(1);
        match tag {
            "f" => proto = None,
            "t" => v6 = value == "IPv6",
            "P" => {
                proto = match value {
                    "TCP" => Some(Proto::Tcp),
                    "UDP" => Some(Proto::Udp),
                    _ => None,
                }
            }
            "n" => {
                let Some(p) = proto else { continue };
                let (l, r) = match value.split_once("->") {
                    Some((l, r)) => (l, Some(r)),
                    None => (value, None),
                };
                // lsof prints an IPv6 socket's IPv4-mapped ends as IPv4.
                let mapped = |e: Endpoint| match e.addr {
                    IpAddr::V4(a) if v6 => Endpoint { addr: IpAddr::V6(a.to_ipv6_mapped()), port: e.port },
                    _ => e,
                };
                keys.insert((
                    p,
                    mapped(endpoint(l, v6).expect("a local port")),
                    r.and_then(|r| endpoint(r, v6)).map(mapped),
                ));
            }
            _ => {}
        }
    }
    keys
}

fn numbers(text: &str) -> BTreeSet<u32> {
    text.split(|c: char| !c.is_ascii_digit()).filter_map(|w| w.parse().ok()).collect()
}

fn keys_of(sockets: &[portctl::model::Socket]) -> BTreeSet<Key> {
    sockets.iter().map(|s| (s.proto, s.local_ip().unwrap(), s.remote_ip())).collect()
}

/// What one pair's two sides list, compared.
enum Seen {
    Sockets(BTreeSet<Key>),
    Pids(BTreeSet<u32>),
}

fn run_tool(pop: &Population, words: &[String]) -> Seen {
    let tool = words[0].as_str();
    let mut args: Vec<String> = words[1..].to_vec();
    match tool {
        // What ss -K would close is what it lists without -K; numbers
        // rather than service names to compare.
        "ss" => {
            args.retain(|w| w != "-K");
            args.insert(0, "-n".into());
        }
        "netstat" => args.push("-W".into()),
        "lsof" if !args.iter().any(|w| w == "-t") => args.push("-FpPtn".into()),
        "fuser" => args.retain(|w| w != "-k"),
        _ => {}
    }
    let run = output(pop.ns.command(tool).args(&args));
    // lsof and fuser exit 1 when they find nothing.
    assert!(run.code() == 0 || (tool != "ss" && tool != "netstat" && run.code() == 1), "{}", run.dump());
    match tool {
        "ss" => Seen::Sockets(read_ss(&run.stdout, &args)),
        "netstat" => Seen::Sockets(read_netstat(&run.stdout)),
        "lsof" if args.iter().any(|w| w == "-t") => Seen::Pids(numbers(&run.stdout)),
        "lsof" => Seen::Sockets(read_lsof(&run.stdout)),
        "fuser" => Seen::Pids(numbers(&run.stdout)),
        other => panic!("no reader for {other}"),
    }
}

fn run_portctl(pop: &Population, words: &[String]) -> Seen {
    let mut args: Vec<String> = words[1..].to_vec();
    let cmd = args[0].clone();
    let pids = args.iter().any(|w| w == "--pids");
    if cmd == "close" || cmd == "kill" {
        args.insert(1, "--dry-run".into());
        args.insert(1, "--json".into());
    } else if !pids {
        args.insert(1, "--json".into());
    }
    let run = Portctl::new(&args).netns(&pop.ns).run();
    assert!(run.code() <= 1 || cmd == "kill", "{}", run.dump());
    match cmd.as_str() {
        _ if pids => Seen::Pids(numbers(&run.stdout)),
        "close" => {
            let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
            let sockets: Vec<portctl::model::Socket> = v["sockets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| serde_json::from_value(c["socket"].clone()).unwrap())
                .collect();
            Seen::Sockets(keys_of(&sockets))
        }
        "kill" => {
            let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
            let reports = v.as_array().cloned().unwrap_or_else(|| vec![v.clone()]);
            let pids = reports
                .iter()
                .flat_map(|r| r["targets"].as_array().unwrap().iter().map(|t| t["pid"].as_u64().unwrap() as u32))
                .collect();
            Seen::Pids(pids)
        }
        _ => Seen::Sockets(keys_of(&run.sockets())),
    }
}

#[test]
#[ignore = "needs root"]
fn every_pair_on_the_page_agrees() {
    require_root();
    let pop = Population::new();
    let me = std::process::id().to_string();
    let user = user_name(euid());
    let pairs = pairs();
    assert!(pairs.len() >= 20, "the page lost its tables: {} pairs", pairs.len());
    let mut nonempty = 0;
    for (tool, portctl) in &pairs {
        let subst = |c: &str| split(&c.replace("PID", &me).replace("USER", &user));
        let (t, p) = (subst(tool), subst(portctl));
        match (run_tool(&pop, &t), run_portctl(&pop, &p)) {
            (Seen::Sockets(want), Seen::Sockets(got)) => {
                assert_eq!(
                    got,
                    want,
                    "`{tool}` vs `{portctl}`\nonly portctl: {:?}\nonly {}: {:?}",
                    got.difference(&want).collect::<Vec<_>>(),
                    t[0],
                    want.difference(&got).collect::<Vec<_>>()
                );
                nonempty += usize::from(!want.is_empty());
            }
            (Seen::Pids(want), Seen::Pids(got)) => {
                assert_eq!(got, want, "`{tool}` vs `{portctl}`");
                nonempty += usize::from(!want.is_empty());
            }
            _ => panic!("`{tool}` and `{portctl}` do not list the same kind of thing"),
        }
    }
    assert_eq!(nonempty, pairs.len(), "every pair lists something on the population");
}

#[test]
fn quoting_as_the_page_writes_it() {
    assert_eq!(
        split("ss -tn state established '( dport = :443 or sport = :443 )'"),
        ["ss", "-tn", "state", "established", "( dport = :443 or sport = :443 )"]
    );
    assert_eq!(pairs().len(), pairs().iter().filter(|(t, _)| !t.is_empty()).count());
}
