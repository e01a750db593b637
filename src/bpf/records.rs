//! The records the programs write (`struct owner_rec`, `struct sock_rec` in
//! `bpf/portctl.bpf.c`): fixed-size, little-endian on the machines BPF runs
//! on (native order), decoded without trusting the length of what was read.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `owner_rec.bits` / `sock_rec.bits`.
pub const OWN_TABLE: u8 = 1;
pub const INET: u8 = 2;
pub const REUSEADDR: u8 = 4;
pub const REUSEPORT: u8 = 8;
pub const NO_FILE: u8 = 16;
pub const KERNEL: u8 = 32;
pub const TIME_WAIT: u8 = 64;
pub const REQUEST: u8 = 128;
/// `owner_rec.bits` of a record that is no socket: the first descriptor the
/// iterator session saw (`fd` is `u32::MAX`).
pub const SEEN: u8 = 128;

/// One socket descriptor (iter/task_file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnerRec {
    pub tgid: u32,
    /// The thread whose table holds it; `tgid` for the process's own.
    pub tid: u32,
    pub fd: u32,
    pub bits: u8,
    pub inode: u64,
}

pub const OWNER_REC: usize = 24;

/// One TCP or UDP socket (iter/tcp, iter/udp).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SockRec {
    /// 0 for TIME_WAIT and request sockets.
    pub inode: u64,
    pub local: IpAddr,
    pub remote: IpAddr,
    pub sport: u16,
    pub dport: u16,
    /// The kernel's state number (TCP_*).
    pub state: u8,
    pub bits: u8,
    /// From the UDP iterator (else TCP).
    pub udp: bool,
}

pub const SOCK_REC: usize = 48;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from(u32_at(b, at)) | u64::from(u32_at(b, at + 4)) << 32
}

/// Appends the owner records in `data` (a partial record at the end, which
/// the kernel never writes, is ignored).
pub fn owners(data: &[u8], out: &mut Vec<OwnerRec>) {
    out.extend(data.chunks_exact(OWNER_REC).map(|r| OwnerRec {
        tgid: u32_at(r, 0),
        tid: u32_at(r, 4),
        fd: u32_at(r, 8),
        bits: u32_at(r, 12) as u8,
        inode: u64_at(r, 16),
    }));
}

/// The socket records in `data`, from the UDP iterator or the TCP one.
pub fn sockets(data: &[u8], udp: bool, out: &mut Vec<SockRec>) {
    out.extend(data.chunks_exact(SOCK_REC).filter_map(|r| {
        let family = u16_at(r, 40);
        let addr = |at: usize| -> Option<IpAddr> {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&r[at..at + 16]);
            match i32::from(family) {
                libc::AF_INET => Some(IpAddr::V4(Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3]))),
                libc::AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(octets))),
                _ => None,
            }
        };
        Some(SockRec {
            inode: u64_at(r, 0),
            local: addr(8)?,
            remote: addr(24)?,
            sport: u16_at(r, 42),
            dport: u16_at(r, 44),
            state: r[46],
            bits: r[47],
            udp,
        })
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decodes_both_kinds() {
        let mut o = Vec::new();
        o.extend_from_slice(&700u32.to_ne_bytes());
        o.extend_from_slice(&701u32.to_ne_bytes());
        o.extend_from_slice(&9u32.to_ne_bytes());
        o.extend_from_slice(&u32::from(OWN_TABLE | INET).to_ne_bytes());
        o.extend_from_slice(&123_456u64.to_ne_bytes());
        let mut owners_out = Vec::new();
        owners(&o, &mut owners_out);
        assert_eq!(owners_out, [OwnerRec { tgid: 700, tid: 701, fd: 9, bits: OWN_TABLE | INET, inode: 123_456 }]);

        let mut s = vec![0u8; SOCK_REC];
        s[0..8].copy_from_slice(&42u64.to_ne_bytes());
        s[8..12].copy_from_slice(&[127, 0, 0, 1]);
        s[24..28].copy_from_slice(&[10, 0, 0, 2]);
        s[40..42].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        s[42..44].copy_from_slice(&8080u16.to_ne_bytes());
        s[44..46].copy_from_slice(&40000u16.to_ne_bytes());
        s[46] = 6;
        s[47] = INET | REUSEADDR | TIME_WAIT;
        let mut socks = Vec::new();
        sockets(&s, false, &mut socks);
        assert_eq!(socks.len(), 1);
        let r = socks[0];
        assert_eq!(
            (r.inode, r.local, r.remote, r.sport, r.dport, r.state),
            (42, IpAddr::from([127, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]), 8080, 40000, 6)
        );
        // Another family: not an IP socket, skipped.
        s[40..42].copy_from_slice(&1u16.to_ne_bytes());
        socks.clear();
        sockets(&s, false, &mut socks);
        assert!(socks.is_empty());
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut o = Vec::new();
            owners(&data, &mut o);
            prop_assert_eq!(o.len(), data.len() / OWNER_REC);
            let mut s = Vec::new();
            sockets(&data, true, &mut s);
            prop_assert!(s.len() <= data.len() / SOCK_REC);
        }
    }
}
