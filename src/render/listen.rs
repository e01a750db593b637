//! The `listen` tables (also `watch listen`'s): one per kind of socket
//! present, each with the columns that kind has — IP (TCP, UDP), raw and
//! ICMP, unix, packet — one after the other, a blank line apart.

use std::io::{self, Write};

use comfy_table::Color;

use super::table::{self, col, num};
use super::{Group, Output, owner_columns};
use crate::model::{Exposure, Socket, State};

pub fn write(w: &mut impl Write, sockets: &[Socket], out: &Output, context: bool) -> io::Result<()> {
    for (i, (group, socks)) in super::groups(sockets).into_iter().enumerate() {
        if i > 0 {
            writeln!(w)?;
        }
        let (columns, rows) = rows(group, &socks, context);
        table::write(w, &columns, rows, out)?;
    }
    Ok(())
}

/// Columns and rows of one kind's table.
pub fn rows(group: Group, sockets: &[&Socket], context: bool) -> (Vec<table::Column>, Vec<Vec<table::Styled>>) {
    let (mut columns, mut rows) = match group {
        Group::Ip => ip(sockets),
        Group::Raw => super::raw_rows(sockets, false),
        Group::Unix => unix(sockets),
        Group::Packet => super::packet_rows(sockets),
    };
    super::decorate(&mut columns, &mut rows, sockets, context);
    (columns, rows)
}

fn ip(sockets: &[&Socket]) -> (Vec<table::Column>, Vec<Vec<table::Styled>>) {
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
    (columns, rows)
}

/// Unix listeners and bound sockets: type, name, pending connections.
fn unix(sockets: &[&Socket]) -> (Vec<table::Column>, Vec<Vec<table::Styled>>) {
    let columns = vec![col("TYPE"), col("LOCAL"), num("PENDING"), col("PID"), col("PROCESS"), col("USER")];
    let rows = sockets
        .iter()
        .map(|s| {
            let (pids, names, users) = owner_columns(s);
            vec![
                super::proto_label(s).into(),
                s.local.to_string().into(),
                pending_cell(s),
                pids.into(),
                names.into(),
                users.into(),
            ]
        })
        .collect();
    (columns, rows)
}

/// A listener's accept queue, `waiting/backlog`; yellow from half full,
/// red when full (new connections are refused: EAGAIN for unix clients).
pub fn pending_cell(s: &Socket) -> table::Styled {
    if s.state != State::Listen {
        return "-".into();
    }
    let text = format!("{}/{}", s.recv_q, s.send_q);
    if s.send_q > 0 && s.recv_q >= s.send_q {
        table::colored(text, Color::Red)
    } else if s.recv_q > 0 && u64::from(s.recv_q) * 2 >= u64::from(s.send_q) {
        table::colored(text, Color::Yellow)
    } else {
        text.into()
    }
}

/// `wildcard`, `loopback`, `address(eth0)`, coloured by reach.
fn exposure_cell(s: &Socket) -> table::Styled {
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
