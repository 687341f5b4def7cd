//! The quarantine set: addresses whose traffic drops at once, tracked
//! connections included (incident response cuts live sessions).

use std::net::IpAddr;

use anyhow::Context as _;
use aya::{
    Ebpf,
    maps::{HashMap, MapData},
};
use wardgate_common::{CONFIG_QUARANTINE, maps, v4_mapped};

use crate::programmer;

/// The 16-byte map key of an address (IPv4 as IPv4-mapped IPv6).
pub fn key(addr: IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(v4) => v4_mapped(v4.octets()),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The address a map key stands for.
pub fn addr(key: [u8; 16]) -> IpAddr {
    let v6 = std::net::Ipv6Addr::from(key);
    v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
}

fn set(ebpf: &mut Ebpf) -> anyhow::Result<HashMap<&mut MapData, [u8; 16], u32>> {
    let map = ebpf
        .map_mut(maps::QUARANTINE)
        .with_context(|| format!("the program has no map `{}`", maps::QUARANTINE))?;
    Ok(HashMap::try_from(map)?)
}

/// Tells the program whether to consult the set (`CONFIG_QUARANTINE`).
fn set_flag(ebpf: &mut Ebpf, on: bool) -> anyhow::Result<()> {
    let mut config = programmer::config(ebpf)?;
    let flags = if on {
        config.flags | CONFIG_QUARANTINE
    } else {
        config.flags & !CONFIG_QUARANTINE
    };
    if flags != config.flags {
        config.flags = flags;
        programmer::set_config(ebpf, config)?;
    }
    Ok(())
}

/// Quarantines `addr`; its next packet drops.
pub fn add(ebpf: &mut Ebpf, addr: IpAddr) -> anyhow::Result<()> {
    set(ebpf)?
        .insert(key(addr), 1, 0)
        .with_context(|| format!("quarantining {addr}"))?;
    set_flag(ebpf, true)
}

/// Lifts the quarantine of `addr`. Returns false if it was not quarantined.
pub fn remove(ebpf: &mut Ebpf, addr: IpAddr) -> anyhow::Result<bool> {
    let mut set = set(ebpf)?;
    let k = key(addr);
    if set.get(&k, 0).is_err() {
        return Ok(false);
    }
    set.remove(&k)
        .with_context(|| format!("releasing {addr}"))?;
    Ok(true)
}

/// Every quarantined address, sorted.
pub fn list(ebpf: &mut Ebpf) -> anyhow::Result<Vec<IpAddr>> {
    let set = set(ebpf)?;
    let mut addrs: Vec<IpAddr> = set.keys().map(|k| k.map(addr)).collect::<Result<_, _>>()?;
    addrs.sort();
    Ok(addrs)
}

/// The quarantine set and config entry pinned under a directory, opened
/// without loading the program: for changes while no agent runs.
pub struct Pinned {
    set: HashMap<MapData, [u8; 16], u32>,
    config: aya::maps::Array<MapData, wardgate_common::Config>,
}

fn open_pinned(dir: &std::path::Path, name: &str) -> anyhow::Result<aya::maps::Map> {
    let path = crate::pin::map_path(dir, name);
    let data = MapData::from_pin(&path)
        .with_context(|| format!("cannot open the pinned map `{}`", path.display()))?;
    Ok(aya::maps::Map::from_map_data(data)?)
}

impl Pinned {
    pub fn open(dir: &std::path::Path) -> anyhow::Result<Self> {
        Ok(Self {
            set: HashMap::try_from(open_pinned(dir, maps::QUARANTINE)?)?,
            config: aya::maps::Array::try_from(open_pinned(dir, maps::CONFIG)?)?,
        })
    }

    /// Quarantines `addr` and makes sure the program consults the set.
    pub fn add(&mut self, addr: IpAddr) -> anyhow::Result<()> {
        self.set
            .insert(key(addr), 1, 0)
            .with_context(|| format!("quarantining {addr}"))?;
        let mut config = self.config.get(&0, 0)?;
        if config.flags & CONFIG_QUARANTINE == 0 {
            config.flags |= CONFIG_QUARANTINE;
            self.config.set(0, config, 0)?;
        }
        Ok(())
    }

    /// Lifts the quarantine of `addr`; false if it was not quarantined.
    pub fn remove(&mut self, addr: IpAddr) -> anyhow::Result<bool> {
        let k = key(addr);
        if self.set.get(&k, 0).is_err() {
            return Ok(false);
        }
        self.set
            .remove(&k)
            .with_context(|| format!("releasing {addr}"))?;
        Ok(true)
    }

    /// Every quarantined address, sorted.
    pub fn list(&self) -> anyhow::Result<Vec<IpAddr>> {
        let mut addrs: Vec<IpAddr> = self
            .set
            .keys()
            .map(|k| k.map(addr))
            .collect::<Result<_, _>>()?;
        addrs.sort();
        Ok(addrs)
    }
}
