//! `kill`'s text: a line per target, then the summary.

use std::io::{self, Write};

use comfy_table::Color;

use super::{Style, sanitize};
use crate::domain::kill::{Holder, KillReport};

pub fn write(w: &mut dyn Write, r: &KillReport, st: Style) -> io::Result<()> {
    for t in &r.targets {
        let reason = t.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
        // The result word, padded before painting (codes have no width).
        let result = format!("{:<13}", t.result.replace('_', " "));
        let color = match t.result.as_str() {
            "signalled" | "killed" => Color::Green,
            "would_signal" | "gone" => Color::Yellow,
            _ => Color::Red,
        };
        let rest = sanitize::escape(&format!(" {} (pid {}, user {}){reason}", t.name, t.pid, t.user)).into_owned();
        writeln!(w, "{}{rest}", st.paint(&result, color))?;
    }
    st.heading(w, &r.message)?;
    for h in &r.hints {
        writeln!(w, "{} {}", st.bold("hint:"), sanitize::escape(h))?;
    }
    Ok(())
}

/// The confirmation prompt's list (stderr), one process a line.
pub fn prompt(w: &mut dyn Write, holders: &[&Holder], question: &str, st: Style) -> io::Result<()> {
    for h in holders {
        st.line(w, &format!("  {} (pid {}, user {})", h.name, h.pid, h.user))?;
    }
    write!(w, "{} ", super::sanitize::escape(question))?;
    w.flush()
}
