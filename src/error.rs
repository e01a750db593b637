//! Fatal errors: what went wrong, and when there is one, what to do next.

use std::fmt;

/// An error the user can act on: bad input, a missing capability.
/// `main` prints `portctl: error: <msg>` and, if present, `hint: <hint>`.
#[derive(Debug)]
pub struct UserError {
    pub msg: String,
    pub hint: Option<String>,
}

impl UserError {
    pub fn new(msg: impl Into<String>) -> UserError {
        UserError { msg: msg.into(), hint: None }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> UserError {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for UserError {}

/// True when the error is stdout closing under us (`portctl ... | head`),
/// which is not an error at all.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

/// The lines `main` prints for a fatal error: the message with its causes on
/// one line, then an optional hint.
pub fn render(e: &anyhow::Error) -> Vec<String> {
    let mut lines = vec![format!("portctl: error: {e:#}")];
    if let Some(hint) = e.chain().find_map(|c| c.downcast_ref::<UserError>()).and_then(|u| u.hint.clone()) {
        lines.push(format!("hint: {hint}"));
    }
    lines
}
