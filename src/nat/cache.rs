//! The tools' outputs of the last reading, kept while the namespace's
//! nftables ruleset is unchanged.
//!
//! Every change to nftables — iptables-nft's rules included, set and map
//! elements too — is a transaction that bumps the namespace's ruleset
//! generation (`NFT_MSG_GETGEN`, one netlink round trip). Outputs read at
//! generation G are what the tools would print again while the generation
//! is G: `listen` and `who` then skip `nft` and `iptables-nft-save`, which
//! with 5,000 rules cost 60 ms to 0.5 s a run. The key is the namespace's
//! cookie (unique until reboot, unlike its inode) and the generation.
//!
//! Kept only by root, in `/run/portctl` (tmpfs: gone at reboot), a
//! directory portctl creates mode 0700 and trusts only when root owns it
//! and nobody else may write it. Not used when the namespace has legacy
//! iptables tables (x_tables changes bump no nftables generation), nor for
//! a reading that was not complete. `PORTCTL_NAT_CACHE=0` turns it off.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Inputs, RuleSource};

/// Where the cache lives.
pub const DIR: &str = "/run/portctl";

/// How many namespaces' readings are kept at most.
const MAX_FILES: usize = 64;

/// A namespace's ruleset at one generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// `SO_NETNS_COOKIE` of the calling thread's namespace.
    pub cookie: u64,
    /// The nftables ruleset generation.
    pub generation: u32,
}

impl Key {
    /// The calling thread's namespace, now; `None` without nf_tables, or
    /// when the cache is off.
    pub fn here() -> Option<Key> {
        if std::env::var_os("PORTCTL_NAT_CACHE").is_some_and(|v| v == "0") || !crate::sys::is_root() {
            return None;
        }
        Some(Key { cookie: crate::sys::netns_cookie().ok()?, generation: generation().ok()? })
    }

    fn file(&self, dir: &Path) -> PathBuf {
        dir.join(format!("nat-{:016x}-{}.json", self.cookie, self.generation))
    }

    /// The outputs kept for this key, if any (and trusted).
    pub fn load(&self, dir: &Path) -> Option<Inputs> {
        trusted(dir).ok()?;
        let path = self.file(dir);
        let meta = std::fs::symlink_metadata(&path).ok()?;
        if !meta.is_file() || meta.uid() != 0 || meta.mode() & 0o022 != 0 {
            return None;
        }
        let kept: Kept = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
        (kept.version == VERSION).then(|| kept.into_inputs())
    }

    /// Keeps `inputs` for this key, and drops what was kept for the same
    /// namespace at other generations. Failures are silent: the cache only
    /// saves time.
    pub fn store(&self, dir: &Path, inputs: &Inputs) {
        let _ = self.try_store(dir, inputs);
    }

    fn try_store(&self, dir: &Path, inputs: &Inputs) -> std::io::Result<()> {
        match std::fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        trusted(dir)?;
        let prefix = format!("nat-{:016x}-", self.cookie);
        let mut others = Vec::new();
        for e in std::fs::read_dir(dir)?.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_file(e.path());
            } else if let Ok(m) = e.metadata() {
                others.push((m.modified().ok(), e.path()));
            }
        }
        // Namespaces come and go: the files of the MAX_FILES most recent
        // readings stay, older ones go.
        if others.len() >= MAX_FILES {
            others.sort();
            for (_, p) in &others[..others.len() + 1 - MAX_FILES] {
                let _ = std::fs::remove_file(p);
            }
        }
        let body = serde_json::to_vec(&Kept::of(inputs)).map_err(std::io::Error::other)?;
        let tmp = dir.join(format!(".{prefix}{}.{}", self.generation, std::process::id()));
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(&body)?;
        drop(f);
        std::fs::rename(&tmp, self.file(dir)).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    }
}

