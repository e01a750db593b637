//! `portctl who SPEC`: who holds a port, what a new bind() would get, and
//! what to do about it.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::cli::WhoArgs;
use crate::commands::stats::{self, PortSpan};
use crate::diagnose::{self, BindCheck, Outcome};
use crate::inventory::{self, Owners, Scope, plural};
use crate::model::{Proto, Socket, State, StateSet};
use crate::netns::{self, Netns};
use crate::procs::context::Context;
use crate::query::{self, Output};
use crate::render::{self, sanitize::escape};
use crate::report::{self, Report};
use crate::services;

/// The JSON answer (`who --json`), documented in docs/json.md.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhoReport {
    pub spec: SpecOut,
    pub verdict: Verdict,
    pub holders: Vec<Holder>,
    /// Every socket on the port, any state, in the namespace asked about.
    pub sockets: Vec<Socket>,
    /// Sockets on the port in other network namespaces (each with `netns`):
    /// they never block a bind here, but answer "my container listens on it".
    pub other_netns: Vec<Socket>,
    pub hints: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecOut {
    pub port: u16,
    pub protos: Vec<Proto>,
    pub addr: Option<IpAddr>,
    pub service: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verdict {
    /// Some process holds a socket on the port (any state; TIME_WAIT does
    /// not count: no process holds it). With an address in the spec, only
    /// sockets that would conflict with that address count.
    pub in_use: bool,
    /// The verdict lines, one per protocol.
    pub summary: Vec<String>,
    /// What a new bind() would get on each candidate address.
    pub binds: Vec<BindCheck>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Holder {
    pub pid: u32,
    pub name: String,
    pub user: String,
    pub cmdline: String,
    /// Start time, RFC 3339 UTC.
    pub started: Option<String>,
    pub uptime_s: Option<u64>,
    pub cwd: Option<String>,
    pub ppid: Option<u32>,
    pub parent_name: Option<String>,
    pub context: Option<Context>,
    /// Inodes of the sockets on this port it holds.
    pub sockets: Vec<u64>,
    /// Why this process may not be the one that created the socket.
    pub notes: Vec<String>,
}

pub fn run(args: &WhoArgs, w: &mut impl Write, report: &mut Report) -> Result<i32> {
    let spec = &args.spec;
    let port = query::resolve_port(spec)?;
    let protos = query::spec_protos(spec);
    let q = query::port_query(port, &protos, StateSet::all(), true);
    // The namespace asked about decides the verdict; every other namespace
    // we can enter is looked at too, for "it is free here, but ...".
    let main = match &args.ns.netns {
        Some(spec) => Netns::open(spec)?,
        None => Netns::current().map_err(|e| anyhow::anyhow!("cannot open /proc/thread-self/ns/net: {e}"))?,
    };
    let others: Vec<Netns> = netns::discover().0.into_iter().filter(|n| n.id.inode != main.id.inode).collect();
    let main_inode = main.id.inode;
    // Per-namespace sysctls (bindv6only, port ranges) are read from inside it.
    let sys = main.run(Sysctls::read)?;
    let scope = Scope::WithOthers(main, others);
    let mut inv = inventory::collect_in(&scope, &q, Owners::Resolve, Some(crate::commands::listen::sort), report)?;
    let (sockets, other_netns): (Vec<Socket>, Vec<Socket>) =
        inv.sockets.into_iter().partition(|s| s.netns.as_ref().is_none_or(|n| n.inode == main_inode));

    let holders = holders(&sockets, &mut inv.procs);
    let mut binds = Vec::new();
    for &proto in &protos {
        for addr in candidates(spec.addr) {
            binds.push(diagnose::check(proto, addr, port, sys.bindv6only, &sockets));
        }
    }
    let in_use = sockets.iter().any(|s| !s.is_unowned_by_nature() && blocks_asked(s, spec.addr, &binds));
    let summary = protos.iter().map(|&p| verdict_line(p, port, spec.addr, &sockets, &binds)).collect();
    let mut hints = hints(port, &protos, &sockets, &holders, &binds, &sys);
    hints.extend(netns_hints(port, &sockets, &other_netns, &inv.unreadable_netns));
    let out = WhoReport {
        spec: SpecOut {
            port,
            protos,
            addr: spec.addr,
            service: services::name(spec.proto.unwrap_or(Proto::Tcp), port).map(str::to_string),
        },
        verdict: Verdict { in_use, summary, binds },
        holders,
        sockets,
        other_netns,
        hints,
    };
    if args.json {
        render::json::object(w, &out)?;
    } else {
        write_text(w, &out, &Output::from_args(&args.out_args()))?;
    }
    Ok(report::status(in_use))
}

/// The addresses a server would usually try, plus the one asked about.
fn candidates(asked: Option<IpAddr>) -> Vec<IpAddr> {
    let mut v =
        vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED), IpAddr::V6(Ipv6Addr::UNSPECIFIED), IpAddr::V4(Ipv4Addr::LOCALHOST)];
    if let Some(a) = asked {
        if !v.contains(&a) {
            v.push(a);
        }
    }
    v
}

