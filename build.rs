//! Build script: the version string, and the shell completions and man pages
//! generated from the clap definitions.
//!
//! - `PORTCTL_VERSION`: the crate version, plus the short commit and its date
//!   when built from a git checkout of this repository (`0.1.0 (b0b67b1
//!   2026-11-21)`); just the crate version from a tarball or `cargo install`
//!   from crates.io. Reruns when HEAD or the branch it points to moves.
//! - `$OUT_DIR/completions/{portctl.bash,_portctl,portctl.fish}` and
//!   `$OUT_DIR/man/portctl.1`, `portctl-<command>.1` (one page per command,
//!   nested ones too, git style), plus `$OUT_DIR/{completions,man_pages}.rs`, tables of them
//!   that the binary `include!`s:
//!   `portctl completions SHELL` and `portctl man` print these very files, and
//!   `scripts/package.sh` takes them from there into the .deb.
//!
//! `src/cli.rs` is compiled here as a module. `#[path]` is used rather than
//! `include!` because `include!` rejects the file's `//!` inner doc comment.
//! cli.rs names its value parsers as `crate::filter::...`, and filter.rs uses
//! `crate::model::...`: both files are I/O-free and are compiled here the same
//! way, so those `crate::` paths resolve unchanged (hence serde and libc as
//! build-dependencies: model's derives, filter's signal numbers). cli.rs must
//! therefore only name `crate::filter` and `crate::model` items.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

use clap::CommandFactory;

#[allow(dead_code, unused_imports)]
#[path = "src/cli.rs"]
mod cli;
#[allow(dead_code, unused_imports)]
#[path = "src/filter.rs"]
mod filter;
#[allow(dead_code, unused_imports)]
#[path = "src/model.rs"]
mod model;

fn main() {
    for f in ["build.rs", "src/cli.rs", "src/filter.rs", "src/model.rs"] {
        println!("cargo:rerun-if-changed={f}");
    }
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let pkg_version = std::env::var("CARGO_PKG_VERSION").expect("cargo sets CARGO_PKG_VERSION");

    let commit = git_commit(&manifest_dir);
    let version = match &commit {
        Some((hash, date)) => format!("{pkg_version} ({hash} {date})"),
        None => pkg_version,
    };
    println!("cargo:rustc-env=PORTCTL_VERSION={version}");

    // clap takes a &'static str without its `string` feature; this process is short-lived.
    let version: &'static str = Box::leak(version.into_boxed_str());
    let mut cmd = cli::Cli::command().version(version).disable_help_subcommand(true);
    cmd.build();
    let completions = write_completions(&mut cmd, &out_dir.join("completions"));
    // Pages dated by the commit (reproducible), undated from a tarball.
    let date = commit.map(|(_, date)| date).unwrap_or_default();
    let pages = write_man_pages(&cmd, &format!("portctl {version}"), &date, &out_dir.join("man"));
    write_indexes(&out_dir, &completions, &pages);
}

/// (`b0b67b1`, `2026-11-21`): HEAD's short hash and commit date, when
/// `manifest_dir` is the top of a git work tree (not merely somewhere inside
/// another repository, as an unpacked crate can be) and git is installed. Prints the rerun-if-changed lines that
/// make a new commit or checkout rebuild the version.
fn git_commit(manifest_dir: &Path) -> Option<(String, String)> {
    let git = |args: &[&str]| -> Option<String> {
        let out = Process::new("git").args(args).current_dir(manifest_dir).output().ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        out.status.success().then(|| text.trim().to_string())
    };
    let top = git(&["rev-parse", "--show-toplevel"])?;
    if Path::new(&top).canonicalize().ok()? != manifest_dir.canonicalize().ok()? {
        return None;
    }
    let git_dir = PathBuf::from(git(&["rev-parse", "--absolute-git-dir"])?);
    // Refs live in the common dir (differs from git_dir in a linked worktree).
    let common = git(&["rev-parse", "--git-common-dir"]).map(|d| manifest_dir.join(d))?;
    let mut watch = vec![git_dir.join("HEAD"), common.join("packed-refs")];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch.push(common.join(branch));
    }
    // A path that does not exist would make cargo rerun this script on every
    // build; a branch that is packed lives in packed-refs, watched already.
    for p in watch.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    let line = git(&["log", "-1", "--format=%h %cs"])?;
    let (hash, date) = line.split_once(' ')?;
    Some((hash.to_string(), date.to_string()))
}

