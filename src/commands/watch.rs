//! `portctl watch [listen|conns ...]`: the query again every interval; on a
//! terminal the table is redrawn in place with new sockets marked `+` and
//! vanished ones `-` for one refresh; `--events` prints one JSON line per
//! change instead.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::time::Instant;

use anyhow::Result;
use clap::Parser;
use comfy_table::Color;
use serde::Serialize;

use crate::cli::{ListenArgs, WatchArgs, WatchWhat};
use crate::commands::{conns, listen};
use crate::model::{Endpoint, Proto, Socket, State};
use crate::query::Output;
use crate::render::table::{self, Styled};
use crate::report::{EXIT_MATCHED, Report};

/// What identifies one socket across refreshes. The state is not part of
/// it, so a connection moving from ESTABLISHED to CLOSE_WAIT is a "state"
/// event, not a removal and an addition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    netns: u64,
    proto: Proto,
    local: (IpAddr, u16),
    remote: Option<(IpAddr, u16)>,
    inode: u64,
}

fn key(s: &Socket) -> Key {
    let ep = |e: &Endpoint| (e.addr, e.port);
    Key {
        netns: s.netns.as_ref().map_or(0, |n| n.inode),
        proto: s.proto,
        local: ep(&s.local),
        remote: s.remote.as_ref().map(ep),
        inode: s.inode,
    }
}

/// One `--events` line.
#[derive(Debug, Serialize)]
struct Event<'a> {
    event: &'static str,
    /// For "state": the state before.
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<State>,
    socket: &'a Socket,
}

/// A default `listen` query when `watch` is given no subcommand.
#[derive(Parser)]
struct DefaultListen {
    #[command(flatten)]
    args: ListenArgs,
}

pub fn run(args: &WatchArgs, w: &mut impl Write, report: &mut Report) -> Result<i32> {
    let default;
    let what = match &args.what {
        Some(w) => w,
        None => {
            default = WatchWhat::Listen(DefaultListen::parse_from(["listen"]).args);
            &default
        }
    };
    let out = match what {
        WatchWhat::Listen(a) => Output::from_args(&a.out_args()),
        WatchWhat::Conns(a) => Output::from_args(&a.out),
    };
    // watch draws tables or prints events; other formats would be ignored.
    let other_format = match what {
        WatchWhat::Listen(a) => a.format.is_some() || a.out.json || a.out.jsonl,
        WatchWhat::Conns(a) => a.out.json || a.out.jsonl,
    };
    if other_format {
        return Err(
            crate::error::UserError::new("watch shows a table; for JSON use `portctl watch --events ...`").into()
        );
    }
    let mut prev: Option<BTreeMap<Key, Socket>> = None;
    let mut refreshes = 0u64;
    loop {
        let started = Instant::now();
        let sockets = match what {
            WatchWhat::Listen(a) => listen::gather(a, report)?,
            WatchWhat::Conns(a) => conns::gather(a, report)?,
        };
        // Warnings (hidden owners) once, on stderr, not every refresh.
        report.flush();
        let now: BTreeMap<Key, Socket> = sockets.into_iter().map(|s| (key(&s), s)).collect();
        match &prev {
            None if args.events => {}
            None => redraw(w, what, &now, &BTreeMap::new(), &[], &out, args, true)?,
            Some(before) => {
                if args.events {
                    events(w, before, &now)?;
                } else {
                    let gone: Vec<Socket> =
                        before.iter().filter(|(k, _)| !now.contains_key(k)).map(|(_, s)| s.clone()).collect();
                    redraw(w, what, &now, before, &gone, &out, args, false)?;
                }
            }
        }
        w.flush()?;
        prev = Some(now);
        refreshes += 1;
        if args.count.is_some_and(|c| refreshes >= c) {
            break;
        }
        std::thread::sleep(args.interval.0.saturating_sub(started.elapsed()));
    }
    Ok(EXIT_MATCHED)
}

fn events(w: &mut impl Write, before: &BTreeMap<Key, Socket>, now: &BTreeMap<Key, Socket>) -> std::io::Result<()> {
    let mut line = |e: &Event| -> std::io::Result<()> {
        serde_json::to_writer(&mut *w, e)?;
        w.write_all(b"\n")
    };
    for (k, s) in before {
        if !now.contains_key(k) {
            line(&Event { event: "removed", from: None, socket: s })?;
        }
    }
    for (k, s) in now {
        match before.get(k) {
            None => line(&Event { event: "added", from: None, socket: s })?,
            Some(old) if old.state != s.state => line(&Event { event: "state", from: Some(old.state), socket: s })?,
            _ => {}
        }
    }
    Ok(())
}

/// The table with a leading column: `+` new since the last refresh, `~`
/// changed state, `-` gone (shown once). On a terminal the screen is cleared
/// first, so the table stays in place; piped, refreshes follow each other.
#[allow(clippy::too_many_arguments)]
fn redraw(
    w: &mut impl Write,
    what: &WatchWhat,
    now: &BTreeMap<Key, Socket>,
    before: &BTreeMap<Key, Socket>,
    gone: &[Socket],
    out: &Output,
    args: &WatchArgs,
    first: bool,
) -> std::io::Result<()> {
    let mut shown: Vec<Socket> = now.values().cloned().collect();
    let marks: Vec<&'static str> = now
        .iter()
        .map(|(k, s)| match before.get(k) {
            None if !first => "+",
            Some(old) if old.state != s.state => "~",
            _ => "",
        })
        .chain(gone.iter().map(|_| "-"))
        .collect();
    shown.extend(gone.iter().cloned());
    let (mut columns, rows) = match what {
        WatchWhat::Listen(a) => listen::table_rows(&shown, a.context),
        WatchWhat::Conns(a) => conns::table_rows(&shown, a.extended, a.context),
    };
    columns.insert(0, table::col(" "));
    let rows: Vec<Vec<Styled>> = rows
        .into_iter()
        .zip(&marks)
        .map(|(mut row, &m)| {
            let color = match m {
                "+" => Some(Color::Green),
                "-" => Some(Color::Red),
                "~" => Some(Color::Yellow),
                _ => None,
            };
            if let Some(c) = color {
                for cell in row.iter_mut() {
                    cell.color = Some(c);
                }
            }
            row.insert(0, Styled { text: m.to_string(), color });
            row
        })
        .collect();
    if out.terminal {
        write!(w, "\x1b[H\x1b[2J")?;
    }
    let name = match what {
        WatchWhat::Listen(_) => "listen",
        WatchWhat::Conns(_) => "conns",
    };
    let added = marks.iter().filter(|m| **m == "+").count();
    writeln!(
        w,
        "every {:.1}s: portctl {name}: {} socket{} (+{added} -{})",
        args.interval.0.as_secs_f64(),
        now.len(),
        if now.len() == 1 { "" } else { "s" },
        gone.len()
    )?;
    if rows.is_empty() {
        return writeln!(w, "(none)");
    }
    table::write(w, &columns, rows, out)
}
