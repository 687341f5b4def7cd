//! Large generated policies: thousands of zones and rules, for the nftables
//! scale test (`tests/tests/nft_scale`) and the side-by-side with Aerleon
//! (`bench/aerleon`).
//!
//! Zone `zI` holds `10.(I / 256).(I % 256).0/24` and `10.(128 + I / 256).(I %
//! 256).0/24`, and with IPv6 also `2001:db8:I::/48` (I in hex), so ids pass
//! 255 and 4,095 as zones are added (up to 32,768 zones). Rules join two
//! different zones. A [`Mix::Plain`] policy is the issue's: every zone
//! isolated, only `allow` rules on two TCP ports, which Aerleon can express
//! too. A [`Mix::Rich`] policy adds what the nftables maps must also carry:
//! UDP port ranges, ICMP types, other protocols, `deny` rules, zones that are
//! not isolated and zones in monitor mode. The same seed gives the same
//! policy.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What the rules and zones are made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mix {
    /// Isolated zones, `allow` rules on `tcp/8443` and one more TCP port.
    Plain,
    /// Every service form the maps hold, denies, monitor and open zones.
    Rich,
}

/// The size and shape of a generated policy.
#[derive(Clone, Copy, Debug)]
pub struct Scale {
    pub zones: usize,
    pub rules: usize,
    pub ipv6: bool,
    pub mix: Mix,
    pub seed: u64,
}

/// A service of a generated rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// Protocol number (6, 17) and an inclusive port range.
    Ports(u8, u16, u16),
    /// ICMP (1) or ICMPv6 (58) and a type.
    Icmp(u8, u8),
    /// Another IP protocol, every packet of it.
    Proto(u8),
}

#[derive(Clone, Debug)]
pub struct Rule {
    pub deny: bool,
    pub src: usize,
    pub dst: usize,
    pub services: Vec<Service>,
}

#[derive(Clone, Debug)]
pub struct Zone {
    pub isolated: bool,
    pub monitor: bool,
}

/// A generated policy.
#[derive(Clone, Debug)]
pub struct Policy {
    pub scale: Scale,
    pub zones: Vec<Zone>,
    pub rules: Vec<Rule>,
}

/// splitmix64: small, deterministic, good enough to pick zones and ports.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).expect("below a usize")
    }

    fn port(&mut self) -> u16 {
        u16::try_from(1024 + self.below(64_511)).expect("a port")
    }

    /// True with probability `1 / n`.
    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
}

impl Policy {
    /// # Panics
    /// With fewer than two or more than 32,768 zones.
    #[must_use]
    pub fn generate(scale: Scale) -> Self {
        assert!((2..=32_768).contains(&scale.zones), "2 to 32,768 zones");
        let mut rng = Rng(scale.seed);
        let rich = scale.mix == Mix::Rich;
        let zones = (0..scale.zones)
            .map(|_| Zone {
                isolated: !rich || !rng.one_in(8),
                monitor: rich && rng.one_in(40),
            })
            .collect();
        let rules = (0..scale.rules)
            .map(|_| {
                let src = rng.below(scale.zones);
                let dst = (src + 1 + rng.below(scale.zones - 1)) % scale.zones;
                let services = if rich {
                    (0..=rng.below(2))
                        .map(|_| match rng.below(10) {
                            0..=4 => Service::Ports(6, rng.port(), 0).with_hi(&mut rng),
                            5..=6 => Service::Ports(17, rng.port(), 0).with_hi(&mut rng),
                            7 => Service::Icmp(1, [0, 3, 8, 11][rng.below(4)]),
                            8 => Service::Icmp(58, [1, 128, 129][rng.below(3)]),
                            _ => Service::Proto([47, 50, 89][rng.below(3)]),
                        })
                        .collect()
                } else {
                    let p = rng.port();
                    vec![Service::Ports(6, 8443, 8443), Service::Ports(6, p, p)]
                };
                Rule {
                    deny: rich && rng.one_in(10),
                    src,
                    dst,
                    services,
                }
            })
            .collect();
        Self {
            scale,
            zones,
            rules,
        }
    }

