//! The `listen` tables (also `watch listen`'s): one per kind of socket
//! present, each with the columns that kind has — IP (TCP, UDP), raw and
//! ICMP, unix, packet — one after the other, a blank line apart; the IP
//! table has rows of their own for the ports NAT rules publish.

use std::collections::BTreeSet;
use std::io::{self, Write};

use comfy_table::Color;

use super::table::{self, col, num};
use super::{Group, Output, owner_columns};
use crate::domain::nat::{self, Row};
use crate::model::{Exposure, Family, Socket, State};
use crate::nat::{NatExposure, NatRule};

pub fn write(w: &mut impl Write, sockets: &[Socket], out: &Output, context: bool) -> io::Result<()> {
    write_with_nat(w, sockets, &[], out, context)
}

/// The tables, with the NAT rows merged into the IP one, in port order (an
/// IP table of NAT rows alone when no TCP or UDP socket is listed).
pub fn write_with_nat(
    w: &mut impl Write,
    sockets: &[Socket],
    rules: &[NatRule],
    out: &Output,
    context: bool,
) -> io::Result<()> {
    let mut groups = super::groups(sockets);
    if !rules.is_empty() && !groups.iter().any(|(g, _)| *g == Group::Ip) {
        groups.insert(0, (Group::Ip, Vec::new()));
    }
    for (i, (group, socks)) in groups.into_iter().enumerate() {
        if i > 0 {
            writeln!(w)?;
        }
        let (columns, rows) = match group {
            Group::Ip if !rules.is_empty() => rows_with_nat(&socks, rules, context),
            _ => rows(group, &socks, context),
        };
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

fn ip_columns() -> Vec<table::Column> {
    vec![
        col("PROTO"),
        col("LOCAL"),
        num("PORT"),
        col("SERVICE"),
        col("EXPOSURE"),
        col("PID"),
        col("PROCESS"),
        col("USER"),
    ]
}

fn socket_row(s: &Socket) -> Vec<table::Styled> {
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
}

fn ip(sockets: &[&Socket]) -> (Vec<table::Column>, Vec<Vec<table::Styled>>) {
    let mut columns = ip_columns();
    let mut rows = sockets.iter().map(|s| socket_row(s)).collect::<Vec<_>>();
    super::accept_queue_column(&mut columns, &mut rows, sockets);
    super::drops_column(&mut columns, &mut rows, sockets);
    (columns, rows)
}

enum Item<'a> {
    Socket(&'a Socket),
    Nat(Row<'a>),
}

impl Item<'_> {
    fn netns(&self) -> Option<&crate::model::NetnsRef> {
        match self {
            Item::Socket(s) => s.netns.as_deref(),
            Item::Nat(r) => r.first.netns.as_ref(),
        }
    }
}

/// Columns and rows with NAT rows (see [`nat_row`]) among the sockets, by
/// port: a NAT row after the sockets of its port.
pub fn rows_with_nat(
    sockets: &[&Socket],
    rules: &[NatRule],
    context: bool,
) -> (Vec<table::Column>, Vec<Vec<table::Styled>>) {
    let mut nat_rows = nat::rows(rules);
    nat_rows.sort_by_key(|r| r.first.ports.map_or(0, |p| p.lo));
    let mut items: Vec<Item<'_>> = Vec::with_capacity(sockets.len() + nat_rows.len());
    let mut nat_rows = nat_rows.into_iter().peekable();
    for &s in sockets {
        while let Some(r) =
            nat_rows.next_if(|r| (false, r.first.ports.map_or(0, |p| p.lo)) < (!s.proto.has_ports(), s.port()))
        {
            items.push(Item::Nat(r));
        }
        items.push(Item::Socket(s));
    }
    items.extend(nat_rows.map(Item::Nat));
    let mut columns = ip_columns();
    let (accept_q, drops) =
        (super::wants_accept_queue(sockets.iter().copied()), super::wants_drops(sockets.iter().copied()));
    if accept_q {
        columns.push(col("ACCEPT-Q"));
    }
    if drops {
        columns.push(num("DROPS"));
    }
    let namespaces: BTreeSet<u64> = items.iter().filter_map(|i| i.netns().map(|n| n.inode)).collect();
    let with_netns = namespaces.len() > 1;
    if with_netns {
        columns.insert(0, col("NETNS"));
    }
    if context {
        columns.push(col("CONTEXT"));
    }
    let rows = items
        .iter()
        .map(|item| {
            let mut row = match item {
                Item::Socket(s) => socket_row(s),
                Item::Nat(r) => nat_row(r),
            };
            if accept_q {
                row.push(match item {
                    Item::Socket(s) => super::accept_queue_cell(s),
                    Item::Nat(_) => "-".into(),
                });
            }
            if drops {
                row.push(match item {
                    Item::Socket(s) => super::drops_cell(s),
                    Item::Nat(_) => "-".into(),
                });
            }
            if with_netns {
                row.insert(0, item.netns().map_or("-".to_string(), |n| n.to_string()).into());
            }
            if context {
                row.push(match item {
                    Item::Socket(s) => super::context_text(s).into(),
                    Item::Nat(r) => served_by(r.first).into(),
                });
            }
            row
        })
        .collect();
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

/// A NAT row: `nat` in the PID column, `dnat->172.17.0.2:80` as the
/// process, who is behind it (`docker:web`, `k8s:shop/web:http`) as the
/// user. Cells have no spaces, like every cell of the table.
pub fn nat_row(r: &Row<'_>) -> Vec<table::Styled> {
    let f = r.first;
    let proto = f.proto.clone().unwrap_or_else(|| "any".to_string());
    let suffix = match f.family {
        Some(Family::Ipv4) => "",
        Some(Family::Ipv6) => "6",
        _ => "46",
    };
    let local = match f.exposure {
        NatExposure::Wildcard => "*".to_string(),
        _ => f.matches.dst.iter().map(|d| short_prefix(d)).collect::<Vec<_>>().join(","),
    };
    let port = f.ports.map_or_else(|| "*".to_string(), |p| p.to_string());
    let service = match (&f.proto, f.ports) {
        (Some(p), Some(range)) if range.lo == range.hi => {
            let proto = if p == "udp" { crate::model::Proto::Udp } else { crate::model::Proto::Tcp };
            crate::services::name(proto, range.lo).unwrap_or("-").to_string()
        }
        _ => "-".to_string(),
    };
    // REDIRECT without a port keeps the port: say which.
    let targets: Vec<String> = match (f.action, f.to.port, f.ports) {
        (crate::nat::NatAction::Redirect, None, Some(p)) => vec![format!(":{p}")],
        _ => r.targets.clone(),
    };
    let process = format!("{}->{}", f.action.as_str(), targets.join(","));
    vec![
        format!("{proto}{suffix}").into(),
        local.into(),
        port.into(),
        service.into(),
        nat_exposure_cell(f),
        table::colored("nat", Color::Magenta),
        process.into(),
        served_by(f).into(),
    ]
}

/// `127.0.0.1/32` -> `127.0.0.1`.
fn short_prefix(d: &str) -> String {
    d.strip_suffix("/32").or_else(|| d.strip_suffix("/128")).unwrap_or(d).to_string()
}

/// `docker:web`, `podman:api`, `k8s:shop/web:http`, `cni:5d2b5a0e6d4b`.
fn served_by(r: &NatRule) -> String {
    if let Some(svc) = &r.service {
        return format!("k8s:{svc}");
    }
    let owner = r.owner.as_deref();
    match &r.container {
        Some(c) => {
            let runtime = c.runtime.as_deref().or(owner).unwrap_or("container");
            let name = c.name.clone().or_else(|| c.id.as_deref().map(crate::model::short_id)).unwrap_or_default();
            format!("{runtime}:{name}")
        }
        None => match owner {
            Some("kubernetes") => "k8s".to_string(),
            Some(o) => o.to_string(),
            None => "-".to_string(),
        },
    }
}

/// `wildcard`, `loopback`, `address(eth0)`, with the input-interface
/// conditions: `wildcard(!docker0)`, `iif(eth0)`.
fn nat_exposure_cell(r: &NatRule) -> table::Styled {
    let base = match (r.exposure, &r.interface) {
        _ if !r.matches.iif.is_empty() => format!("iif({})", r.matches.iif.join(",")),
        (NatExposure::Address, Some(i)) => format!("address({i})"),
        (e, _) => e.as_str().to_string(),
    };
    let text = if r.matches.iif_not.is_empty() {
        base
    } else {
        let not: Vec<String> = r.matches.iif_not.iter().map(|i| format!("!{i}")).collect();
        if base.ends_with(')') {
            format!("{},{})", &base[..base.len() - 1], not.join(","))
        } else {
            format!("{base}({})", not.join(","))
        }
    };
    let color = match r.exposure {
        NatExposure::Wildcard => Color::Yellow,
        NatExposure::Address | NatExposure::NotLocal => Color::Cyan,
        NatExposure::Loopback => Color::Green,
    };
    table::colored(text, color)
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
