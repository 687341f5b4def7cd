//! Addresses and prefixes in the datapath's 16-byte key space, and
//! longest-prefix match.
//!
//! The LPM trie of the datapath is keyed by 16-byte addresses: IPv6 as is,
//! IPv4 as IPv4-mapped (`::ffff:a.b.c.d`), so an IPv4 `/n` is a `/(96 + n)`.
//! IPv4 and IPv6 must classify separately (docs/language.md, Semantics), so
//! when an IPv6 prefix contains the IPv4-mapped block `::ffff:0:0/96` the
//! compiler adds that block for `world` ([`v4_guard`]): an IPv4 address that no
//! IPv4 prefix holds then lands in `world`, not in the IPv6 zone.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};

use crate::model::ZoneId;

/// The IPv4-mapped block `::ffff:0:0/96`.
pub const V4_MAPPED_BASE: u128 = 0xffff_0000_0000;

/// A prefix in the 16-byte key space: address (host bits zero) and length 0..=128.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub addr: u128,
    pub len: u8,
}

impl Key {
    /// The key of a prefix as the datapath stores it.
    #[must_use]
    pub fn of(net: IpNetwork) -> Self {
        match net {
            IpNetwork::V4(n) => Self {
                addr: V4_MAPPED_BASE | u128::from(u32::from(n.network())),
                len: 96 + n.prefix(),
            },
            IpNetwork::V6(n) => Self {
                addr: u128::from(n.network()),
                len: n.prefix(),
            },
        }
    }

    /// Back to the language's form: IPv4 for keys inside `::ffff:0:0/96`.
    #[must_use]
    pub fn network(self) -> IpNetwork {
        if self.len >= 96 && self.addr >> 32 == V4_MAPPED_BASE >> 32 {
            #[expect(
                clippy::cast_possible_truncation,
                reason = "low 32 bits are the IPv4 address"
            )]
            let a = Ipv4Addr::from(self.addr as u32);
            IpNetwork::V4(Ipv4Network::new(a, self.len - 96).expect("length <= 32"))
        } else {
            IpNetwork::V6(
                Ipv6Network::new(Ipv6Addr::from(self.addr), self.len).expect("length <= 128"),
            )
        }
    }

    /// The 16 bytes of the trie key (network byte order).
    #[must_use]
    pub fn bytes(self) -> [u8; 16] {
        self.addr.to_be_bytes()
    }

    #[must_use]
    pub fn contains(self, addr: u128) -> bool {
        mask(addr, self.len) == self.addr
    }

    /// Does this prefix contain (or equal) `other`?
    #[must_use]
    pub fn contains_key(self, other: Self) -> bool {
        self.len <= other.len && self.contains(other.addr)
    }
}

/// `addr` with everything past the first `len` bits cleared.
#[must_use]
pub fn mask(addr: u128, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        addr & (u128::MAX << (128 - u32::from(len)))
    }
}

/// An address in the 16-byte key space.
#[must_use]
pub fn addr_key(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => V4_MAPPED_BASE | u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// Is this IPv6 prefix inside the IPv4-mapped block (which the language
/// reserves: such addresses must be written as IPv4)?
#[must_use]
pub fn is_v4_mapped_v6(net: &IpNetwork) -> bool {
    matches!(net, IpNetwork::V6(_))
        && net.prefix() >= 96
        && Key::of(*net).addr >> 32 == V4_MAPPED_BASE >> 32
}

/// The guard key `::ffff:0:0/96`, the IPv4 default route in key space.
#[must_use]
pub fn v4_guard() -> Key {
    Key {
        addr: V4_MAPPED_BASE,
        len: 96,
    }
}

/// Longest-prefix match over keys: one hash map per prefix length, probed
/// from the longest length down (at most 129 probes).
#[derive(Clone, Debug, Default)]
pub struct Lpm {
    by_len: Vec<(u8, HashMap<u128, ZoneId>)>,
}

impl Lpm {
    #[must_use]
    pub fn new(entries: impl IntoIterator<Item = (Key, ZoneId)>) -> Self {
        let mut maps: HashMap<u8, HashMap<u128, ZoneId>> = HashMap::new();
        for (k, z) in entries {
            maps.entry(k.len).or_default().insert(k.addr, z);
        }
        let mut by_len: Vec<_> = maps.into_iter().collect();
        by_len.sort_by_key(|e| std::cmp::Reverse(e.0));
        Self { by_len }
    }

    /// The zone of the most specific prefix holding `addr`, `None` if none does.
    #[must_use]
    pub fn lookup(&self, addr: u128) -> Option<ZoneId> {
        self.by_len
            .iter()
            .find_map(|(len, m)| m.get(&mask(addr, *len)).copied())
    }

    /// The most specific prefix strictly containing `key` (shorter than it).
    #[must_use]
    pub fn parent(&self, key: Key) -> Option<(Key, ZoneId)> {
        self.by_len
            .iter()
            .filter(|(len, _)| *len < key.len)
            .find_map(|(len, m)| {
                let a = mask(key.addr, *len);
                m.get(&a).map(|&z| (Key { addr: a, len: *len }, z))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNetwork {
        s.parse().unwrap()
    }

    #[test]
    fn keys_round_trip() {
        for s in [
            "10.20.0.0/23",
            "0.0.0.0/0",
            "2001:db8::/32",
            "::/0",
            "10.0.0.1/32",
        ] {
            assert_eq!(Key::of(net(s)).network(), net(s), "{s}");
        }
        assert_eq!(Key::of(net("10.0.0.0/8")).len, 104);
        assert_eq!(Key::of(net("0.0.0.0/0")), v4_guard());
    }

    #[test]
    fn longest_prefix_wins() {
        let lpm = Lpm::new([
            (Key::of(net("10.0.0.0/8")), 1),
            (Key::of(net("10.1.0.0/16")), 2),
            (Key::of(net("::/0")), 3),
            (v4_guard(), 0),
        ]);
        let a = |s: &str| addr_key(s.parse().unwrap());
        assert_eq!(lpm.lookup(a("10.1.2.3")), Some(2));
        assert_eq!(lpm.lookup(a("10.2.2.3")), Some(1));
        assert_eq!(lpm.lookup(a("11.0.0.1")), Some(0));
        assert_eq!(lpm.lookup(a("2001:db8::1")), Some(3));
        assert_eq!(
            lpm.parent(Key::of(net("10.1.0.0/16"))).map(|p| p.1),
            Some(1)
        );
        assert!(is_v4_mapped_v6(&net("::ffff:10.0.0.0/104")));
        assert!(!is_v4_mapped_v6(&net("::/0")));
    }
}
