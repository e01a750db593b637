//! `close`'s text: a line per socket (what happened, the socket, its
//! holders), then the summary; and the confirmation prompt's list.

use std::io::{self, Write};

use super::{Style, proto_label, sanitize};
use crate::domain::close::CloseReport;
use crate::model::Socket;

pub fn write(w: &mut dyn Write, r: &CloseReport, st: Style) -> io::Result<()> {
    let width = r.sockets.iter().map(|c| c.result.len()).max().unwrap_or(0);
    let sockets: Vec<&Socket> = r.sockets.iter().map(|c| &c.socket).collect();
    let lines = socket_lines(&sockets);
    for (c, line) in r.sockets.iter().zip(lines) {
        let reason = c.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
        let result = c.result.replace('_', " ");
        st.line(w, &format!("{result:<width$}  {line}{reason}"))?;
    }
    st.line(w, &r.message)
}

/// The prompt's list (stderr): the sockets that would be closed.
pub fn prompt(w: &mut dyn Write, r: &CloseReport, question: &str, st: Style) -> io::Result<()> {
    let sockets: Vec<&Socket> = r.sockets.iter().map(|c| &c.socket).collect();
    for line in socket_lines(&sockets) {
        st.line(w, &format!("  {line}"))?;
    }
    write!(w, "{} ", sanitize::escape(question))?;
    w.flush()
}

/// `tcp  ESTAB  127.0.0.1:40000  127.0.0.1:8080  client (pid 12, user root)`,
/// aligned.
fn socket_lines(sockets: &[&Socket]) -> Vec<String> {
    let cells: Vec<[String; 5]> = sockets
        .iter()
        .map(|s| {
            let owners = if s.owners.is_empty() {
                match (s.owners_hidden, s.unheld) {
                    (true, _) => "holder hidden".to_string(),
                    // `(kernel)`, `(in flight)`, `(no process)`: why nobody holds it.
                    (false, Some(u)) => u.label().to_string(),
                    (false, None) => "no process".to_string(),
                }
            } else {
                let mut seen = Vec::new();
                s.owners
                    .iter()
                    .filter(|o| {
                        let new = !seen.contains(&o.pid);
                        seen.push(o.pid);
                        new
                    })
                    .map(|o| format!("{} (pid {}, user {})", o.name, o.pid, o.user))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            [
                proto_label(s),
                s.state.label().to_string(),
                s.local.to_string(),
                s.remote.as_ref().map_or_else(|| "*".to_string(), |r| r.to_string()),
                owners,
            ]
        })
        .collect();
    let mut widths = [0usize; 5];
    for c in &cells {
        for (i, t) in c.iter().enumerate() {
            widths[i] = widths[i].max(sanitize::width(t));
        }
    }
    cells
        .iter()
        .map(|c| {
            let mut line = String::new();
            for (i, t) in c.iter().enumerate() {
                line.push_str(t);
                if i + 1 < c.len() {
                    line.push_str(&" ".repeat(widths[i].saturating_sub(sanitize::width(t)) + 2));
                }
            }
            line
        })
        .collect()
}
