//! The `listen` table (also `watch listen`'s).

use std::io::{self, Write};

use comfy_table::Color;

use super::table::{self, col, num};
use super::{Output, owner_columns};
use crate::model::{Exposure, Socket};

pub fn write(w: &mut impl Write, sockets: &[Socket], out: &Output, context: bool) -> io::Result<()> {
    let (columns, rows) = rows(sockets, context);
    table::write(w, &columns, rows, out)
}

/// Columns and rows of the table.
pub fn rows(sockets: &[Socket], context: bool) -> (Vec<table::Column>, Vec<Vec<table::Styled>>) {
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
    let mut rows = sockets
        .iter()
        .map(|s| {
            let (pids, names, users) = owner_columns(s);
            vec![
                super::proto_label(s).into(),
                super::addr(&s.local).into(),
                s.local_ip().map_or_else(|| "-".to_string(), |e| e.port.to_string()).into(),
                s.service.as_deref().unwrap_or("-").into(),
                exposure_cell(s),
                pids.into(),
                names.into(),
                users.into(),
            ]
        })
        .collect::<Vec<_>>();
    super::accept_queue_column(&mut columns, &mut rows, sockets);
    super::drops_column(&mut columns, &mut rows, sockets);
    super::decorate(&mut columns, &mut rows, sockets, context);
    (columns, rows)
}

/// `wildcard`, `loopback`, `address(eth0)`, coloured by reach.
pub(super) fn exposure_cell(s: &Socket) -> table::Styled {
    let text = match (&s.exposure, &s.interface) {
        (Exposure::Address, Some(ifname)) => format!("address({ifname})"),
        (e, _) => e.as_str().to_string(),
    };
    let color = match s.exposure {
        Exposure::Wildcard => Color::Yellow,
        Exposure::Address => Color::Cyan,
        Exposure::Loopback => Color::Green,
    };
    table::colored(text, color)
}
