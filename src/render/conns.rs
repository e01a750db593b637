//! The `conns` table (also `watch conns`'s).

use std::io::{self, Write};

use comfy_table::Color;

use super::table::{self, col, num};
use super::{Group, Output, owner_columns};
use crate::model::{Socket, State, Timer};

pub fn write(
    w: &mut impl Write,
    sockets: &[Socket],
    out: &Output,
    extended: bool,
    peers: bool,
    context: bool,
) -> io::Result<()> {
    for (i, (group, socks)) in super::groups(sockets).into_iter().enumerate() {
        if i > 0 {
            writeln!(w)?;
        }
        let (columns, rows) = rows(group, &socks, extended, peers, context);
        table::write(w, &columns, rows, out)?;
    }
    Ok(())
}

/// Columns and rows of one kind's table. `peers` adds the PEER column to
/// the TCP/UDP table (the unix table always has it).
pub fn rows(
    group: Group,
    sockets: &[&Socket],
    extended: bool,
    peers: bool,
    context: bool,
) -> (Vec<table::Column>, Vec<Vec<table::Styled>>) {
    let (mut columns, mut rows) = match group {
        Group::Ip => ip(sockets, extended, peers),
        Group::Raw => super::raw_rows(sockets, true),
        Group::Unix => unix(sockets),
        Group::Packet => super::packet_rows(sockets),
    };
    super::decorate(&mut columns, &mut rows, sockets, context);
    (columns, rows)
}

fn ip(sockets: &[&Socket], extended: bool, peers: bool) -> (Vec<table::Column>, Vec<Vec<table::Styled>>) {
    let mut columns = vec![
        col("PROTO"),
        col("STATE"),
        col("LOCAL"),
        col("REMOTE"),
        num("RECV-Q"),
        num("SEND-Q"),
        col("TIMER"),
        col("PID"),
        col("PROCESS"),
        col("USER"),
    ];
    if extended {
        columns.extend([
            num("RTT"),
            num("RETRANS"),
            num("CWND"),
            col("CC"),
            num("MSS"),
            num("LOST"),
            num("DELIVERY"),
            num("SENT"),
            num("RECV"),
            num("RMEM"),
            num("DROPS"),
        ]);
    }
    if peers {
        columns.push(col("PEER"));
    }
    let mut rows = sockets
        .iter()
        .map(|s| {
            let (pids, names, users) = owner_columns(s);
            let mut row: Vec<table::Styled> = vec![
                super::proto_label(s).into(),
                state_cell(s.state),
                s.local.to_string().into(),
                s.remote.as_ref().map_or_else(|| "*".to_string(), |r| r.to_string()).into(),
                s.recv_q.to_string().into(),
                s.send_q.to_string().into(),
                s.timer.as_ref().map_or_else(|| "-".to_string(), timer_text).into(),
                pids.into(),
                names.into(),
                users.into(),
            ];
            if extended {
                row.extend(extended_cells(s));
            }
            if peers {
                row.push(super::peer_cell(s));
            }
            row
        })
        .collect::<Vec<_>>();
    super::accept_queue_column(&mut columns, &mut rows, sockets);
    (columns, rows)
}

/// Unix sockets: both names (a client's own is usually `*`, its REMOTE the
/// server's path), the inodes `ss -x` shows, and the process at the other end.
fn unix(sockets: &[&Socket]) -> (Vec<table::Column>, Vec<Vec<table::Styled>>) {
    let columns = vec![
        col("TYPE"),
        col("STATE"),
        col("LOCAL"),
        col("REMOTE"),
        num("RECV-Q"),
        num("SEND-Q"),
        num("INODE"),
        col("PID"),
        col("PROCESS"),
        col("USER"),
        num("PEER-INODE"),
        col("PEER"),
    ];
    let rows = sockets
        .iter()
        .map(|s| {
            let (pids, names, users) = owner_columns(s);
            vec![
                super::proto_label(s).into(),
                state_cell(s.state),
                s.local.to_string().into(),
                s.remote.as_ref().map_or_else(|| "-".to_string(), |r| r.to_string()).into(),
                s.recv_q.to_string().into(),
                s.send_q.to_string().into(),
                s.inode.to_string().into(),
                pids.into(),
                names.into(),
                users.into(),
                s.peer.as_ref().map_or_else(|| "-".to_string(), |p| p.inode.to_string()).into(),
                super::peer_cell(s),
            ]
        })
        .collect();
    (columns, rows)
}

