//! `stats`' text: one titled section per part of the summary.

use std::io::{self, Write};

use super::Output;
use super::table::{self, col, num};
use crate::domain::stats::{Kernel, ListenQueues, ProcessRef, Stats, UdpDrops};
use crate::text::plural;

pub fn write(w: &mut impl Write, st: &Stats, out: &Output) -> io::Result<()> {
    let style = out.style();
    let title = |w: &mut dyn Write, text: &str| style.heading(w, text);

    title(w, &format!("SOCKETS  {} in total", st.total))?;
    let mut rows = Vec::new();
    for p in &st.protocols {
        for s in st.states.iter().filter(|s| s.proto == p.proto && s.total > 0) {
            rows.push(vec![
                p.proto.as_str().into(),
                s.state.as_str().into(),
                s.ipv4.to_string().into(),
                s.ipv6.to_string().into(),
                s.total.to_string().into(),
            ]);
        }
        rows.push(vec![
            p.proto.as_str().into(),
            "(all)".into(),
            p.ipv4.to_string().into(),
            p.ipv6.to_string().into(),
            p.total.to_string().into(),
        ]);
    }
    table::write(w, &[col("PROTO"), col("STATE"), num("IPV4"), num("IPV6"), num("TOTAL")], rows, out)?;

    writeln!(w)?;
    match &st.ephemeral {
        None => title(w, "EPHEMERAL PORTS  unknown (see the warning)")?,
        Some(e) => {
            let reserved = if e.reserved.is_empty() {
                String::new()
            } else {
                let list: Vec<String> = e
                    .reserved
                    .iter()
                    .map(|r| if r.lo == r.hi { r.lo.to_string() } else { format!("{}-{}", r.lo, r.hi) })
                    .collect();
                format!(", reserved {}", list.join(","))
            };
            title(
                w,
                &format!(
                    "EPHEMERAL PORTS  range {}-{}{reserved}: {} usable; {} destination{} in use, warning above {}%",
                    e.range.lo,
                    e.range.hi,
                    e.usable,
                    e.destinations,
                    plural(e.destinations),
                    e.warn_percent
                ),
            )?;
            let rows = e
                .busiest
                .iter()
                .map(|d| {
                    let pct = format!("{:.1}%", d.percent);
                    let pct = if e.over_threshold.contains(d) {
                        table::colored(pct, comfy_table::Color::Red)
                    } else {
                        pct.into()
                    };
                    vec![d.proto.as_str().into(), d.remote.to_string().into(), d.ports.to_string().into(), pct]
                })
                .collect();
            write_or_none(w, &[col("PROTO"), col("REMOTE"), num("PORTS"), num("USED")], rows, out)?;
        }
    }

    writeln!(w)?;
    title(w, "TIME_WAIT TOP TALKERS  this host closed first; in: it had accepted, out: it had connected")?;
    let rows = st
        .time_wait_peers
        .iter()
        .map(|t| {
            vec![
                t.side.as_str().into(),
                t.peer.to_string().into(),
                t.port.to_string().into(),
                t.service.as_deref().unwrap_or("-").into(),
                t.count.to_string().into(),
            ]
        })
        .collect();
    write_or_none(w, &[col("SIDE"), col("PEER"), num("PORT"), col("SERVICE"), num("TIME_WAIT")], rows, out)?;

    if let Some(u) = &st.unix {
        writeln!(w)?;
        title(w, &format!("UNIX SOCKETS  {} in total", u.total))?;
        let rows = u
            .states
            .iter()
            .filter(|c| c.count > 0)
            .map(|c| vec![c.kind.as_str().into(), c.state.as_str().into(), c.count.to_string().into()])
            .collect();
        write_or_none(w, &[col("TYPE"), col("STATE"), num("COUNT")], rows, out)?;
    }

    writeln!(w)?;
    match &st.close_wait {
        None => title(w, "CLOSE_WAIT BY PROCESS  not looked up (--no-owners)")?,
        Some(cw) => {
            let unowned =
                if cw.unowned > 0 { format!(", {} without a visible process", cw.unowned) } else { String::new() };
            title(w, &format!("CLOSE_WAIT BY PROCESS  {} socket{}{unowned}", cw.total, plural(cw.total)))?;
            let rows = cw
                .processes
                .iter()
                .map(|p| {
                    vec![
                        p.pid.to_string().into(),
                        p.name.as_str().into(),
                        p.user.as_str().into(),
                        p.count.to_string().into(),
                    ]
                })
                .collect();
            write_or_none(w, &[num("PID"), col("PROCESS"), col("USER"), num("CLOSE_WAIT")], rows, out)?;
        }
    }
    listen_queues(w, &st.listeners, out)?;
    udp_drops(w, &st.udp_drops, out)?;
    writeln!(w)?;
    match &st.kernel {
        None => title(w, "PROBLEMS  unknown: the kernel's counters could not be read (see the warning)")?,
        Some(k) => kernel(w, k, out)?,
    }
    Ok(())
}

