//! `kill`'s text: a line per target, then the summary.

use std::io::{self, Write};

use super::Style;
use crate::domain::kill::KillReport;

pub fn write(w: &mut dyn Write, r: &KillReport, st: Style) -> io::Result<()> {
    for t in &r.targets {
        let reason = t.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
        st.line(w, &format!("{:<13} {} (pid {}, user {}){reason}", t.result.replace('_', " "), t.name, t.pid, t.user))?;
    }
    st.line(w, &r.message)
}

/// The confirmation prompt's list (stderr), one process a line.
pub fn prompt(w: &mut dyn Write, r: &KillReport, which: &[usize], question: &str, st: Style) -> io::Result<()> {
    for &i in which {
        let t = &r.targets[i];
        st.line(w, &format!("  {} (pid {}, user {})", t.name, t.pid, t.user))?;
    }
    write!(w, "{} ", super::sanitize::escape(question))?;
    w.flush()
}