/// One entry per process, in pid order, with what may explain why it holds
/// a socket it did not open.
fn holders(sockets: &[Socket], procs: &mut crate::procs::ProcTable) -> Vec<Holder> {
    let mut by_pid: BTreeMap<u32, Vec<&Socket>> = BTreeMap::new();
    for s in sockets {
        for o in &s.owners {
            let v = by_pid.entry(o.pid).or_default();
            if !v.iter().any(|x| x.inode == s.inode) {
                v.push(s);
            }
        }
    }
    let mut out = Vec::new();
    for (&pid, socks) in &by_pid {
        let info = procs.info(pid);
        let extra = procs.extra(pid);
        let parent = info.ppid.filter(|&p| p != 0).map(|p| procs.info(p));
        let mut notes = Vec::new();
        let parent_holds = |s: &Socket| parent.as_ref().is_some_and(|p| s.owners.iter().any(|o| o.pid == p.pid));
        if let Some(p) = &parent {
            if socks.iter().any(|s| parent_holds(s)) {
                notes.push(format!("inherited from its parent {} (pid {}), which holds it too", p.name, p.pid));
            }
        }
        if let Some(s) = socks.iter().find(|s| info.uid.is_some_and(|u| u != s.uid)) {
            notes.push(format!(
                "{} was created by uid {} ({}), not by this process's user: inherited (fork/exec or a privilege drop)",
                s.local,
                s.uid,
                procs.user(s.uid)
            ));
        }
        let listens = socks.iter().any(|s| s.state == State::Listen);
        let is_service =
            extra.context.as_ref().and_then(|c| c.unit.as_deref()).is_some_and(|u| u.ends_with(".service"));
        if listens && info.ppid == Some(1) && !is_service && !socks.iter().any(|s| parent_holds(s)) {
            let init = parent.as_ref().map_or("init".to_string(), |p| p.name.to_string());
            notes.push(format!(
                "its parent is pid 1 ({init}): if the server that opened this socket has exited, this process kept it"
            ));
        }
        if let Some((ip, cport)) = crate::procs::context::proxy_target(&info.cmdline) {
            let target = crate::model::Endpoint { addr: ip, port: cport };
            let container = procs.runtimes().docker_by_ip(ip);
            notes.push(match container {
                Some((id, name)) => format!(
                    "a userland proxy: traffic goes to container {} ({}) at {target}",
                    if name.is_empty() { "?" } else { &name },
                    &id[..id.len().min(12)]
                ),
                None => format!("a userland proxy: traffic goes to {target} (a container's address)"),
            });
        }
        out.push(Holder {
            pid,
            name: info.name.to_string(),
            user: info.user.to_string(),
            cmdline: info.cmdline.to_string(),
            started: extra.started,
            uptime_s: extra.uptime_s,
            cwd: extra.cwd,
            ppid: info.ppid,
            parent_name: parent.map(|p| p.name.to_string()),
            context: extra.context,
            sockets: socks.iter().map(|s| s.inode).collect(),
            notes,
        });
    }
    out
}