    /// Zone `i`'s prefixes, IPv4 first.
    #[must_use]
    pub fn prefixes(&self, i: usize) -> Vec<(IpAddr, u8)> {
        let (hi, lo) = (u8::try_from(i / 256).expect("< 128"), (i % 256) as u8);
        let mut out = vec![
            (IpAddr::V4(Ipv4Addr::new(10, hi, lo, 0)), 24),
            (IpAddr::V4(Ipv4Addr::new(10, 128 + hi, lo, 0)), 24),
        ];
        if self.scale.ipv6 {
            let seg = u16::try_from(i).expect("< 65,536");
            out.push((
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, seg, 0, 0, 0, 0, 0)),
                48,
            ));
        }
        out
    }

    /// The policy as `.ward` source.
    #[must_use]
    pub fn ward(&self) -> String {
        let mut out = String::new();
        for (i, z) in self.zones.iter().enumerate() {
            let nets: Vec<String> = self
                .prefixes(i)
                .iter()
                .map(|(a, l)| format!("{a}/{l}"))
                .collect();
            let _ = write!(out, "zone z{i} {{ networks {}", nets.join(", "));
            if z.isolated {
                out.push_str(" isolated");
            }
            if z.monitor {
                out.push_str(" mode monitor");
            }
            out.push_str(" }\n");
        }
        for r in &self.rules {
            let services: Vec<String> = r
                .services
                .iter()
                .map(|s| match *s {
                    Service::Ports(p, lo, hi) => {
                        let name = if p == 6 { "tcp" } else { "udp" };
                        if lo == hi {
                            format!("{name}/{lo}")
                        } else {
                            format!("{name}/{lo}-{hi}")
                        }
                    }
                    Service::Icmp(1, t) => format!("icmp/{t}"),
                    Service::Icmp(_, t) => format!("icmpv6/{t}"),
                    Service::Proto(p) => format!("proto/{p}"),
                })
                .collect();
            let _ = writeln!(
                out,
                "{} z{} -> z{} : {}",
                if r.deny { "deny" } else { "allow" },
                r.src,
                r.dst,
                services.join(", ")
            );
        }
        out
    }

    /// The policy as Aerleon input: `(networks.net, services.svc, policy.pol)`
    /// for its `nftables` generator (`inet`, a `forward` filter chain with
    /// policy drop). Only [`Mix::Plain`] policies have an exact equivalent.
    ///
    /// # Panics
    /// For a [`Mix::Rich`] policy.
    #[must_use]
    pub fn aerleon(&self) -> (String, String, String) {
        assert_eq!(
            self.scale.mix,
            Mix::Plain,
            "Aerleon input only for plain policies"
        );
        let mut nets = String::new();
        for i in 0..self.zones.len() {
            let _ = writeln!(nets, "Z{i} =");
            for (a, l) in self.prefixes(i) {
                let _ = writeln!(nets, "    {a}/{l}");
            }
            nets.push('\n');
        }
        let mut ports = std::collections::BTreeSet::new();
        for r in &self.rules {
            for s in &r.services {
                if let Service::Ports(_, lo, _) = s {
                    ports.insert(*lo);
                }
            }
        }
        let mut svcs = String::new();
        for p in ports {
            let _ = writeln!(svcs, "P{p} = {p}/tcp");
        }
        let mut pol = String::from("header {\n  target:: nftables mixed FORWARD noverbose\n}\n\n");
        for (n, r) in self.rules.iter().enumerate() {
            let ports: Vec<String> = r
                .services
                .iter()
                .map(|s| match s {
                    Service::Ports(_, lo, _) => format!("P{lo}"),
                    _ => unreachable!("plain policies have TCP ports only"),
                })
                .collect();
            let _ = writeln!(
                pol,
                "term r{n} {{\n  source-address:: Z{}\n  destination-address:: Z{}\n  protocol:: tcp\n  destination-port:: {}\n  action:: accept\n}}\n",
                r.src,
                r.dst,
                ports.join(" ")
            );
        }
        (nets, svcs, pol)
    }
}

impl Service {
    /// A port range of 0 to 99 ports above `lo`.
    fn with_hi(self, rng: &mut Rng) -> Self {
        match self {
            Self::Ports(p, lo, _) => {
                let len = if rng.one_in(2) { 0 } else { rng.below(100) };
                Self::Ports(p, lo, lo.saturating_add(u16::try_from(len).expect("< 100")))
            }
            other => other,
        }
    }
}