/// `python3 (1234)`, several joined; `-` when none is known.
fn process_cell(p: &[ProcessRef]) -> table::Styled {
    p.iter().map(|p| format!("{} ({})", p.name, p.pid)).collect::<Vec<_>>().join(", ").into()
}

/// Listeners whose accept queue is full or nearly, or whose backlog is
/// somaxconn: only when there is one.
fn listen_queues(w: &mut impl Write, l: &ListenQueues, out: &Output) -> io::Result<()> {
    if l.full.is_empty() && l.clamped.is_empty() {
        return Ok(());
    }
    let style = out.style();
    writeln!(w)?;
    let setting = |v: Option<u32>| v.map_or_else(|| "unknown".to_string(), |v| v.to_string());
    style.heading(
        w,
        &format!(
            "LISTEN QUEUES  net.core.somaxconn {}, net.ipv4.tcp_max_syn_backlog {}",
            setting(l.somaxconn),
            setting(l.tcp_max_syn_backlog)
        ),
    )?;
    let mut rows = Vec::new();
    let mut seen = Vec::new();
    for q in l.full.iter().chain(&l.clamped) {
        if seen.contains(&(q.inode, q.netns.as_ref().map(|n| n.inode))) {
            continue;
        }
        seen.push((q.inode, q.netns.as_ref().map(|n| n.inode)));
        let clamped = l.clamped.iter().any(|c| c.inode == q.inode && c.netns == q.netns);
        let mut notes = Vec::new();
        if q.accept_queue.full {
            notes.push("full: connections dropped".to_string());
        } else if q.accept_queue.near_full {
            notes.push("near full".to_string());
        }
        if clamped {
            notes.push(format!("backlog = somaxconn ({})", setting(q.somaxconn)));
        }
        let note = notes.join("; ");
        let note = if q.accept_queue.full { table::colored(note, comfy_table::Color::Red) } else { note.into() };
        rows.push(vec![
            q.local.to_string().into(),
            q.accept_queue.queued.to_string().into(),
            q.accept_queue.backlog.to_string().into(),
            note,
            process_cell(&q.processes),
        ]);
    }
    table::write(w, &[col("LOCAL"), num("QUEUED"), num("BACKLOG"), col("NOTE"), col("PROCESS")], rows, out)
}

/// UDP sockets that dropped datagrams: only when there is one.
fn udp_drops(w: &mut impl Write, drops: &[UdpDrops], out: &Output) -> io::Result<()> {
    if drops.is_empty() {
        return Ok(());
    }
    writeln!(w)?;
    out.style().heading(
        w,
        "UDP DROPS  datagrams lost on the socket: its receive buffer was full (the process reads too slowly)",
    )?;
    let rows = drops
        .iter()
        .map(|d| {
            vec![
                d.local.to_string().into(),
                table::colored(d.drops.to_string(), comfy_table::Color::Red),
                d.rmem_alloc.to_string().into(),
                d.rcvbuf.to_string().into(),
                process_cell(&d.processes),
            ]
        })
        .collect();
    table::write(w, &[col("LOCAL"), num("DROPS"), num("RMEM"), num("RCVBUF"), col("PROCESS")], rows, out)
}

/// `TcpExtListenOverflows`: the name `nstat` prints.
fn nstat_name(group: &str, name: &str) -> String {
    format!("{group}{name}")
}

/// `12.5`, `0.3`, `1200`.
fn rate(r: f64) -> String {
    if r.abs() >= 100.0 { format!("{r:.0}") } else { format!("{r:.1}") }
}