/// The directory is root's, not a link, and nobody else may write in it.
fn trusted(dir: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(dir)?;
    if meta.is_dir() && meta.uid() == 0 && meta.permissions().mode() & 0o022 == 0 {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("{} is not a directory only root may write", dir.display())))
    }
}

/// The format on disk; a new `VERSION` makes old files unread.
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Kept {
    version: u32,
    nft: Vec<String>,
    /// (family, text) of `iptables-nft-save` outputs.
    iptables_nft: Vec<(String, String)>,
}

impl Kept {
    fn of(inputs: &Inputs) -> Kept {
        Kept {
            version: VERSION,
            nft: inputs.nft.clone(),
            iptables_nft: inputs
                .iptables
                .iter()
                .filter(|(_, s, _)| *s == RuleSource::IptablesNft)
                .map(|(f, _, t)| (f.to_string(), t.clone()))
                .collect(),
        }
    }

    fn into_inputs(self) -> Inputs {
        Inputs {
            nft: self.nft,
            iptables: self
                .iptables_nft
                .into_iter()
                .map(|(f, t)| (if f == "ip6" { "ip6" } else { "ip" }, RuleSource::IptablesNft, t))
                .collect(),
        }
    }
}

/// `NFT_MSG_GETGEN`: the calling thread's namespace's nftables ruleset
/// generation.
pub fn generation() -> std::io::Result<u32> {
    use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};
    const NFNL_SUBSYS_NFTABLES: u16 = 10;
    const NFT_MSG_GETGEN: u16 = 16;
    const NFT_MSG_NEWGEN: u16 = 15;
    const NFTA_GEN_ID: u16 = 1;
    const NLM_F_REQUEST: u16 = 1;
    const NLMSG_ERROR: u16 = 2;
    let mut sock = Socket::new(NETLINK_NETFILTER)?;
    sock.bind_auto()?;
    sock.connect(&SocketAddr::new(0, 0))?;
    // nlmsghdr (16) + nfgenmsg (family AF_UNSPEC, version 0, res_id 0).
    let mut req = vec![0u8; 20];
    req[0..4].copy_from_slice(&20u32.to_ne_bytes());
    req[4..6].copy_from_slice(&(NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETGEN).to_ne_bytes());
    req[6..8].copy_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    sock.send(&req, 0)?;
    let mut buf = Vec::with_capacity(4096);
    sock.recv(&mut buf, 0)?;
    parse_generation(&buf, NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWGEN, NLMSG_ERROR, NFTA_GEN_ID)
}

