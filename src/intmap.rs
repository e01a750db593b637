//! A hash map for small integer keys: pids, uids, (protocol, port).
//!
//! Such keys are numbers the kernel hands out, not strings an attacker
//! picks, so a multiplicative hash spreads them well. The default SipHash
//! was 6% of `conns`' user time at 133k sockets (one lookup per owner and
//! several per socket for service names); this costs a multiply.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

pub type IntMap<K, V> = HashMap<K, V, BuildHasherDefault<IntHasher>>;

/// Fibonacci hashing: the high bits, which the map uses first, depend on
/// every bit of the key.
#[derive(Default)]
pub struct IntHasher(u64);

impl Hasher for IntHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Keys here are integers; bytes still fold in, one at a time.
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }

    fn write_u16(&mut self, n: u16) {
        self.write_u64(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(23) ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_as_a_map() {
        let mut m: IntMap<u32, u32> = IntMap::default();
        for pid in 0..10_000u32 {
            m.insert(pid * 7, pid);
        }
        assert_eq!(m.len(), 10_000);
        assert_eq!(m.get(&(4242 * 7)), Some(&4242));
        assert_eq!(m.get(&1), None);
        let mut t: IntMap<(crate::model::Proto, u16), &str> = IntMap::default();
        t.insert((crate::model::Proto::Tcp, 80), "http");
        t.insert((crate::model::Proto::Udp, 80), "other");
        assert_eq!(t[&(crate::model::Proto::Tcp, 80)], "http");
        assert_eq!(t[&(crate::model::Proto::Udp, 80)], "other");
    }

    #[test]
    fn keys_differing_in_low_bits_differ_in_high_bits() {
        let h = |n: u32| {
            let mut s = IntHasher::default();
            s.write_u32(n);
            s.finish() >> 57
        };
        let tops: std::collections::BTreeSet<u64> = (1000..1128).map(h).collect();
        assert!(tops.len() > 64, "top 7 bits of 128 consecutive pids take {} values", tops.len());
    }
}
