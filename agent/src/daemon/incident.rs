//! Incident response: the quarantine commands of the running agent, and the
//! same changes made on the pinned map directly when no agent runs.

use std::{net::IpAddr, path::Path};

use crate::{
    control::{QuarantineEntry, QuarantineResult},
    quarantine,
};

use crate::pin::PinLock;

use super::{Agent, Note};

/// Parses a quarantine address: one unicast host address. An IPv4-mapped
/// IPv6 address (`::ffff:10.0.0.1`) is the IPv4 address it maps, checked
/// and stored as such.
pub fn parse_host_address(text: &str) -> Result<IpAddr, String> {
    let addr: IpAddr = text.trim().parse().map_err(|_| {
        format!("`{text}` is not an IP address (quarantine takes one host address, not a prefix)")
    })?;
    let addr = addr.to_canonical();
    let broadcast = matches!(addr, IpAddr::V4(v4) if v4.is_broadcast());
    if addr.is_unspecified() || addr.is_multicast() || addr.is_loopback() || broadcast {
        return Err(format!("`{addr}` is not a host address"));
    }
    Ok(addr)
}

/// The error of a failed insert, said plainly.
fn insert_error(addr: IpAddr, e: &anyhow::Error) -> String {
    let full = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
            == Some(libc::E2BIG)
            || c.to_string().contains("Argument list too long")
    });
    if full {
        format!(
            "quarantine is full ({} addresses); `{addr}` was not quarantined",
            wardgate_common::maps::MAX_QUARANTINE
        )
    } else {
        format!("{e:#}")
    }
}

impl Agent {
    pub(super) fn quarantine_add(
        &mut self,
        address: &str,
        reason: Option<String>,
    ) -> Result<QuarantineResult, String> {
        let addr = parse_host_address(address)?;
        quarantine::add(self.program.ebpf_mut(), addr).map_err(|e| insert_error(addr, &e))?;
        self.notes.insert(
            addr,
            Note {
                reason: reason.clone(),
                since: jiff::Timestamp::now().to_string(),
            },
        );
        log::warn!(
            "quarantined {addr}{}",
            reason.map(|r| format!(" ({r})")).unwrap_or_default()
        );
        Ok(QuarantineResult {
            address: addr,
            quarantined: true,
        })
    }

    pub(super) fn quarantine_remove(&mut self, address: &str) -> Result<QuarantineResult, String> {
        let addr = parse_host_address(address)?;
        let removed =
            quarantine::remove(self.program.ebpf_mut(), addr).map_err(|e| format!("{e:#}"))?;
        self.notes.remove(&addr);
        if !removed {
            return Err(format!("`{addr}` is not quarantined"));
        }
        log::warn!("released {addr} from quarantine");
        Ok(QuarantineResult {
            address: addr,
            quarantined: false,
        })
    }

    pub(super) fn quarantine_list(&mut self) -> Result<Vec<QuarantineEntry>, String> {
        let addrs = quarantine::list(self.program.ebpf_mut()).map_err(|e| format!("{e:#}"))?;
        Ok(addrs
            .into_iter()
            .map(|a| {
                let note = self.notes.get(&a);
                QuarantineEntry {
                    address: a,
                    reason: note.and_then(|n| n.reason.clone()),
                    since: note.map(|n| n.since.clone()),
                }
            })
            .collect())
    }
}

/// A quarantine change while no agent runs, made on the maps pinned under
/// `dir` (the kernel keeps enforcing them). Refused while a running agent
/// holds the pin directory.
pub fn offline_quarantine(
    dir: &Path,
    add: Option<&str>,
    remove: Option<&str>,
) -> anyhow::Result<Vec<QuarantineEntry>> {
    if !crate::pin::has_maps(dir) {
        anyhow::bail!(
            "no agent answered and nothing is pinned under `{}`: no gateway state to change",
            dir.display()
        );
    }
    let _lock = PinLock::exclusive(dir)?;
    let mut pinned = quarantine::Pinned::open(dir)?;
    if let Some(text) = add {
        let addr = parse_host_address(text).map_err(anyhow::Error::msg)?;
        pinned
            .add(addr)
            .map_err(|e| anyhow::Error::msg(insert_error(addr, &e)))?;
    }
    if let Some(text) = remove {
        let addr = parse_host_address(text).map_err(anyhow::Error::msg)?;
        if !pinned.remove(addr)? {
            anyhow::bail!("`{addr}` is not quarantined");
        }
    }
    Ok(pinned
        .list()?
        .into_iter()
        .map(|address| QuarantineEntry {
            address,
            reason: None,
            since: None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_addresses() {
        assert!(parse_host_address("10.0.0.1").is_ok());
        assert!(parse_host_address("2001:db8::1").is_ok());
        assert!(
            parse_host_address("10.0.0.0/8")
                .unwrap_err()
                .contains("not an IP address")
        );
        assert!(
            parse_host_address("0.0.0.0")
                .unwrap_err()
                .contains("not a host")
        );
        assert!(parse_host_address("ff02::1").is_err());
        assert!(parse_host_address("banana").is_err());
    }

    #[test]
    fn mapped_forms_are_their_ipv4_address() {
        assert_eq!(
            parse_host_address("::ffff:10.0.0.1").unwrap(),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
        for bad in [
            "::ffff:0.0.0.0",
            "::ffff:127.0.0.1",
            "::ffff:224.0.0.1",
            "::ffff:255.255.255.255",
        ] {
            assert!(
                parse_host_address(bad).unwrap_err().contains("not a host"),
                "{bad}"
            );
        }
    }
}
