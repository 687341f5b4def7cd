//! A gateway namespace running an nftables ruleset, between a sender and a
//! receiver namespace.
//!
//! ```text
//! sender [eth0] ---- [in0] gateway [out0] ---- [eth0] receiver
//! ```
//!
//! The sender injects crafted frames with a raw socket; the gateway forwards
//! them (every route leads to `out0`) through its `forward` hook; a raw
//! socket on the receiver captures what came through. The gateway's next hop
//! is a permanent neighbour entry with a MAC address nobody owns, so the
//! receiver's IP stack ignores the frames (`PACKET_OTHERHOST`): it never
//! answers, never sends an ICMP error, so conntrack never sees a reply and
//! every probe is decided by the policy alone.

use std::time::Duration;

use anyhow::Context as _;
use wardgate_tests::{
    netns::{Netns, ip},
    rawsock::{self, RawSocket},
};

/// The MAC address the gateway sends forwarded frames to.
const NEXT_HOP_MAC: &str = "02:00:00:00:00:99";

pub struct Gateway {
    // Sockets first: they close before their namespaces go.
    tx: RawSocket,
    rx: RawSocket,
    /// `in0`'s MAC: the destination of injected frames.
    pub gw_mac: [u8; 6],
    pub gateway: Netns,
    _sender: Netns,
    _receiver: Netns,
    ruleset: std::path::PathBuf,
}

impl Gateway {
    pub fn new() -> anyhow::Result<Self> {
        let sender = Netns::new("nft-snd")?;
        let gateway = Netns::new("nft-gw")?;
        let receiver = Netns::new("nft-rcv")?;
        for (ns, iface, peer_ns, peer) in [
            (&sender, "eth0", &gateway, "in0"),
            (&receiver, "eth0", &gateway, "out0"),
        ] {
            ip(&[
                "link",
                "add",
                iface,
                "netns",
                ns.name(),
                "type",
                "veth",
                "peer",
                "name",
                peer,
                "netns",
                peer_ns.name(),
            ])?;
            ns.ip(&["link", "set", iface, "up"])?;
            peer_ns.ip(&["link", "set", peer, "up"])?;
        }
        gateway.sysctl("net/ipv4/ip_forward", "1")?;
        gateway.sysctl("net/ipv6/conf/all/forwarding", "1")?;
        // Probes come from addresses that are not routed back to `in0`.
        for iface in ["all", "default", "in0"] {
            gateway.sysctl(&format!("net/ipv4/conf/{iface}/rp_filter"), "0")?;
        }
        for (family, inner, outer, via) in [
            ("-4", "172.31.0.1/24", "172.31.1.1/24", "172.31.1.2"),
            ("-6", "fd00:31::1/64", "fd00:31:1::1/64", "fd00:31:1::2"),
        ] {
            for (addr, dev) in [(inner, "in0"), (outer, "out0")] {
                let mut cmd = vec![family, "addr", "add", addr, "dev", dev];
                if family == "-6" {
                    // No duplicate address detection: usable at once.
                    cmd.push("nodad");
                }
                gateway.ip(&cmd)?;
            }
            gateway.ip(&[
                family,
                "neigh",
                "add",
                via,
                "lladdr",
                NEXT_HOP_MAC,
                "dev",
                "out0",
                "nud",
                "permanent",
            ])?;
            gateway.ip(&[family, "route", "add", "default", "via", via, "dev", "out0"])?;
        }
        let gw_mac = rawsock::mac(&gateway, "in0")?;
        let tx = RawSocket::open_in(&sender, "eth0", false)?;
        let rx = RawSocket::open_in(&receiver, "eth0", true)?;
        let ruleset = std::env::temp_dir().join(format!("{}.nft", gateway.name()));
        Ok(Self {
            tx,
            rx,
            gw_mac,
            gateway,
            _sender: sender,
            _receiver: receiver,
            ruleset,
        })
    }

    /// Loads a ruleset into the gateway with `nft -f`.
    pub fn load(&self, ruleset: &str) -> anyhow::Result<()> {
        std::fs::write(&self.ruleset, ruleset)?;
        let path = self.ruleset.to_str().context("non-UTF-8 temp path")?;
        self.gateway
            .exec_ok("nft", &["-f", path])
            .context("loading the nftables ruleset")?;
        Ok(())
    }

    /// Injects frames at the sender.
    pub fn send(&self, frame: &[u8]) -> anyhow::Result<()> {
        self.tx.send(frame)
    }

    /// Every frame that reached the receiver since the last call.
    pub fn received(&self) -> Vec<Vec<u8>> {
        self.rx
            .drain(Duration::from_millis(20), Duration::from_secs(5))
    }

    /// The table's named counters: name to packets.
    pub fn counters(&self) -> anyhow::Result<std::collections::BTreeMap<String, u64>> {
        let out = self
            .gateway
            .exec_ok("nft", &["list", "counters", "table", "inet", "wardgate"])?;
        // counter NAME {\n comment "..." \n packets N bytes M\n }
        let mut counters = std::collections::BTreeMap::new();
        let mut name: Option<String> = None;
        for line in out.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("counter ") {
                name = rest.split_whitespace().next().map(str::to_owned);
            } else if let Some(rest) = line.strip_prefix("packets ") {
                let packets = rest
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse().ok())
                    .with_context(|| format!("bad counter line `{line}`"))?;
                counters.insert(
                    name.take().context("packets before a counter name")?,
                    packets,
                );
            }
        }
        Ok(counters)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.ruleset);
    }
}