/// Whether `s` counts for the spec: every socket on the port when no address
/// was asked about, else those that would block a bind on that address.
fn blocks_asked(s: &Socket, asked: Option<IpAddr>, binds: &[BindCheck]) -> bool {
    asked.is_none_or(|a| binds.iter().any(|b| b.addr == a && b.blocked_by.contains(&s.inode)))
}

/// `8080/tcp is in use: node (pid 12345, user app) listens on 127.0.0.1:8080`.
fn verdict_line(proto: Proto, port: u16, asked: Option<IpAddr>, sockets: &[Socket], binds: &[BindCheck]) -> String {
    let mine: Vec<&Socket> = sockets.iter().filter(|s| s.proto == proto && blocks_asked(s, asked, binds)).collect();
    let target = match asked {
        Some(a) => format!("{}/{proto}", crate::model::Endpoint { addr: a, port }),
        None => format!("{port}/{proto}"),
    };
    let held: Vec<&&Socket> = mine.iter().filter(|s| !s.is_unowned_by_nature()).collect();
    let rank = |s: &Socket| match s.state {
        State::Listen => 0,
        State::Unconn => 1,
        State::Close => 2,
        _ => 3,
    };
    if let Some(s) = held.iter().min_by_key(|s| rank(s)) {
        let who = match s.owners.first() {
            Some(o) => {
                let n = s.owners.iter().map(|o| o.pid).collect::<std::collections::BTreeSet<_>>().len();
                let others = if n > 1 {
                    format!(" and {} more process{}", n - 1, if n == 2 { "" } else { "es" })
                } else {
                    String::new()
                };
                format!("{} (pid {}, user {}){others}", escape(&o.name), o.pid, escape(&o.user))
            }
            None if s.owners_hidden => "a process you may not inspect (try sudo)".to_string(),
            None => "no visible process (another PID namespace, or the kernel)".to_string(),
        };
        let what = match s.state {
            State::Listen => format!("listens on {}", s.local),
            State::Unconn => format!("is bound to {}", s.local),
            State::Close => format!("has bound {} without listening", s.local),
            _ => format!("has a connection {} -> {}", s.local, s.remote.map_or("?".to_string(), |r| r.to_string())),
        };
        let extra = held.len() - 1;
        let more = if extra > 0 { format!(" (+{extra} more socket{})", plural(extra)) } else { String::new() };
        return format!("{target} is in use: {who} {what}{more}");
    }
    let tw: Vec<&&Socket> = mine.iter().filter(|s| s.state == State::TimeWait).collect();
    if !tw.is_empty() {
        let longest = crate::model::longest_timer_ms(tw.iter().map(|s| **s));
        return format!(
            "{target} is not in use, but {} TIME_WAIT socket{} remain{} for up to {}: a bind without SO_REUSEADDR fails until then",
            tw.len(),
            plural(tw.len()),
            if tw.len() == 1 { "s" } else { "" },
            render::duration_ms(longest)
        );
    }
    format!("{target} is free")
}

/// Kernel settings that change the advice (read inside the namespace asked
/// about: these sysctls are per network namespace).
struct Sysctls {
    bindv6only: bool,
    unprivileged_port_start: u16,
    /// The ephemeral range and reserved ports, parsed as `stats` does; the
    /// kernel's defaults when unreadable.
    local_range: PortSpan,
    reserved: Vec<PortSpan>,
}

impl Sysctls {
    fn read() -> Sysctls {
        let read = |p: &str| std::fs::read_to_string(format!("/proc/sys/net/{p}")).unwrap_or_default();
        let (local_range, reserved) =
            stats::ephemeral_settings().unwrap_or((PortSpan { lo: 32768, hi: 60999 }, Vec::new()));
        Sysctls {
            bindv6only: read("ipv6/bindv6only").trim() == "1",
            unprivileged_port_start: read("ipv4/ip_unprivileged_port_start").trim().parse().unwrap_or(1024),
            local_range,
            reserved,
        }
    }
}

