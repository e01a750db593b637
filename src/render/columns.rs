//! `-o/--columns`: `listen` and `conns` tables with the columns asked for,
//! in that order. Cells are the ones the default tables show (same text,
//! same escaping), plus a few only this option offers (FD, CMDLINE, UID,
//! INODE).

use std::collections::BTreeSet;
use std::io::{self, Write};

use super::table::{self, col, num};
use super::{Output, owner_columns};
use crate::filter::Column;
use crate::model::Socket;

/// The table with these columns.
pub fn write(w: &mut impl Write, sockets: &[Socket], columns: &[Column], out: &Output) -> io::Result<()> {
    let (cols, rows) = rows(sockets, columns);
    table::write(w, &cols, rows, out)
}

/// Headers and rows.
pub fn rows(sockets: &[Socket], columns: &[Column]) -> (Vec<table::Column>, Vec<Vec<table::Styled>>) {
    let cols = columns.iter().map(|&c| header(c)).collect();
    let rows = sockets.iter().map(|s| columns.iter().map(|&c| cell(c, s)).collect()).collect();
    (cols, rows)
}

/// A column's header and alignment.
pub fn header(c: Column) -> table::Column {
    match c {
        Column::Proto => col("PROTO"),
        Column::State => col("STATE"),
        Column::Local => col("LOCAL"),
        Column::Port => num("PORT"),
        Column::Remote => col("REMOTE"),
        Column::Service => col("SERVICE"),
        Column::Exposure => col("EXPOSURE"),
        Column::RecvQ => num("RECV-Q"),
        Column::SendQ => num("SEND-Q"),
        Column::Timer => col("TIMER"),
        Column::Pid => col("PID"),
        Column::Process => col("PROCESS"),
        Column::User => col("USER"),
        Column::Fd => col("FD"),
        Column::Cmdline => col("CMDLINE"),
        Column::Uid => num("UID"),
        Column::Inode => num("INODE"),
        Column::Netns => col("NETNS"),
        Column::Context => col("CONTEXT"),
        Column::Rtt => num("RTT"),
        Column::Retrans => num("RETRANS"),
        Column::Cwnd => num("CWND"),
        Column::Cc => col("CC"),
        Column::Mss => num("MSS"),
        Column::Lost => num("LOST"),
        Column::Delivery => num("DELIVERY"),
        Column::Sent => num("SENT"),
        Column::Recv => num("RECV"),
        Column::Rmem => num("RMEM"),
        Column::Drops => num("DROPS"),
        Column::AcceptQ => col("ACCEPT-Q"),
    }
}

/// One cell.
pub fn cell(c: Column, s: &Socket) -> table::Styled {
    let extended = |i: usize| super::conns::extended_cells(s).swap_remove(i);
    match c {
        Column::Proto => super::proto_label(s).into(),
        Column::State => super::conns::state_cell(s.state),
        Column::Local => s.local.to_string().into(),
        Column::Port => s.local_ip().map_or_else(|| "-".to_string(), |e| e.port.to_string()).into(),
        Column::Remote => s.remote.as_ref().map_or_else(|| "*".to_string(), |r| r.to_string()).into(),
        Column::Service => s.service.as_deref().unwrap_or("-").into(),
        Column::Exposure => super::listen::exposure_cell(s),
        Column::RecvQ => s.recv_q.to_string().into(),
        Column::SendQ => s.send_q.to_string().into(),
        Column::Timer => s.timer.as_ref().map_or_else(|| "-".to_string(), super::conns::timer_text).into(),
        Column::Pid => owner_columns(s).0.into(),
        Column::Process => owner_columns(s).1.into(),
        Column::User => owner_columns(s).2.into(),
        Column::Fd => {
            let fds: Vec<String> = s.owners.iter().map(super::fd_label).collect();
            if fds.is_empty() { "-".into() } else { fds.join(",").into() }
        }
        Column::Cmdline => {
            let mut seen = BTreeSet::new();
            let lines: Vec<&str> =
                s.owners.iter().map(|o| &*o.cmdline).filter(|c| !c.is_empty() && seen.insert(*c)).collect();
            if lines.is_empty() { "-".into() } else { lines.join(" | ").into() }
        }
        Column::Uid => s.uid.to_string().into(),
        Column::Inode => s.inode.to_string().into(),
        Column::Netns => s.netns.as_ref().map_or("-".to_string(), |n| n.to_string()).into(),
        Column::Context => super::context_text(s).into(),
        Column::Rtt => extended(0),
        Column::Retrans => extended(1),
        Column::Cwnd => extended(2),
        Column::Cc => extended(3),
        Column::Mss => extended(4),
        Column::Lost => extended(5),
        Column::Delivery => extended(6),
        Column::Sent => extended(7),
        Column::Recv => extended(8),
        Column::Rmem => extended(9),
        Column::Drops => extended(10),
        Column::AcceptQ => {
            s.accept_queue().map_or_else(|| "-".to_string(), |q| format!("{}/{}", q.queued, q.backlog)).into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Owner, Proto, State};
    use crate::render::Format;
    use std::sync::Arc;

    #[test]
    fn chosen_columns_in_order() {
        let mut s = Socket::sample(Proto::Tcp, State::Established, "127.0.0.1:5432", Some("127.0.0.1:40000"), 77);
        s.uid = 101;
        s.owners = vec![
            Owner {
                pid: 9,
                name: Arc::from("postgres"),
                user: Arc::from("pg"),
                fd: 5,
                tid: None,
                cmdline: Arc::from("postgres -D /x"),
                context: None,
            },
            Owner {
                pid: 10,
                name: Arc::from("postgres"),
                user: Arc::from("pg"),
                fd: 5,
                tid: None,
                cmdline: Arc::from("postgres -D /x"),
                context: None,
            },
        ]
        .into();
        let cols = [Column::Pid, Column::Local, Column::Fd, Column::Uid, Column::Inode, Column::Cmdline, Column::Rtt];
        let mut buf = Vec::new();
        write(&mut buf, &[s], &cols, &Output::plain(Format::Table)).unwrap();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "PID   LOCAL           FD   UID  INODE  CMDLINE         RTT\n9,10  127.0.0.1:5432  5,5  101     77  postgres -D /x    -\n"
        );
    }
}
