//! `portctl completions SHELL`: prints the completion script that build.rs
//! generated from the clap definitions (the .deb installs the same files).
//!
//! Exit status: 0.

use std::io::Write;

use anyhow::Result;

use crate::cli::Shell;
use crate::report;

include!(concat!(env!("OUT_DIR"), "/completions.rs"));

pub fn run(shell: Shell, w: &mut impl Write) -> Result<i32> {
    w.write_all(script(shell.as_str()).as_bytes())?;
    Ok(report::EXIT_MATCHED)
}

/// The script for `bash`, `zsh` or `fish`.
pub fn script(shell: &str) -> &'static str {
    COMPLETIONS.iter().find(|(s, _)| *s == shell).map_or("", |(_, text)| text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Shell;
    use clap::ValueEnum;

    #[test]
    fn every_shell_has_a_script() {
        for shell in Shell::value_variants() {
            assert!(script(shell.as_str()).contains("portctl"), "{}", shell.as_str());
        }
        assert!(script("bash").contains("complete -F"));
        assert!(script("zsh").starts_with("#compdef portctl"));
        assert!(script("fish").contains("complete -c portctl"));
    }
}