fn hints(
    port: u16,
    protos: &[Proto],
    sockets: &[Socket],
    holders: &[Holder],
    binds: &[BindCheck],
    sys: &Sysctls,
) -> Vec<String> {
    let mut h = Vec::new();
    let listeners: Vec<&Socket> = sockets.iter().filter(|s| matches!(s.state, State::Listen | State::Unconn)).collect();
    for g in diagnose::reuseport_groups(sockets) {
        let pids: Vec<String> = g.iter().flat_map(|s| s.owners.iter().map(|o| o.pid.to_string())).collect();
        h.push(format!(
            "{} {} sockets share {} with SO_REUSEPORT (pids {}): a new member can join only with SO_REUSEPORT set and as the same user (uid {})",
            g.len(),
            g[0].proto,
            g[0].local,
            if pids.is_empty() { "hidden".to_string() } else { pids.join(",") },
            g[0].uid
        ));
    }
    if !listeners.is_empty() {
        let pids: Vec<String> = listeners
            .iter()
            .flat_map(|s| s.owners.iter().map(|o| o.pid))
            .collect::<std::collections::BTreeSet<_>>()
            .iter()
            .map(u32::to_string)
            .collect();
        let unit = holders
            .iter()
            .find_map(|hd| hd.context.as_ref().and_then(|c| c.unit.clone()))
            .filter(|u| u.ends_with(".service"));
        match (pids.is_empty(), unit) {
            (true, _) => h.push("the holder is hidden from you: run `sudo portctl who` to see it".to_string()),
            (false, Some(u)) => {
                h.push(format!("stop it with `systemctl stop {u}` (or `kill {}`), or use another port", pids.join(" ")))
            }
            (false, None) => h.push(format!("free it with `kill {}`, or use another port", pids.join(" "))),
        }
    }
    let connections = sockets
        .iter()
        .filter(|s| !matches!(s.state, State::Listen | State::Unconn | State::TimeWait) && s.proto == Proto::Tcp)
        .count();
    let blocked_by_conn_only =
        binds.iter().any(|b| b.plain == Outcome::Fails && b.reuseaddr == Outcome::OnlyIfTheirsToo);
    let tw: Vec<&Socket> = sockets.iter().filter(|s| s.state == State::TimeWait).collect();
    if blocked_by_conn_only && !tw.is_empty() {
        let longest = crate::model::longest_timer_ms(tw.iter().copied());
        h.push(format!(
            "TIME_WAIT: set SO_REUSEADDR before bind() — it works only if the old server set it too (its TIME_WAIT sockets inherit the flag); otherwise wait {}",
            render::duration_ms(longest)
        ));
    }
    if blocked_by_conn_only && listeners.is_empty() && connections > 0 {
        h.push(format!(
            "{connections} connection{} still use{} port {port} locally: SO_REUSEADDR helps only if they had it too; close them or bind another port",
            plural(connections),
            if connections == 1 { "s" } else { "" }
        ));
    }
    let close_wait = sockets.iter().filter(|s| s.state == State::CloseWait).count();
    if close_wait > 0 {
        h.push(format!(
            "{close_wait} socket{} in CLOSE_WAIT: the peer closed and the holder never did — a leak in that program",
            plural(close_wait)
        ));
    }
    let free = binds.iter().all(|b| b.plain == Outcome::Ok);
    if free {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        if port < sys.unprivileged_port_start && !root {
            h.push(format!(
                "port {port} is below net.ipv4.ip_unprivileged_port_start ({}): binding it needs root or CAP_NET_BIND_SERVICE",
                sys.unprivileged_port_start
            ));
        }
        let PortSpan { lo, hi } = sys.local_range;
        if sys.local_range.contains(port) && protos.contains(&Proto::Tcp) {
            if sys.reserved.iter().any(|r| r.contains(port)) {
                h.push(format!("port {port} is in the ephemeral range {lo}-{hi} but reserved (net.ipv4.ip_local_reserved_ports): outgoing connections will not take it"));
            } else {
                h.push(format!(
                    "port {port} is in the ephemeral range {lo}-{hi}: an outgoing connection may take it before your server starts; add it to net.ipv4.ip_local_reserved_ports"
                ));
            }
        }
    }
    h
}

