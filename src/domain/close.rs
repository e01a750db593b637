//! `close`: which sockets a filter names, what became of each when the
//! kernel was asked to destroy it, the summary and the exit status. The
//! `close --json` object is documented in docs/json.md; talking to the
//! kernel is the command's (through the inventory).

use serde::{Deserialize, Serialize};

use crate::error::UserError;
use crate::model::Socket;
use crate::report::{EXIT_ERROR, EXIT_MATCHED, EXIT_NO_MATCH};
use crate::text::plural;

/// `close --json`, documented in docs/json.md.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseReport {
    pub dry_run: bool,
    /// One entry per socket the filter matched, in the listing's order.
    pub sockets: Vec<Closed>,
    /// The summary line.
    pub message: String,
}

/// One socket and what happened to it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Closed {
    /// `closed`, `would_close` (dry run), `gone` (it no longer existed, or
    /// its addresses now belong to another socket: nothing was closed),
    /// `failed`.
    pub result: String,
    pub reason: Option<String>,
    /// The socket record (with its owners) as it was before.
    pub socket: Socket,
}

/// The report before anything is done: every socket `would_close` on a
/// dry run, to be filled in otherwise.
pub fn plan(sockets: Vec<Socket>, dry_run: bool) -> CloseReport {
    let result = if dry_run { "would_close" } else { "" };
    CloseReport {
        dry_run,
        sockets: sockets.into_iter().map(|socket| Closed { result: result.into(), reason: None, socket }).collect(),
        message: String::new(),
    }
}

/// What a SOCK_DESTROY's errno means for one socket: `closed` (0), `gone`
/// (ENOENT, ESTALE: the kernel found no such socket, or another one on its
/// addresses), or `failed` with the reason.
pub fn outcome(errno: i32) -> (&'static str, Option<String>) {
    match errno {
        0 => ("closed", None),
        libc::ENOENT => ("gone", Some("it no longer exists".into())),
        libc::ESTALE => ("gone", Some("its addresses belong to another socket now (the cookie differs)".into())),
        e => ("failed", Some(std::io::Error::from_raw_os_error(e).to_string())),
    }
}

/// Errors that stop `close` altogether, with what to do: nothing can be
/// closed without CAP_NET_ADMIN or on a kernel without
/// CONFIG_INET_DIAG_DESTROY.
pub fn fatal(errno: i32, root: bool) -> Option<UserError> {
    match errno {
        libc::EPERM | libc::EACCES => Some(
            UserError::new(
                "the kernel refused to close the socket (EPERM): closing sockets needs CAP_NET_ADMIN in the socket's network namespace",
            )
            .hint(if root {
                "even as root this process lacks CAP_NET_ADMIN (a container, or a capability bounding set, removed it)"
            } else {
                "run it as root, or grant CAP_NET_ADMIN"
            }),
        ),
        libc::EOPNOTSUPP => Some(
            UserError::new(
                "this kernel cannot close sockets from outside (EOPNOTSUPP): it was built without CONFIG_INET_DIAG_DESTROY",
            )
            .hint("`ss -K` cannot either; stop or signal the holder instead (`portctl kill`)"),
        ),
        _ => None,
    }
}

fn count(r: &CloseReport, result: &str) -> usize {
    r.sockets.iter().filter(|c| c.result == result).count()
}

/// The summary line.
pub fn summary(r: &CloseReport) -> String {
    let n = r.sockets.len();
    if n == 0 {
        return "nothing to close: no socket matched".into();
    }
    if r.dry_run {
        return format!("dry run: would close {n} socket{}", plural(n));
    }
    let (closed, gone, failed) = (count(r, "closed"), count(r, "gone"), count(r, "failed"));
    let mut s = format!("closed {closed} of {n} socket{}", plural(n));
    if closed > 0 {
        s.push_str(" (their holders see ECONNABORTED; TCP peers get a reset)");
    }
    if gone > 0 {
        s.push_str(&format!("; {gone} had gone already"));
    }
    if failed > 0 {
        s.push_str(&format!("; {failed} could not be closed"));
    }
    s
}

/// 0 something closed and nothing failed (or a dry run that matched), 1
/// nothing matched or nothing was left to close, 2 a socket could not be
/// closed.
pub fn status(r: &CloseReport) -> i32 {
    if r.sockets.is_empty() {
        EXIT_NO_MATCH
    } else if r.dry_run {
        EXIT_MATCHED
    } else if count(r, "failed") > 0 {
        EXIT_ERROR
    } else if count(r, "closed") > 0 {
        EXIT_MATCHED
    } else {
        EXIT_NO_MATCH
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Proto, State};

    fn sock(port: u16) -> Socket {
        Socket::sample(Proto::Tcp, State::Established, &format!("127.0.0.1:{port}"), Some("127.0.0.1:80"), 1)
    }

    #[test]
    fn outcomes_summary_and_status() {
        let mut r = plan(vec![sock(1), sock(2), sock(3)], false);
        assert!(r.sockets.iter().all(|c| c.result.is_empty()));
        for (c, errno) in r.sockets.iter_mut().zip([0, libc::ENOENT, libc::ESTALE]) {
            let (result, reason) = outcome(errno);
            c.result = result.into();
            c.reason = reason;
        }
        assert_eq!(
            summary(&r),
            "closed 1 of 3 sockets (their holders see ECONNABORTED; TCP peers get a reset); 2 had gone already"
        );
        assert_eq!(status(&r), EXIT_MATCHED);
        r.sockets[0].result = "failed".into();
        assert_eq!(status(&r), EXIT_ERROR);
        r.sockets[0].result = "gone".into();
        assert_eq!(status(&r), EXIT_NO_MATCH, "nothing was left to close");
        let dry = plan(vec![sock(1)], true);
        assert_eq!((summary(&dry).as_str(), status(&dry)), ("dry run: would close 1 socket", EXIT_MATCHED));
        let none = plan(Vec::new(), false);
        assert_eq!((summary(&none).as_str(), status(&none)), ("nothing to close: no socket matched", EXIT_NO_MATCH));
        assert_eq!(outcome(libc::EINVAL).0, "failed");
    }

    #[test]
    fn fatal_errors_say_what_is_missing() {
        let e = fatal(libc::EPERM, true).unwrap();
        assert!(e.msg.contains("CAP_NET_ADMIN") && e.hint.as_deref().unwrap().contains("even as root"), "{e:?}");
        assert!(!e.hint.as_deref().unwrap().contains("sudo"));
        assert!(fatal(libc::EPERM, false).unwrap().hint.unwrap().contains("run it as root"));
        assert!(fatal(libc::EOPNOTSUPP, true).unwrap().msg.contains("CONFIG_INET_DIAG_DESTROY"));
        assert!(fatal(libc::ENOENT, true).is_none());
    }
}