/// PROBLEMS (trouble counters that are not zero), SOCKET MEMORY and, with
/// `--interval`, every counter that changed.
fn kernel(w: &mut impl Write, k: &Kernel, out: &Output) -> io::Result<()> {
    let style = out.style();
    let secs = k.sample.as_ref().map(|s| s.interval_ms as f64 / 1000.0);
    match secs {
        None => style.heading(w, "PROBLEMS  kernel counters that signal trouble, since the namespace was created")?,
        Some(t) => style.heading(
            w,
            &format!("PROBLEMS  kernel counters that signal trouble: since the namespace was created, and in {t:.1} s"),
        )?,
    }
    let rows: Vec<Vec<table::Styled>> = k
        .problems
        .iter()
        .map(|p| {
            let rising = p.delta.is_some_and(|d| d > 0);
            let name = nstat_name(&p.group, &p.name);
            let mut row: Vec<table::Styled> = vec![
                if rising { table::colored(name, comfy_table::Color::Red) } else { name.into() },
                p.value.to_string().into(),
            ];
            if secs.is_some() {
                row.push(p.delta.map_or_else(|| "-".to_string(), |d| d.to_string()).into());
                row.push(p.per_second.map_or_else(|| "-".to_string(), rate).into());
            }
            row.push(p.means.as_str().into());
            row
        })
        .collect();
    let cols: &[table::Column] = if secs.is_some() {
        &[col("COUNTER"), num("TOTAL"), num("RISE"), num("PER-SEC"), col("MEANING")]
    } else {
        &[col("COUNTER"), num("TOTAL"), col("MEANING")]
    };
    write_or_none(w, cols, rows, out)?;

    writeln!(w)?;
    let s = &k.sockstat;
    let n = |v: Option<u64>| v.map_or_else(|| "?".to_string(), |v| v.to_string());
    let pressure = match s.tcp_memory_pressure {
        Some(true) => style.paint("YES", comfy_table::Color::Red),
        Some(false) => "no".to_string(),
        None => "unknown".to_string(),
    };
    style.heading(w, "SOCKET MEMORY  /proc/net/sockstat; memory, allocations and orphans are host-wide")?;
    let at_most = |v: Option<u64>| v.map_or_else(String::new, |m| format!(" of at most {m}"));
    style.line(
        w,
        &format!(
            "tcp: {} in use (IPv4), {} (IPv6); {} TIME_WAIT{}; {} orphans{}",
            n(s.tcp_inuse),
            n(s.tcp6_inuse),
            n(s.tcp_time_wait),
            at_most(k.tcp_max_tw_buckets),
            n(s.tcp_orphan),
            at_most(k.tcp_max_orphans)
        ),
    )?;
    let limits = k.tcp_mem.map_or_else(
        || "net.ipv4.tcp_mem unknown".to_string(),
        |m| format!("net.ipv4.tcp_mem min {}, pressure {}, max {}", m.min, m.pressure, m.max),
    );
    // `pressure` may hold colour codes: written as is, the rest escaped.
    writeln!(
        w,
        "{}{pressure}",
        super::sanitize::escape(&format!("tcp memory: {} pages; {limits}; under pressure: ", n(s.tcp_mem_pages)))
    )?;
    style.line(
        w,
        &format!(
            "udp: {} in use (IPv4), {} (IPv6); memory {} pages",
            n(s.udp_inuse),
            n(s.udp6_inuse),
            n(s.udp_mem_pages)
        ),
    )?;

    if let (Some(sample), Some(t)) = (&k.sample, secs) {
        writeln!(w)?;
        style.heading(w, &format!("KERNEL COUNTERS  those that changed in {t:.1} s (as nstat shows them)"))?;
        let mut rows = Vec::new();
        for g in &sample.deltas.groups {
            for (name, d) in g.values.iter().filter(|(_, d)| *d != 0) {
                let total = k.counters.get(&g.name, name).map_or_else(|| "-".to_string(), |v| v.to_string());
                rows.push(vec![
                    nstat_name(&g.name, name).into(),
                    total.into(),
                    d.to_string().into(),
                    if t > 0.0 { rate(*d as f64 / t) } else { "-".to_string() }.into(),
                ]);
            }
        }
        write_or_none(w, &[col("COUNTER"), num("TOTAL"), num("RISE"), num("PER-SEC")], rows, out)?;
    }
    Ok(())
}

fn write_or_none(
    w: &mut impl Write,
    cols: &[table::Column],
    rows: Vec<Vec<table::Styled>>,
    out: &Output,
) -> io::Result<()> {
    if rows.is_empty() { writeln!(w, "(none)") } else { table::write(w, cols, rows, out) }
}