/// What the other namespaces add: the port is taken elsewhere, or could not
/// be checked elsewhere.
fn netns_hints(port: u16, here: &[Socket], others: &[Socket], unreadable: &[String]) -> Vec<String> {
    let mut h = Vec::new();
    let listening_here = here.iter().any(|s| matches!(s.state, State::Listen | State::Unconn));
    let elsewhere: Vec<&Socket> = others.iter().filter(|s| matches!(s.state, State::Listen | State::Unconn)).collect();
    if let Some(s) = elsewhere.first() {
        let who =
            s.owners.first().map(|o| format!("{} (pid {})", escape(&o.name), o.pid)).unwrap_or("a process".into());
        let ns = s.netns.as_ref().map(|n| n.to_string()).unwrap_or_default();
        let more = if elsewhere.len() > 1 { format!(" and {} more", elsewhere.len() - 1) } else { String::new() };
        h.push(format!(
            "{}{who} listens on {} in network namespace {ns}{more}: another namespace's port never blocks a bind here; reach it through that namespace's addresses or port mapping",
            if listening_here { "" } else { "free here, but " },
            s.local
        ));
    }
    if !unreadable.is_empty() {
        h.push(format!(
            "could not look into {} other network namespace{} (run as root to check whether port {port} is used there)",
            unreadable.len(),
            plural(unreadable.len())
        ));
    }
    h
}

