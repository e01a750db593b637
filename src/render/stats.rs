//! `stats`' text: one titled section per part of the summary.

use std::io::{self, Write};

use super::Output;
use super::table::{self, col, num};
use crate::domain::stats::Stats;
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
