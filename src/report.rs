//! Warnings and notes for stderr, collected in one place, and the exit status.
//! Nothing here ever reaches stdout, so JSON output stays clean.

use std::io::Write;

/// Documented exit codes.
pub const EXIT_MATCHED: i32 = 0;
pub const EXIT_NO_MATCH: i32 = 1;
pub const EXIT_ERROR: i32 = 2;

#[derive(Debug, Default)]
pub struct Report {
    lines: Vec<String>,
    /// `-v`: also say how the answer was found ([`Report::info`]).
    pub verbose: bool,
}

impl Report {
    /// A report that prints [`Report::info`] lines too.
    pub fn verbose(verbose: bool) -> Report {
        Report { lines: Vec::new(), verbose }
    }

    /// How the answer was found (which owner source ran, and why): only
    /// with `-v`.
    pub fn info(&mut self, msg: impl Into<String>) {
        if self.verbose {
            self.push(format!("portctl: {}", msg.into()));
        }
    }

    /// Something the user should act on (hidden owners, unreadable data).
    pub fn warn(&mut self, msg: impl Into<String>) {
        self.push(format!("portctl: warning: {}", msg.into()));
    }

    /// Something worth knowing (a fallback was taken).
    pub fn note(&mut self, msg: impl Into<String>) {
        self.push(format!("portctl: note: {}", msg.into()));
    }

    fn push(&mut self, line: String) {
        // Each message once, however many times it was raised.
        if !self.lines.contains(&line) {
            self.lines.push(line);
        }
    }

    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// Prints everything to stderr, escaped for the terminal (messages carry
    /// process names). Errors writing to stderr are ignored: there is
    /// nowhere left to report them.
    pub fn flush(&mut self) {
        let mut err = std::io::stderr().lock();
        for l in self.lines.drain(..) {
            let _ = writeln!(err, "{}", crate::render::sanitize::escape(&l));
        }
    }
}

/// Exit status from whether anything matched.
pub fn status(matched: bool) -> i32 {
    if matched { EXIT_MATCHED } else { EXIT_NO_MATCH }
}