/// `ESTAB`, `TIME-WAIT`, ...: states that point at a problem stand out.
pub(super) fn state_cell(st: State) -> table::Styled {
    match st {
        State::CloseWait | State::SynSent | State::LastAck => table::colored(st.label(), Color::Yellow),
        State::Established => table::colored(st.label(), Color::Green),
        _ => st.label().into(),
    }
}

/// `time_wait 58s`, `keepalive 1m59s`, `retransmit 200ms (2 retrans)`.
pub fn timer_text(t: &Timer) -> String {
    let mut s = format!("{} {}", t.kind.as_str(), super::duration_ms(t.expires_ms));
    if t.retrans > 0 {
        s.push_str(&format!(" ({} retrans)", t.retrans));
    }
    s
}

/// RTT (ms), RETRANS (now/total), CWND (segments), CC (congestion
/// algorithm), MSS (bytes, sending), LOST (segments), DELIVERY (rate), SENT
/// and RECV (bytes); RMEM (receive memory / buffer) and DROPS from socket
/// memory, TCP and UDP. Drops stand out: they are data lost on this socket.
pub(super) fn extended_cells(s: &Socket) -> Vec<table::Styled> {
    let dash = || -> table::Styled { "-".into() };
    let mut cells: Vec<table::Styled> = match s.tcp_info() {
        None => (0..9).map(|_| dash()).collect(),
        Some(i) => vec![
            format!("{}.{:03}ms", i.rtt_us / 1000, i.rtt_us % 1000).into(),
            format!("{}/{}", i.retransmits, i.total_retrans).into(),
            i.snd_cwnd.to_string().into(),
            i.congestion.as_deref().unwrap_or("-").into(),
            i.snd_mss.to_string().into(),
            i.lost.to_string().into(),
            i.delivery_rate.map_or_else(|| "-".to_string(), bits_per_second).into(),
            i.bytes_sent.map_or_else(|| "-".to_string(), |b| b.to_string()).into(),
            i.bytes_received.map_or_else(|| "-".to_string(), |b| b.to_string()).into(),
        ],
    };
    match s.skmem() {
        None => cells.extend([dash(), dash()]),
        Some(m) => {
            cells.push(format!("{}/{}", m.rmem_alloc, m.rcvbuf).into());
            cells.push(drops_cell(m.drops));
        }
    }
    cells
}

/// A drop count, red when not zero.
pub fn drops_cell(drops: u32) -> table::Styled {
    if drops > 0 { table::colored(drops.to_string(), Color::Red) } else { "0".into() }
}

/// Bytes per second as bits per second, as `ss` writes rates: `800bps`,
/// `12.5Mbps`, `1.2Gbps`.
pub fn bits_per_second(bytes: u64) -> String {
    let bits = bytes.saturating_mul(8) as f64;
    match bits {
        b if b >= 1e9 => format!("{:.1}Gbps", b / 1e9),
        b if b >= 1e6 => format!("{:.1}Mbps", b / 1e6),
        b if b >= 1e3 => format!("{:.1}kbps", b / 1e3),
        b => format!("{b}bps"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TimerKind;

    #[test]
    fn timers() {
        let t = |kind, ms, retrans| timer_text(&Timer { kind, expires_ms: ms, retrans });
        assert_eq!(t(TimerKind::TimeWait, 58_400, 0), "time_wait 58s");
        assert_eq!(t(TimerKind::Keepalive, 119_000, 0), "keepalive 1m59s");
        assert_eq!(t(TimerKind::Retransmit, 200, 2), "retransmit 200ms (2 retrans)");
    }

    #[test]
    fn rates() {
        assert_eq!(bits_per_second(100), "800bps");
        assert_eq!(bits_per_second(1_562_500), "12.5Mbps");
        assert_eq!(bits_per_second(150_000_000), "1.2Gbps");
        assert_eq!(bits_per_second(u64::MAX), "18446744073.7Gbps");
    }
}