/// The completion scripts, as (shell name, file) pairs.
fn write_completions(cmd: &mut clap::Command, dir: &Path) -> Vec<(&'static str, PathBuf)> {
    use clap_complete::Shell;
    std::fs::create_dir_all(dir).expect("create OUT_DIR/completions");
    [("bash", Shell::Bash), ("zsh", Shell::Zsh), ("fish", Shell::Fish)]
        .into_iter()
        .map(|(name, shell)| {
            let path = clap_complete::generate_to(shell, cmd, "portctl", dir).expect("write a completion script");
            (name, path)
        })
        .collect()
}

/// `portctl.1` and one `portctl-COMMAND.1` per visible command, nested ones
/// too (`portctl-watch-listen.1`, which `portctl-watch.1` refers to), as (page
/// key, file) pairs: the key is the name after `portctl-` (`listen`,
/// `watch-listen`), or `portctl` for the main page.
fn write_man_pages(cmd: &clap::Command, source: &str, date: &str, dir: &Path) -> Vec<(String, PathBuf)> {
    std::fs::create_dir_all(dir).expect("create OUT_DIR/man");
    let man = |c: &clap::Command| clap_mangen::Man::new(c.clone()).manual("portctl manual").source(source).date(date);
    let top = man(cmd);
    let mut roff = Vec::new();
    top.render(&mut roff).expect("render the man page");
    roff.extend_from_slice(see_also(cmd).as_bytes());
    let path = dir.join(top.get_filename());
    std::fs::write(&path, roff).expect("write the man page");
    let mut pages = vec![("portctl".to_string(), path)];
    // Depth first, parents before their children; `parents` are the pages
    // a page's SEE ALSO names (portctl(1), then portctl-watch(1), ...).
    fn walk(
        cmd: &clap::Command,
        parents: &[String],
        man: &dyn Fn(&clap::Command) -> clap_mangen::Man,
        dir: &Path,
        pages: &mut Vec<(String, PathBuf)>,
    ) {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
            let page = man(sub);
            let name = sub.get_display_name().unwrap_or_else(|| sub.get_name()).to_string();
            let mut roff = Vec::new();
            page.render(&mut roff).expect("render a man page");
            let refs: Vec<String> = parents.iter().map(|p| format!("\\fB{}\\fR(1)", p.replace('-', "\\-"))).collect();
            roff.extend_from_slice(format!(".SH \"SEE ALSO\"\n{}\n", refs.join(", ")).as_bytes());
            let path = dir.join(page.get_filename());
            std::fs::write(&path, roff).expect("write a man page");
            let key = name.strip_prefix("portctl-").unwrap_or(&name).to_string();
            pages.push((key, path));
            let mut next = parents.to_vec();
            next.push(name);
            walk(sub, &next, man, dir, pages);
        }
    }
    walk(cmd, &["portctl".to_string()], &man, dir, &mut pages);
    pages
}

/// The top page's SEE ALSO: every command's page, the docs, and ss(8)/lsof(8).
fn see_also(cmd: &clap::Command) -> String {
    let mut s = String::from(".SH \"SEE ALSO\"\n");
    let names: Vec<String> = cmd
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| format!("\\fBportctl\\-{}\\fR(1)", c.get_name()))
        .chain(["\\fBss\\fR(8)".to_string(), "\\fBlsof\\fR(8)".to_string()])
        .collect();
    let _ = writeln!(s, "{}", names.join(", "));
    s.push_str(".PP\nREADME.md and docs/ in the source repository, or /usr/share/doc/portctl/ from the .deb: one page per command, \
                JSON, Prometheus metrics, permissions, exit codes.\n");
    s
}

/// `OUT_DIR/completions.rs` and `OUT_DIR/man_pages.rs`: tables of the
/// generated files, `include!`d by `src/commands/{completions,man}.rs`.
fn write_indexes(out_dir: &Path, completions: &[(&str, PathBuf)], pages: &[(String, PathBuf)]) {
    let table = |doc: &str, name: &str, rows: Vec<(String, &PathBuf)>| {
        let mut s = format!("// @generated by build.rs\n\n/// {doc}\npub const {name}: &[(&str, &str)] = &[\n");
        for (key, p) in rows {
            let _ = writeln!(s, "    ({key:?}, include_str!({:?})),", p.display().to_string());
        }
        s.push_str("];\n");
        s
    };
    let c = table(
        "(shell, completion script)",
        "COMPLETIONS",
        completions.iter().map(|(k, p)| (k.to_string(), p)).collect(),
    );
    std::fs::write(out_dir.join("completions.rs"), c).expect("write OUT_DIR/completions.rs");
    let m = table(
        "(command, man page in roff); `portctl` is the main page",
        "MAN_PAGES",
        pages.iter().map(|(k, p)| (k.clone(), p)).collect(),
    );
    std::fs::write(out_dir.join("man_pages.rs"), m).expect("write OUT_DIR/man_pages.rs");
}
