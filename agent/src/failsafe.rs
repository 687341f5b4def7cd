//! The failsafe: traffic that always passes, so that no policy can lock the
//! operator out of the gateway. By default: TCP port 22 (SSH) to every
//! address of the gateway itself.
//!
//! The program checks the `WG_FAILSAFE` map (keys: destination address, TCP
//! port, protocol 6) before quarantine and policy, when the config has
//! `CONFIG_FAILSAFE`. The agent keeps the map equal to addresses × ports,
//! re-reading the gateway's addresses periodically (they may change).

use std::{collections::BTreeSet, net::IpAddr};

use anyhow::{Context as _, bail};
use aya::{
    Ebpf,
    maps::{HashMap, MapData},
};
use wardgate_common::{FailsafeKey, IPPROTO_TCP, maps};

use crate::quarantine;

/// Parses a failsafe port: `tcp/22` or `22` (TCP). The datapath's failsafe
/// covers TCP only.
pub fn parse_port(spec: &str) -> anyhow::Result<u16> {
    let spec = spec.trim();
    let number = match spec.split_once('/') {
        Some(("tcp", n)) => n,
        Some((proto, _)) => bail!(
            "failsafe port `{spec}`: the failsafe covers TCP only (write `tcp/PORT`), not `{proto}`"
        ),
        None => spec,
    };
    match number.parse::<u16>() {
        Ok(0) | Err(_) => bail!("failsafe port `{spec}` is not a port number (1 to 65535)"),
        Ok(port) => Ok(port),
    }
}

/// Every address configured on the gateway's interfaces (this network
/// namespace), loopback excluded.
pub fn own_addresses() -> anyhow::Result<BTreeSet<IpAddr>> {
    let mut addrs = BTreeSet::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: `head` is a valid out-pointer; on success the list is freed below.
    #[allow(unsafe_code, reason = "getifaddrs(3) has no safe wrapper in std")]
    let rc = unsafe { libc::getifaddrs(&raw mut head) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("listing the gateway's addresses");
    }
    let mut cursor = head;
    while !cursor.is_null() {
        // SAFETY: `cursor` is a non-null node of the list getifaddrs returned,
        // alive until freeifaddrs; `ifa_addr` is null or points to a sockaddr
        // whose family says which larger struct it is.
        #[allow(unsafe_code, reason = "walking the getifaddrs(3) list")]
        let (next, addr) = unsafe {
            let node = &*cursor;
            let addr = if node.ifa_addr.is_null() {
                None
            } else {
                match i32::from((*node.ifa_addr).sa_family) {
                    libc::AF_INET => {
                        let sin = &*node.ifa_addr.cast::<libc::sockaddr_in>();
                        Some(IpAddr::from(sin.sin_addr.s_addr.to_ne_bytes()))
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*node.ifa_addr.cast::<libc::sockaddr_in6>();
                        Some(IpAddr::from(sin6.sin6_addr.s6_addr))
                    }
                    _ => None,
                }
            };
            (node.ifa_next, addr)
        };
        if let Some(addr) = addr.filter(|a| !a.is_loopback()) {
            addrs.insert(addr);
        }
        cursor = next;
    }
    // SAFETY: `head` came from a successful getifaddrs and is freed once.
    #[allow(unsafe_code, reason = "freeifaddrs(3)")]
    unsafe {
        libc::freeifaddrs(head);
    };
    Ok(addrs)
}

/// The map key of TCP traffic to `addr:port`.
pub fn key(addr: IpAddr, port: u16) -> FailsafeKey {
    FailsafeKey {
        addr: quarantine::key(addr),
        port,
        proto: IPPROTO_TCP,
        _pad: 0,
    }
}

fn table(ebpf: &mut Ebpf) -> anyhow::Result<HashMap<&mut MapData, FailsafeKey, u32>> {
    let map = ebpf
        .map_mut(maps::FAILSAFE)
        .with_context(|| format!("the program has no map `{}`", maps::FAILSAFE))?;
    Ok(HashMap::try_from(map)?)
}

/// Makes the failsafe map hold exactly `addrs` × `ports` (TCP). Returns the
/// number of entries.
pub fn sync(ebpf: &mut Ebpf, addrs: &BTreeSet<IpAddr>, ports: &[u16]) -> anyhow::Result<usize> {
    let wanted: std::collections::HashSet<FailsafeKey> = addrs
        .iter()
        .flat_map(|a| ports.iter().map(|p| key(*a, *p)))
        .collect();
    if wanted.len() > wardgate_common::maps::MAX_FAILSAFE as usize {
        bail!(
            "the failsafe needs {} entries, more than the datapath holds ({})",
            wanted.len(),
            wardgate_common::maps::MAX_FAILSAFE
        );
    }
    let mut table = table(ebpf)?;
    let present: Vec<FailsafeKey> = table.keys().collect::<Result<_, _>>()?;
    // Add first, then remove: an address in both sets never misses a packet.
    for k in &wanted {
        if !present.contains(k) {
            table.insert(k, 1, 0).context("writing the failsafe map")?;
        }
    }
    for k in present.iter().filter(|k| !wanted.contains(*k)) {
        let _ = table.remove(k);
    }
    Ok(wanted.len())
}

/// The failsafe entries as (address, TCP port), sorted.
pub fn list(ebpf: &mut Ebpf) -> anyhow::Result<Vec<(IpAddr, u16)>> {
    let table = table(ebpf)?;
    let mut entries: Vec<(IpAddr, u16)> = table
        .keys()
        .map(|k| k.map(|k| (quarantine::addr(k.addr), k.port)))
        .collect::<Result<_, _>>()?;
    entries.sort();
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert_eq!(parse_port("tcp/22").unwrap(), 22);
        assert_eq!(parse_port("2222").unwrap(), 2222);
        assert!(
            parse_port("udp/53")
                .unwrap_err()
                .to_string()
                .contains("TCP only")
        );
        assert!(parse_port("tcp/0").is_err());
        assert!(parse_port("tcp/70000").is_err());
    }

    #[test]
    fn own_addresses_exclude_loopback() {
        let addrs = own_addresses().unwrap();
        assert!(addrs.iter().all(|a| !a.is_loopback()));
    }
}
