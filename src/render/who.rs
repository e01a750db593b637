//! `who`'s text: the verdict, the holders, the listeners' accept queues, the
//! other sockets on the port, other namespaces, what a new bind() would get,
//! and the hints.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};

use super::{Style, owner_columns, proto_label, sanitize};
use crate::domain::bind::{BindCheck, Outcome};
use crate::domain::nat;
use crate::domain::who::{Bind, ProcessReport, WhoReport, connected_line};
use crate::model::{Endpoint, Proto, Socket, State, longest_timer_ms};
use crate::nat::NatAction;
use crate::text::duration_ms;

/// Command lines longer than this are cut in the text (JSON keeps them).
const COMMAND_WIDTH: usize = 160;

pub fn write(w: &mut dyn Write, r: &WhoReport, st: Style) -> io::Result<()> {
    for line in &r.verdict.summary {
        st.heading(w, line)?;
    }
    if let Some(line) = connected_line(&r.connected) {
        st.line(w, &format!("connected: {line}"))?;
    }
    let target = target_label(r);
    if !r.holders.is_empty() {
        writeln!(w)?;
        st.heading(w, "holders")?;
        holders(w, r, st)?;
    }
    if let Some(l) = r.listen_backlog.as_ref().filter(|l| !l.notes.is_empty()) {
        writeln!(w)?;
        st.heading(w, "listen queue")?;
        for n in &l.notes {
            let line = format!("  {n}");
            // A full queue is the news: red when colour is on.
            if l.full.is_empty() || !n.contains("accept queue") {
                st.line(w, &line)?;
            } else {
                writeln!(w, "{}", st.paint(&line, comfy_table::Color::Red))?;
            }
        }
    }
    nat_sections(w, r, st)?;
    let others: Vec<&Socket> = r.sockets.iter().filter(|s| !matches!(s.state, State::Listen | State::Unconn)).collect();
    // A unix listener's connections are what `connected` counts already.
    if !others.is_empty() && r.spec.unix.is_none() {
        writeln!(w)?;
        st.heading(w, &format!("other sockets on {target}"))?;
        other_sockets(w, &others, st)?;
    }
    if !r.other_netns.is_empty() {
        writeln!(w)?;
        st.heading(w, "in other network namespaces")?;
        let ns_name =
            |s: &Socket| s.netns.as_ref().map(|n| sanitize::escape(&n.to_string()).into_owned()).unwrap_or_default();
        let width = r.other_netns.iter().map(|s| sanitize::width(&ns_name(s))).max().unwrap_or(0);
        for s in &r.other_netns {
            let (pids, names, _) = owner_columns(s);
            let remote = s.remote.as_ref().map(|r| format!(" -> {r}")).unwrap_or_default();
            let name = ns_name(s);
            let pad = " ".repeat(width.saturating_sub(sanitize::width(&name)));
            let (proto, state) = (proto_label(s), s.state.label());
            st.line(w, &format!("  {name}{pad}  {proto} {state} {}{remote}  {names} (pid {pids})", s.local))?;
        }
    }
    writeln!(w)?;
    st.heading(w, &format!("a new bind() on {target}"))?;
    let width = r.verdict.binds.iter().map(|b| sanitize::width(&bind_target(b))).max().unwrap_or(0);
    for b in &r.verdict.binds {
        let ok = b.plain() == Outcome::Ok;
        let plain = if ok { "ok" } else { "fails" };
        let (reuse, why) = match b {
            Bind::Ip(b) if !ok => (
                format!("  with SO_REUSEADDR: {}  with SO_REUSEPORT: {}", b.reuseaddr.as_str(), reuseport(b)),
                format!("  ({})", b.reason),
            ),
            Bind::Ip(_) => (String::new(), String::new()),
            // SO_REUSEADDR does nothing for unix sockets; the reason says
            // why it fails, or that it would create the file.
            Bind::Unix(b) => (String::new(), format!("  ({})", b.reason)),
        };
        let name = bind_target(b);
        let pad = " ".repeat(width.saturating_sub(sanitize::width(&name)));
        let line = format!("  {name}{pad}  {plain:<5}{reuse}{why}");
        st.line(w, line.trim_end())?;
    }
    if !r.hints.is_empty() {
        writeln!(w)?;
        for hint in &r.hints {
            writeln!(w, "{} {}", st.bold("hint:"), sanitize::escape(hint))?;
        }
    }
    Ok(())
}

/// Rules on the other destinations shown at most.
const OTHER_DESTINATIONS: usize = 8;

