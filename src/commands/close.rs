//! `portctl close FILTER`: close single connections with SOCK_DESTROY, as
//! `ss -K` does — only what the filter names, shown first, asked about on a
//! terminal (`--yes` without one, `--dry-run` to only look). Each socket is
//! named to the kernel by its addresses and cookie, so one that took the
//! same addresses since is never hit.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Result;

use crate::domain::close::{self, CloseReport};
use crate::domain::order;
use crate::error::UserError;
use crate::inventory::{self, Owners, Scope};
use crate::netns::Netns;
use crate::procs::Chosen;
use crate::render::{self, json};
use crate::report::{EXIT_NO_MATCH, Report};
use crate::request::CloseRequest;
use crate::text::plural;

pub fn run(req: &CloseRequest, w: &mut impl Write, report: &mut Report) -> Result<i32> {
    let query = req.query();
    if query.source == crate::sock_diag::Source::ProcNet {
        return Err(
            UserError::new("close needs sock_diag (SOCK_DESTROY): PORTCTL_SOURCE=proc reads /proc/net only").into()
        );
    }
    let scope = match &req.netns {
        Some(spec) => Scope::One(Netns::open(spec)?),
        None => Scope::Current,
    };
    let source = Chosen::new(req.owners_from);
    let mut inv = inventory::collect_in(&scope, &query, Owners::ResolveAll(&source), Some(order::conns), report)?;
    let procs = &mut inv.procs;
    let sockets: Vec<_> =
        inv.sockets.into_iter().filter(|s| req.select.keeps(s) && req.owners.matches(s, procs)).collect();
    let mut out = close::plan(sockets, req.dry_run);
    if out.sockets.is_empty() || req.dry_run {
        out.message = close::summary(&out);
        return finish(w, req, &out);
    }
    if !req.yes && !confirm(req, &out)? {
        out.message = "nothing closed: not confirmed".into();
        for c in &mut out.sockets {
            c.result = "not_closed".into();
        }
        finish(w, req, &out)?;
        return Ok(EXIT_NO_MATCH);
    }
    let netns = match &scope {
        Scope::One(ns) => Some(ns),
        _ => None,
    };
    let sockets: Vec<_> = out.sockets.iter().map(|c| c.socket.clone()).collect();
    let errnos = inventory::destroy(netns, &sockets)?;
    // Without CAP_NET_ADMIN or CONFIG_INET_DIAG_DESTROY nothing can be
    // closed: say so once, as the error it is.
    if let Some(e) = errnos.iter().find_map(|&e| close::fatal(e, crate::sys::is_root())) {
        return Err(e.into());
    }
    for (c, errno) in out.sockets.iter_mut().zip(errnos) {
        let (result, reason) = close::outcome(errno);
        c.result = result.into();
        c.reason = reason;
    }
    out.message = close::summary(&out);
    finish(w, req, &out)
}

/// Asks on the terminal; refuses (as an error) when there is none.
fn confirm(req: &CloseRequest, out: &CloseReport) -> Result<bool> {
    let n = out.sockets.len();
    if !std::io::stdin().is_terminal() {
        return Err(UserError::new(format!(
            "refusing to close {n} socket{} without confirmation: stdin is not a terminal",
            plural(n)
        ))
        .hint("pass --yes, or --dry-run to see what would be closed")
        .into());
    }
    let question = format!("close {n} socket{}? [y/N]", plural(n));
    render::close::prompt(&mut std::io::stderr().lock(), out, &question, req.out.style())?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}

fn finish(w: &mut impl Write, req: &CloseRequest, out: &CloseReport) -> Result<i32> {
    if req.out.is_json() {
        json::object(w, out)?;
    } else {
        render::close::write(w, out, req.out.style())?;
    }
    Ok(close::status(out))
}
