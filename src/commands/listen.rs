//! `portctl listen`: what is bound where, by whom, and how exposed.

use std::io::Write;

use anyhow::Result;
use comfy_table::Color;

use crate::cli::ListenArgs;
use crate::inventory::{self, Owners};
use crate::model::{Exposure, Socket};
use crate::query::{self, Format, Output, Selection};
use crate::render::{self, json, table};
use crate::report::{self, Report};

pub fn run(args: &ListenArgs, w: &mut impl Write, report: &mut Report) -> Result<i32> {
    let sel = Selection::from_args(&args.sel);
    let out = Output::from_args(&args.out);
    let q = query::listen_query(&sel, &args.port);
    let inv = inventory::collect(&q, Owners::Resolve, report)?;
    let mut sockets: Vec<Socket> = inv.sockets.into_iter().filter(|s| sel.keeps(s)).collect();
    sort(&mut sockets);
    match out.format {
        Format::Json | Format::Jsonl => json::records(w, &sockets, out.format)?,
        Format::Table => write_table(w, &sockets, &out)?,
    }
    Ok(report::status(!sockets.is_empty()))
}

/// By port, then address, then protocol.
pub fn sort(sockets: &mut [Socket]) {
    sockets.sort_by_key(|s| (s.local.port, s.local.addr, s.proto));
}

fn write_table(w: &mut impl Write, sockets: &[Socket], out: &Output) -> std::io::Result<()> {
    use table::{col, num};
    let columns = [
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
        .collect();
    table::write(w, &columns, rows, out)
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