/// "published by NAT": each rule (endpoints of one service together) with
/// where it applies, whom it catches and where it is; then the rules for
/// destinations that are not this host's (service IPs), one line each.
fn nat_sections(w: &mut dyn Write, r: &WhoReport, st: Style) -> io::Result<()> {
    let rows = nat::rows(&r.nat.rules);
    if !rows.is_empty() {
        writeln!(w)?;
        st.heading(w, "published by NAT")?;
        for row in &rows {
            let f = row.first;
            let proto = f.proto.as_deref().unwrap_or("any protocol");
            let ports = f.ports.map_or_else(|| "every port".to_string(), |p| p.to_string());
            let what = match f.action {
                NatAction::Dnat => format!("DNAT to {}", row.targets.join(", ")),
                _ => nat::action_text(f),
            };
            let by = f.served_by().map(|b| format!("  {b}")).unwrap_or_default();
            st.line(w, &format!("  {proto} {ports} -> {what}{by}"))?;
            st.line(w, &format!("    to       {}", nat::reach_text(f)))?;
            st.line(w, &format!("    catches  {}", nat::who_reaches(f)))?;
            let via: Vec<String> = f.path.iter().rev().skip(1).rev().map(hop).collect();
            let via = if via.is_empty() { String::new() } else { format!(", via {}", via.join(" > ")) };
            st.line(w, &format!("    rule     {} ({}){via}", f.rule, f.source))?;
            let endpoints = row.rules.len() - 1;
            if endpoints > 0 {
                st.line(
                    w,
                    &format!(
                        "             and {endpoints} more rule{} (one per target)",
                        if endpoints == 1 { "" } else { "s" }
                    ),
                )?;
            }
            if let Some(c) = f.comment.as_deref().filter(|c| Some(*c) != f.service.as_deref()) {
                st.line(w, &format!("    comment  {c}"))?;
            }
            if !f.matches.other.is_empty() {
                st.line(w, &format!("    also     {}", f.matches.other.join(", ")))?;
            }
        }
    }
    let elsewhere: Vec<_> = r.nat.rules.iter().filter(|x| !x.on_this_host()).collect();
    if !elsewhere.is_empty() {
        writeln!(w)?;
        st.heading(w, &format!("NAT rules for other destinations on port {}", r.spec.port.unwrap_or_default()))?;
        for x in elsewhere.iter().take(OTHER_DESTINATIONS) {
            let by = x.served_by().map(|b| format!("  {b}")).unwrap_or_default();
            let proto = x.proto.as_deref().unwrap_or("any");
            st.line(
                w,
                &format!("  {proto} to {} -> {}{by}  ({})", x.matches.dst.join(","), nat::action_text(x), x.rule),
            )?;
        }
        if elsewhere.len() > OTHER_DESTINATIONS {
            writeln!(w, "  ... and {} more", elsewhere.len() - OTHER_DESTINATIONS)?;
        }
    }
    Ok(())
}

/// `PREROUTING #1`, `nat-prerouting handle 4`.
fn hop(h: &crate::nat::RuleRef) -> String {
    match (h.handle, h.position) {
        (Some(n), _) => format!("{} handle {n}", h.chain),
        (None, Some(n)) => format!("{} #{n}", h.chain),
        _ => h.chain.clone(),
    }
}

/// `ok`, `fails`, `only as uid 1000`, `only if theirs had it too, as uid 1000`.
fn reuseport(b: &BindCheck) -> String {
    match (b.reuseport, b.reuseport_uid) {
        (Outcome::OnlyAsUid, Some(u)) => format!("only as uid {u}"),
        (Outcome::OnlyIfTheirsToo, Some(u)) => format!("{}, as uid {u}", b.reuseport.as_str()),
        (o, _) => o.as_str().to_string(),
    }
}

fn holders(w: &mut dyn Write, r: &WhoReport, st: Style) -> io::Result<()> {
    for h in &r.holders {
        let up = h
            .uptime_s
            .map(|u| format!("  up {}", duration_ms(u.min(u64::from(u32::MAX) / 1000) as u32 * 1000)))
            .unwrap_or_default();
        st.line(w, &format!("  {} (pid {}, user {}){up}", h.name, h.pid, h.user))?;
        if let Some(pp) = h.ppid {
            st.line(w, &format!("    parent   {} ({})", pp, h.parent_name.as_deref().unwrap_or("?")))?;
        }
        details(w, h, "    ", st)?;
        // Listeners and bound sockets first, then by descriptor.
        let mut mine: Vec<(u8, u32, &Socket)> = r
            .sockets
            .iter()
            .filter(|s| h.sockets.contains(&s.inode))
            .map(|s| {
                let rank = u8::from(!matches!(s.state, State::Listen | State::Unconn));
                let fd = s.owners.iter().filter(|o| o.pid == h.pid).map(|o| o.fd).min().unwrap_or(0);
                (rank, fd, s)
            })
            .collect();
        mine.sort_by_key(|&(rank, fd, _)| (rank, fd));
        let held: Vec<String> = mine
            .into_iter()
            .map(|(_, _, s)| {
                let fds: Vec<String> = s.owners.iter().filter(|o| o.pid == h.pid).map(super::fd_label).collect();
                format!("{} {} {} (fd {})", proto_label(s), s.state.label(), s.local, fds.join(","))
            })
            .collect();
        for (i, s) in held.iter().take(5).enumerate() {
            st.line(w, &format!("    {}  {s}", if i == 0 { "holds  " } else { "       " }))?;
        }
        if held.len() > 5 {
            writeln!(w, "             ... and {} more", held.len() - 5)?;
        }
        for n in &h.notes {
            st.line(w, &format!("    note     {n}"))?;
        }
    }
    Ok(())
}

