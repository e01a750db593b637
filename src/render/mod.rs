//! Output: each format is a function from rows to a writer. Nothing here
//! gathers data.

pub mod json;
pub mod prometheus;
pub mod sanitize;
pub mod table;

use std::collections::BTreeSet;

use crate::model::{Endpoint, Socket};

/// Address column text: `127.0.0.1`, `[::]`, `[::ffff:10.0.0.1]`.
pub fn addr(e: &Endpoint) -> String {
    match e.addr {
        std::net::IpAddr::V4(a) => a.to_string(),
        std::net::IpAddr::V6(a) => format!("[{a}]"),
    }
}

/// `tcp`, `tcp6`, or `tcp46` for a dual-stack `[::]` socket that takes IPv4
/// too (the BSD netstat convention).
pub fn proto_label(s: &Socket) -> String {
    let suffix = match s.family {
        crate::model::Family::Ipv4 => "",
        crate::model::Family::Ipv6 if s.is_dual_stack() => "46",
        crate::model::Family::Ipv6 => "6",
    };
    format!("{}{suffix}", s.proto)
}

/// Owner columns (pid list, process names, users), de-duplicated, escaped.
/// Hidden or absent owners print as `-`.
pub fn owner_columns(s: &Socket) -> (String, String, String) {
    if s.owners.is_empty() {
        return ("-".into(), "-".into(), "-".into());
    }
    let pids: BTreeSet<u32> = s.owners.iter().map(|o| o.pid).collect();
    let mut names: Vec<&str> = Vec::new();
    let mut users: Vec<&str> = Vec::new();
    for o in &s.owners {
        if !names.contains(&&*o.name) {
            names.push(&o.name);
        }
        if !users.contains(&&*o.user) {
            users.push(&o.user);
        }
    }
    let pids = pids.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
    (pids, sanitize::escape(&names.join(",")).into_owned(), sanitize::escape(&users.join(",")).into_owned())
}

/// Adds a leading NETNS column when the sockets span more than one network
/// namespace, and a trailing CONTEXT column when asked (`--context`).
pub fn decorate(columns: &mut Vec<table::Column>, rows: &mut [Vec<table::Styled>], sockets: &[Socket], context: bool) {
    let namespaces: BTreeSet<u64> = sockets.iter().filter_map(Socket::netns_inode).collect();
    if namespaces.len() > 1 {
        columns.insert(0, table::col("NETNS"));
        for (row, s) in rows.iter_mut().zip(sockets) {
            let ns = s.netns.as_ref().map_or("-".to_string(), |n| sanitize::escape(&n.to_string()).into_owned());
            row.insert(0, ns.into());
        }
    }
    if context {
        columns.push(table::col("CONTEXT"));
        for (row, s) in rows.iter_mut().zip(sockets) {
            row.push(context_text(s).into());
        }
    }
}

/// `nginx.service`, `docker:web`, `containerd:4f1c0a4e3b7d` for the first
/// owner that has a context.
pub fn context_text(s: &Socket) -> String {
    let Some(c) = s.owners.iter().find_map(|o| o.context.as_ref()) else { return "-".into() };
    let text = match (&c.container, &c.unit) {
        (Some(ct), _) => {
            format!("{}:{}", ct.runtime, ct.name.clone().unwrap_or_else(|| ct.id.chars().take(12).collect()))
        }
        (None, Some(u)) => u.clone(),
        (None, None) => "-".into(),
    };
    sanitize::escape(&text).into_owned()
}

/// Milliseconds as a short duration: `59s`, `1m02s`, `350ms`.
pub fn duration_ms(ms: u32) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{}s", ms / 1000)
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration_ms(350), "350ms");
        assert_eq!(duration_ms(59_999), "59s");
        assert_eq!(duration_ms(62_000), "1m02s");
    }
}
