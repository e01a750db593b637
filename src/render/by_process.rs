//! `--by-process` text: each holder, its ancestry line, and its sockets;
//! then the sockets no visible process holds.

use std::io::{self, Write};

use super::{Style, proto_label, sanitize};
use crate::domain::process::{ByProcess, ancestry_line};
use crate::model::Socket;

/// Command lines longer than this are cut (JSON keeps them).
const COMMAND_WIDTH: usize = 100;

pub fn write(w: &mut dyn Write, g: &ByProcess, st: Style) -> io::Result<()> {
    let all = g.processes.iter().flat_map(|p| p.sockets.iter()).chain(&g.unowned);
    let widths = Widths::of(all);
    let mut first = true;
    for p in &g.processes {
        if !first {
            writeln!(w)?;
        }
        first = false;
        let cmd = if p.cmdline.is_empty() || p.cmdline == p.name {
            String::new()
        } else {
            format!(": {}", shorten(&p.cmdline, COMMAND_WIDTH))
        };
        writeln!(w, "{}{}", st.bold(&format!("{} (pid {}, user {})", p.name, p.pid, p.user)), sanitize::escape(&cmd))?;
        st.line(w, &format!("  {}", ancestry_line(&p.ancestry)))?;
        for s in &p.sockets {
            let fds: Vec<String> = s.owners.iter().filter(|o| o.pid == p.pid).map(super::fd_label).collect();
            st.line(w, &widths.line(s, &format!("fd {}", fds.join(","))))?;
        }
    }
    let (hidden, none): (Vec<&Socket>, Vec<&Socket>) = g.unowned.iter().partition(|s| s.owners_hidden);
    for (what, v) in [
        ("holder hidden (its process could not be read)", hidden),
        ("no process (TIME_WAIT, orphaned, or held outside this PID namespace)", none),
    ] {
        if v.is_empty() {
            continue;
        }
        if !first {
            writeln!(w)?;
        }
        first = false;
        st.heading(w, &format!("{what}: {} socket{}", v.len(), crate::text::plural(v.len())))?;
        for s in v {
            // Why nobody holds it, when that is known.
            st.line(w, &widths.line(s, s.unheld.map_or("", |u| u.label())))?;
        }
    }
    Ok(())
}

/// Column widths shared by every socket line.
struct Widths {
    proto: usize,
    state: usize,
    local: usize,
    remote: usize,
}

impl Widths {
    fn of<'a>(sockets: impl Iterator<Item = &'a Socket>) -> Widths {
        let mut w = Widths { proto: 0, state: 0, local: 0, remote: 0 };
        for s in sockets {
            w.proto = w.proto.max(proto_label(s).len());
            w.state = w.state.max(s.state.label().len());
            w.local = w.local.max(sanitize::width(&s.local.to_string()));
            w.remote = w.remote.max(s.remote.as_ref().map_or(1, |r| sanitize::width(&r.to_string())));
        }
        w
    }

    fn line(&self, s: &Socket, tail: &str) -> String {
        let pad = |t: &str, n: usize| format!("{t}{}", " ".repeat(n.saturating_sub(sanitize::width(t))));
        let remote = s.remote.as_ref().map_or_else(|| "*".to_string(), |r| r.to_string());
        let line = format!(
            "  {}  {}  {}  {}  {tail}",
            pad(&proto_label(s), self.proto),
            pad(s.state.label(), self.state),
            pad(&s.local.to_string(), self.local),
            pad(&remote, self.remote)
        );
        line.trim_end().to_string()
    }
}

/// At most `max` characters, with `…` when cut.
fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}