/// Sockets on the port that are not listening: counted per state, with
/// what each state means for the port.
fn other_sockets(w: &mut dyn Write, others: &[&Socket], st: Style) -> io::Result<()> {
    let mut by_state: BTreeMap<(Proto, State), Vec<&Socket>> = BTreeMap::new();
    for s in others {
        by_state.entry((s.proto, s.state)).or_default().push(s);
    }
    for ((proto, state), v) in by_state {
        let detail = match state {
            State::TimeWait => format!("longest expires in {}", duration_ms(longest_timer_ms(v.iter().copied()))),
            State::CloseWait => {
                let pids: BTreeSet<String> =
                    v.iter().flat_map(|s| s.owners.iter().map(|o| format!("{} ({})", o.pid, o.name))).collect();
                format!(
                    "held by {}: the peer closed, the process did not",
                    pids.into_iter().collect::<Vec<_>>().join(", ")
                )
            }
            State::Close => "bound, not listening (bind() without listen())".to_string(),
            _ => {
                let peers: Vec<String> =
                    v.iter().take(3).filter_map(|s| s.remote.as_ref().map(|r| r.to_string())).collect();
                let more = if v.len() > 3 { ", ..." } else { "" };
                format!("peers {}{more}", peers.join(", "))
            }
        };
        st.line(w, &format!("  {proto} {:<11} {:>5}  {detail}", state.label(), v.len()))?;
    }
    Ok(())
}

/// `who --pid`: the process, its ancestry, and what it holds.
pub fn write_process(w: &mut dyn Write, r: &ProcessReport, st: Style) -> io::Result<()> {
    let h = &r.holder;
    let n = r.sockets.len();
    let what = if n == 0 {
        "holds no TCP or UDP socket".to_string()
    } else {
        format!("holds {n} socket{}", crate::text::plural(n))
    };
    st.heading(w, &format!("{} (pid {}, user {}) {what}", h.name, h.pid, h.user))?;
    st.line(w, &format!("  {}", crate::domain::process::ancestry_line(&r.ancestry)))?;
    details(w, h, "  ", st)?;
    let (listening, connected): (Vec<&Socket>, Vec<&Socket>) =
        r.sockets.iter().partition(|s| matches!(s.state, State::Listen | State::Unconn | State::Close));
    for (title, v) in [("listening and bound", listening), ("connections", connected)] {
        if v.is_empty() {
            continue;
        }
        writeln!(w)?;
        st.heading(w, title)?;
        for s in v {
            let fds: Vec<String> = s.owners.iter().filter(|o| o.pid == h.pid).map(super::fd_label).collect();
            let remote = s.remote.as_ref().map(|r| format!(" -> {r}")).unwrap_or_default();
            st.line(
                w,
                &format!("  {} {} {}{remote} (fd {})", proto_label(s), s.state.label(), s.local, fds.join(",")),
            )?;
        }
    }
    for n in &h.notes {
        st.line(w, &format!("note: {n}"))?;
    }
    Ok(())
}

fn bind_target(b: &Bind) -> String {
    match b {
        Bind::Ip(b) => {
            let ep = Endpoint { addr: b.addr, port: b.port };
            let v6 = if b.v6only == Some(true) { " v6only" } else { "" };
            format!("{}/{}{v6}", ep, b.proto)
        }
        Bind::Unix(b) if b.is_abstract => format!("@{}", b.name.replace('\0', "@")),
        Bind::Unix(b) => b.name.clone(),
    }
}

/// `port 8080`, `/run/app.sock`, `@name`.
fn target_label(r: &WhoReport) -> String {
    match (&r.spec.unix, r.spec.port) {
        (Some(u), _) if u.is_abstract => format!("@{}", u.name),
        (Some(u), _) => u.name.clone(),
        (None, Some(p)) => format!("port {p}"),
        (None, None) => "it".to_string(),
    }
}

/// A holder's command, cwd, start and context lines, indented.
fn details(w: &mut dyn Write, h: &crate::domain::who::Holder, indent: &str, st: Style) -> io::Result<()> {
    if !h.cmdline.is_empty() {
        writeln!(w, "{indent}command  {}", shorten(&sanitize::escape(&h.cmdline), COMMAND_WIDTH))?;
    }
    if let Some(cwd) = &h.cwd {
        st.line(w, &format!("{indent}cwd      {cwd}"))?;
    }
    if let Some(s) = &h.started {
        st.line(w, &format!("{indent}started  {s}"))?;
    }
    if let Some(c) = &h.context {
        if let Some(u) = &c.unit {
            st.line(w, &format!("{indent}unit     {u}"))?;
        }
        if let Some(ct) = &c.container {
            let name = ct.name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
            st.line(w, &format!("{indent}container {} {}{name}", ct.runtime, crate::model::short_id(&ct.id)))?;
        }
    }
    Ok(())
}

/// At most `max` characters, with `…` when cut.
fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}
