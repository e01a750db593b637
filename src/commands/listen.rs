//! `portctl listen`: what is bound where, by whom, and how exposed.

use std::io::Write;

use anyhow::Result;
use comfy_table::Color;

use crate::cli::{ListenArgs, ListenFormat};
use crate::inventory::{self, Owners};
use crate::model::{Exposure, Socket};
use crate::query::{self, Format, Output, Selection};
use crate::render::{self, json, prometheus, table};
use crate::report::{self, Report};

pub fn run(args: &ListenArgs, w: &mut impl Write, report: &mut Report) -> Result<i32> {
    let out = Output::from_args(&args.out_args());
    let mut sockets = gather(args, report)?;
    if args.format == Some(ListenFormat::Prometheus) {
        // The namespace portctl runs in is `netns=""` with --all-netns too:
        // its series keep their labels when the flag is added, and across
        // reboots (its inode is not stable).
        let own = crate::netns::current_inode();
        for s in &mut sockets {
            if s.netns_inode().is_some_and(|n| Some(n) == own) {
                s.netns = None;
            }
        }
        // A complete snapshot even when empty: exit 0, so that a textfile
        // writer (`... > f.tmp && mv f.tmp f`) replaces the previous one.
        prometheus::listen(w, &sockets)?;
        return Ok(report::EXIT_MATCHED);
    }
    match out.format {
        Format::Json | Format::Jsonl => json::sockets(w, &sockets, out.format)?,
        Format::Table => write_table(w, &sockets, &out, args.context)?,
    }
    Ok(report::status(!sockets.is_empty()))
}

/// The sockets `listen` shows, sorted (also one refresh of `watch listen`).
pub fn gather(args: &ListenArgs, report: &mut Report) -> Result<Vec<Socket>> {
    let sel = Selection::from_args(&args.sel);
    let q = query::listen_query(&sel, &args.port);
    let scope = query::scope(&args.ns, report)?;
    let mut inv = inventory::collect_in(&scope, &q, Owners::Resolve, Some(sort), report)?;
    let mut sockets: Vec<Socket> = inv.sockets.into_iter().filter(|s| sel.keeps(s)).collect();
    if args.context {
        inventory::attach_context(&mut sockets, &mut inv.procs);
    }
    Ok(sockets)
}

/// By port, then address, then protocol.
pub fn sort(sockets: &mut [Socket]) {
    sockets.sort_by_cached_key(|s| (s.local.port, s.local.addr, s.proto));
}

fn write_table(w: &mut impl Write, sockets: &[Socket], out: &Output, context: bool) -> std::io::Result<()> {
    let (columns, rows) = table_rows(sockets, context);
    table::write(w, &columns, rows, out)
}

/// Columns and rows of the `listen` table (also used by `watch`).
pub fn table_rows(sockets: &[Socket], context: bool) -> (Vec<table::Column>, Vec<Vec<table::Styled>>) {
    use table::{col, num};
    let mut columns = vec![
        col("PROTO"),
        col("LOCAL"),
        num("PORT"),
        col("SERVICE"),
        col("EXPOSURE"),
        col("PID"),
        col("PROCESS"),
        col("USER"),
    ];
    let rows = sockets
        .iter()
        .map(|s| {
            let (pids, names, users) = render::owner_columns(s);
            vec![
                render::proto_label(s).into(),
                render::addr(&s.local).into(),
                s.local.port.to_string().into(),
                s.service.as_deref().unwrap_or("-").into(),
                exposure_cell(s),
                pids.into(),
                names.into(),
                users.into(),
            ]
        })
        .collect::<Vec<_>>();
    let mut rows = rows;
    render::decorate(&mut columns, &mut rows, sockets, context);
    (columns, rows)
}

/// `wildcard`, `loopback`, `address(eth0)`, coloured by reach.
pub fn exposure_cell(s: &Socket) -> table::Styled {
    let text = match (&s.exposure, &s.interface) {
        (Exposure::Address, Some(ifname)) => format!("address({})", render::sanitize::escape(ifname)),
        (e, _) => e.as_str().to_string(),
    };
    let color = match s.exposure {
        Exposure::Wildcard => Color::Yellow,
        Exposure::Address => Color::Cyan,
        Exposure::Loopback => Color::Green,
    };
    table::colored(text, color)
}