/// The generation in a reply to `NFT_MSG_GETGEN`.
fn parse_generation(buf: &[u8], newgen: u16, error: u16, attr_id: u16) -> std::io::Result<u32> {
    let bad = || std::io::Error::other("a malformed NFT_MSG_NEWGEN reply");
    let u16_at = |b: &[u8], i: usize| b.get(i..i + 2).map(|x| u16::from_ne_bytes([x[0], x[1]]));
    let len = buf.get(0..4).map(|x| u32::from_ne_bytes([x[0], x[1], x[2], x[3]]) as usize).ok_or_else(bad)?;
    let msg = buf.get(..len).filter(|m| m.len() >= 20).ok_or_else(bad)?;
    let kind = u16_at(msg, 4).ok_or_else(bad)?;
    if kind == error {
        let errno = msg.get(16..20).map(|x| i32::from_ne_bytes([x[0], x[1], x[2], x[3]])).ok_or_else(bad)?;
        return Err(std::io::Error::from_raw_os_error(-errno));
    }
    if kind != newgen {
        return Err(bad());
    }
    let mut at = 20;
    while at + 4 <= msg.len() {
        let alen = u16_at(msg, at).ok_or_else(bad)? as usize;
        let atype = u16_at(msg, at + 2).ok_or_else(bad)? & 0x3fff;
        if alen < 4 {
            return Err(bad());
        }
        if atype == attr_id && alen >= 8 {
            let v = msg.get(at + 4..at + 8).ok_or_else(bad)?;
            return Ok(u32::from_be_bytes([v[0], v[1], v[2], v[3]]));
        }
        at += (alen + 3) & !3;
    }
    Err(bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> Inputs {
        Inputs {
            nft: vec!["{\"nftables\": []}".to_string()],
            iptables: vec![
                ("ip", RuleSource::IptablesNft, "*nat\n-A DOCKER -p tcp --dport 8080 -j DNAT\nCOMMIT\n".to_string()),
                ("ip6", RuleSource::IptablesNft, "*nat\nCOMMIT\n".to_string()),
                ("ip", RuleSource::IptablesLegacy, "*nat\nCOMMIT\n".to_string()),
            ],
        }
    }

    /// A directory of the test's own, removed at the end.
    struct Scratch(PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn kept_outputs_come_back_for_the_same_key_only() {
        let dir = Scratch(std::env::temp_dir().join(format!("portctl-nat-cache-test-{}", std::process::id())));
        let d = dir.0.join("cache");
        std::fs::create_dir_all(&dir.0).unwrap();
        if !crate::sys::is_root() {
            // The files must be root's to be trusted: as another user the
            // cache is never used.
            let k = Key { cookie: 7, generation: 3 };
            k.store(&d, &inputs());
            assert!(k.load(&d).is_none(), "not root: nothing is trusted");
            return;
        }
        let k = Key { cookie: 7, generation: 3 };
        k.store(&d, &inputs());
        let back = k.load(&d).expect("kept");
        assert_eq!(back.nft, inputs().nft);
        assert_eq!(back.iptables.len(), 2, "legacy outputs are never kept");
        assert_eq!(back.iptables[1].0, "ip6");
        assert!(Key { cookie: 7, generation: 4 }.load(&d).is_none(), "another generation");
        assert!(Key { cookie: 8, generation: 3 }.load(&d).is_none(), "another namespace");
        // A newer generation replaces the old file.
        let k2 = Key { cookie: 7, generation: 4 };
        k2.store(&d, &inputs());
        assert!(k.load(&d).is_none() && k2.load(&d).is_some());
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
        // A directory others may write is not trusted.
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(k2.load(&d).is_none());
        // Garbage is not an error, just no cache.
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(k2.file(&d), b"{not json").unwrap();
        assert!(k2.load(&d).is_none());
    }

    #[test]
    fn generation_replies() {
        // nlmsghdr + nfgenmsg + NFTA_GEN_ID (big endian 0x1234) + a pid attribute.
        let mut m = vec![0u8; 20];
        m.extend_from_slice(&8u16.to_ne_bytes());
        m.extend_from_slice(&2u16.to_ne_bytes());
        m.extend_from_slice(&77u32.to_ne_bytes());
        m.extend_from_slice(&8u16.to_ne_bytes());
        m.extend_from_slice(&1u16.to_ne_bytes());
        m.extend_from_slice(&0x1234u32.to_be_bytes());
        let len = m.len() as u32;
        m[0..4].copy_from_slice(&len.to_ne_bytes());
        m[4..6].copy_from_slice(&(10u16 << 8 | 15).to_ne_bytes());
        assert_eq!(parse_generation(&m, 10 << 8 | 15, 2, 1).unwrap(), 0x1234);
        // An error reply carries -errno.
        let mut e = vec![0u8; 36];
        e[0..4].copy_from_slice(&36u32.to_ne_bytes());
        e[4..6].copy_from_slice(&2u16.to_ne_bytes());
        e[16..20].copy_from_slice(&(-libc::EPERM).to_ne_bytes());
        assert_eq!(parse_generation(&e, 10 << 8 | 15, 2, 1).unwrap_err().raw_os_error(), Some(libc::EPERM));
        // Truncated or empty: an error, never a panic.
        for cut in 0..m.len() {
            let _ = parse_generation(&m[..cut], 10 << 8 | 15, 2, 1);
        }
    }
}
