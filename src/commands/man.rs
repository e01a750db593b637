//! `portctl man [COMMAND]`: prints a manual page that build.rs generated from
//! the clap definitions: `portctl(1)`, or `portctl-COMMAND(1)` (one page per
//! command, git style; nested ones as `watch-listen`). `--out-dir DIR` writes
//! them all, for packaging.
//!
//! Exit status: 0, or 2 (unknown command, unwritable directory).

use std::io::Write;

use anyhow::{Context, Result};

use crate::error::UserError;
use crate::report;
use crate::request::ManRequest;

include!(concat!(env!("OUT_DIR"), "/man_pages.rs"));

pub fn run(args: &ManRequest, w: &mut impl Write) -> Result<i32> {
    if let Some(dir) = &args.out_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))?;
        for (name, roff) in MAN_PAGES {
            let path = dir.join(file_name(name));
            std::fs::write(&path, roff).with_context(|| format!("could not write {}", path.display()))?;
        }
        return Ok(report::EXIT_MATCHED);
    }
    let name = args.command.as_deref().unwrap_or("portctl");
    let Some(roff) = page(name) else {
        let known: Vec<&str> = MAN_PAGES.iter().skip(1).map(|(n, _)| *n).collect();
        return Err(UserError::new(format!("no manual page for '{name}'"))
            .hint(format!("pages: {} (or none, for portctl(1))", known.join(", ")))
            .into());
    };
    w.write_all(roff.as_bytes())?;
    Ok(report::EXIT_MATCHED)
}

/// A page by command name (`listen`, `watch-listen`, or `portctl` for the
/// main page); `portctl-listen` works too.
pub fn page(name: &str) -> Option<&'static str> {
    let name = name.strip_prefix("portctl-").unwrap_or(name);
    MAN_PAGES.iter().find(|(n, _)| *n == name).map(|(_, roff)| *roff)
}

/// `portctl.1`, `portctl-listen.1`.
pub fn file_name(name: &str) -> String {
    if name == "portctl" { "portctl.1".to_string() } else { format!("portctl-{name}.1") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_per_command() {
        use clap::CommandFactory;
        let cmd = crate::cli::Cli::command();
        assert!(page("portctl").is_some_and(|p| p.starts_with(".ie \\n(.g .ds Aq") || p.contains(".TH portctl 1")));
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
            let p = page(sub.get_name()).unwrap_or_else(|| panic!("no page for {}", sub.get_name()));
            assert!(p.contains(&format!(".TH portctl-{} 1", sub.get_name())), "{}", sub.get_name());
        }
        assert_eq!(page("portctl-listen"), page("listen"));
        // Pages a page refers to exist (portctl-watch(1) names portctl-watch-listen(1)).
        for (name, roff) in MAN_PAGES {
            for line in roff.lines().filter(|l| l.starts_with("portctl\\-") && l.ends_with("(1)")) {
                let target = line.trim_end_matches("(1)").replace("\\-", "-");
                assert!(page(&target).is_some(), "{name} refers to {target}(1), which is not generated");
            }
        }
        assert!(page("nope").is_none());
    }
}