fn write_text(w: &mut impl Write, r: &WhoReport, out: &Output) -> std::io::Result<()> {
    let bold = |s: &str| if out.color { format!("\x1b[1m{s}\x1b[0m") } else { s.to_string() };
    for line in &r.verdict.summary {
        writeln!(w, "{}", bold(line))?;
    }
    if !r.holders.is_empty() {
        writeln!(w, "\n{}", bold("holders"))?;
        for h in &r.holders {
            let up = h
                .uptime_s
                .map(|u| format!("  up {}", render::duration_ms(u.min(u32::MAX as u64 / 1000) as u32 * 1000)))
                .unwrap_or_default();
            writeln!(w, "  {} (pid {}, user {}){up}", escape(&h.name), h.pid, escape(&h.user))?;
            if let Some(pp) = h.ppid {
                writeln!(w, "    parent   {} ({})", pp, escape(h.parent_name.as_deref().unwrap_or("?")))?;
            }
            if !h.cmdline.is_empty() {
                writeln!(w, "    command  {}", shorten(&escape(&h.cmdline), 160))?;
            }
            if let Some(cwd) = &h.cwd {
                writeln!(w, "    cwd      {}", escape(cwd))?;
            }
            if let Some(s) = &h.started {
                writeln!(w, "    started  {s}")?;
            }
            if let Some(c) = &h.context {
                if let Some(u) = &c.unit {
                    writeln!(w, "    unit     {}", escape(u))?;
                }
                if let Some(ct) = &c.container {
                    let short = &ct.id[..ct.id.len().min(12)];
                    let name = ct.name.as_deref().map(|n| format!(" ({})", escape(n))).unwrap_or_default();
                    writeln!(w, "    container {} {}{name}", ct.runtime, escape(short))?;
                }
            }
            let held: Vec<String> = r
                .sockets
                .iter()
                .filter(|s| h.sockets.contains(&s.inode))
                .map(|s| {
                    let fds: Vec<String> =
                        s.owners.iter().filter(|o| o.pid == h.pid).map(|o| o.fd.to_string()).collect();
                    format!("{} {} {} (fd {})", render::proto_label(s), s.state.label(), s.local, fds.join(","))
                })
                .collect();
            for (i, s) in held.iter().take(5).enumerate() {
                writeln!(w, "    {}  {s}", if i == 0 { "holds  " } else { "       " })?;
            }
            if held.len() > 5 {
                writeln!(w, "             ... and {} more", held.len() - 5)?;
            }
            for n in &h.notes {
                writeln!(w, "    note     {}", escape(n))?;
            }
        }
    }
    let others: Vec<&Socket> = r.sockets.iter().filter(|s| !matches!(s.state, State::Listen | State::Unconn)).collect();
    if !others.is_empty() {
        writeln!(w, "\n{}", bold(&format!("other sockets on port {}", r.spec.port)))?;
        let mut by_state: BTreeMap<(Proto, State), Vec<&Socket>> = BTreeMap::new();
        for s in others {
            by_state.entry((s.proto, s.state)).or_default().push(s);
        }
        for ((proto, state), v) in by_state {
            let detail = match state {
                State::TimeWait => {
                    let longest = crate::model::longest_timer_ms(v.iter().copied());
                    format!("longest expires in {}", render::duration_ms(longest))
                }
                State::CloseWait => {
                    let pids: std::collections::BTreeSet<String> = v
                        .iter()
                        .flat_map(|s| s.owners.iter().map(|o| format!("{} ({})", o.pid, escape(&o.name))))
                        .collect();
                    format!(
                        "held by {}: the peer closed, the process did not",
                        pids.into_iter().collect::<Vec<_>>().join(", ")
                    )
                }
                State::Close => "bound, not listening (bind() without listen())".to_string(),
                _ => {
                    let peers: Vec<String> = v.iter().take(3).filter_map(|s| s.remote.map(|r| r.to_string())).collect();
                    let more = if v.len() > 3 { ", ..." } else { "" };
                    format!("peers {}{more}", peers.join(", "))
                }
            };
            writeln!(w, "  {proto} {:<11} {:>5}  {detail}", state.label(), v.len())?;
        }
    }
    if !r.other_netns.is_empty() {
        writeln!(w, "\n{}", bold("in other network namespaces"))?;
        let ns_name = |s: &Socket| s.netns.as_ref().map(|n| escape(&n.to_string()).into_owned()).unwrap_or_default();
        let width = r.other_netns.iter().map(|s| ns_name(s).chars().count()).max().unwrap_or(0);
        for s in &r.other_netns {
            let (pids, names, _) = render::owner_columns(s);
            let remote = s.remote.map(|r| format!(" -> {r}")).unwrap_or_default();
            let (proto, state) = (render::proto_label(s), s.state.label());
            writeln!(w, "  {:<width$}  {proto} {state} {}{remote}  {names} (pid {pids})", ns_name(s), s.local)?;
        }
    }
    writeln!(w, "\n{}", bold(&format!("a new bind() on port {}", r.spec.port)))?;
    let width = r.verdict.binds.iter().map(|b| bind_target(b).len()).max().unwrap_or(0);
    for b in &r.verdict.binds {
        let plain = match b.plain {
            Outcome::Ok => "ok".to_string(),
            _ => "fails".to_string(),
        };
        let reuse = if b.plain == Outcome::Ok {
            String::new()
        } else {
            format!("  with SO_REUSEADDR: {}", b.reuseaddr.as_str())
        };
        let why = if b.plain == Outcome::Ok { String::new() } else { format!("  ({})", escape(&b.reason)) };
        let line = format!("  {:<width$}  {plain:<5}{reuse}{why}", bind_target(b));
        writeln!(w, "{}", line.trim_end())?;
    }
    if !r.hints.is_empty() {
        writeln!(w)?;
        for hint in &r.hints {
            writeln!(w, "{} {}", bold("hint:"), escape(hint))?;
        }
    }
    Ok(())
}

fn bind_target(b: &BindCheck) -> String {
    let ep = crate::model::Endpoint { addr: b.addr, port: b.port };
    let v6 = match b.v6only {
        Some(true) => " v6only",
        _ => "",
    };
    format!("{}/{}{v6}", ep, b.proto)
}

/// At most `max` characters, with `…` when cut (the JSON keeps it whole).
fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}
