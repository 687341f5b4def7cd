//! The maps of a loaded `table inet wardgate`, read back from the kernel
//! with `nft -j -n list table inet wardgate` and parsed (serde_json) into
//! the backend's own element type, so that what was written and what the
//! kernel holds compare field by field.
//!
//! `-n` prints protocols and ports as numbers; addresses come back as single
//! addresses, prefixes (`{"prefix": {"addr", "len"}}`) or ranges
//! (`{"range": [lo, hi]}`), all turned into `lo..=hi`; `classid` values as
//! `MAJOR:MINOR` in hex. The test (`every_element_reads_back_identical`)
//! loads a policy whose maps need several `add element` commands each.

use std::collections::BTreeMap;
use std::net::IpAddr;

use anyhow::{Context as _, bail};
use serde_json::Value;
use wardgate_compiler::nft::{Data, Element, Field, Kind, TABLE};
use wardgate_tests::netns::Netns;

/// Every map of the table: name to elements, sorted.
pub type Maps = BTreeMap<String, Vec<Element>>;

/// Reads the table's maps back from the kernel of `ns`.
pub fn read(ns: &Netns) -> anyhow::Result<Maps> {
    let json = ns.exec_ok("nft", &["-j", "-n", "list", "table", "inet", TABLE])?;
    parse(&json)
}

/// Parses `nft -j -n list table` output.
pub fn parse(json: &str) -> anyhow::Result<Maps> {
    let root: Value = serde_json::from_str(json).context("`nft -j` output is not JSON")?;
    let mut maps = Maps::new();
    for obj in root["nftables"].as_array().context("no `nftables` array")? {
        let Some(map) = obj.get("map") else { continue };
        let name = map["name"].as_str().context("map without a name")?;
        let kinds: Vec<Kind> = match &map["type"] {
            Value::Array(types) => types.iter().map(kind).collect::<Result<_, _>>()?,
            t => vec![kind(t)?],
        };
        let classid_data = map["map"].as_str() == Some("classid");
        let mut elements = Vec::new();
        for e in map["elem"].as_array().into_iter().flatten() {
            let [key, data] = e.as_array().map(Vec::as_slice).unwrap_or_default() else {
                bail!("map {name}: element `{e}` is not [key, data]");
            };
            let parts: Vec<&Value> = match key.get("concat") {
                Some(Value::Array(parts)) => parts.iter().collect(),
                _ => vec![key],
            };
            if parts.len() != kinds.len() {
                bail!(
                    "map {name}: key `{key}` does not have {} fields",
                    kinds.len()
                );
            }
            let key = parts
                .iter()
                .zip(&kinds)
                .map(|(v, k)| field(*k, v))
                .collect::<anyhow::Result<Vec<Field>>>()
                .with_context(|| format!("map {name}: key `{key}`"))?;
            let data = if classid_data {
                Data::Classid(u32::try_from(value(Kind::Classid, data)?)?)
            } else {
                Data::Goto(
                    data["goto"]["target"]
                        .as_str()
                        .with_context(|| format!("map {name}: data `{data}` is not a goto"))?
                        .to_owned(),
                )
            };
            elements.push(Element { key, data });
        }
        elements.sort();
        maps.insert(name.to_owned(), elements);
    }
    Ok(maps)
}

fn kind(t: &Value) -> anyhow::Result<Kind> {
    Ok(match t.as_str() {
        Some("ipv4_addr") => Kind::Ipv4,
        Some("ipv6_addr") => Kind::Ipv6,
        Some("classid") => Kind::Classid,
        Some("inet_proto" | "inet_service" | "integer") => Kind::Number,
        _ => bail!("unexpected key type `{t}`"),
    })
}

fn field(kind: Kind, v: &Value) -> anyhow::Result<Field> {
    if let Some(p) = v.get("prefix") {
        let lo = value(kind, &p["addr"])?;
        let len = u32::try_from(p["len"].as_u64().context("prefix length")?)?;
        let bits = if kind == Kind::Ipv4 { 32 } else { 128 };
        let host = u128::MAX.checked_shr(128 - bits + len).unwrap_or(0);
        return Ok(Field::range(kind, lo, lo | host));
    }
    if let Some(Value::Array(r)) = v.get("range") {
        let [lo, hi] = r.as_slice() else {
            bail!("range `{v}`")
        };
        return Ok(Field::range(kind, value(kind, lo)?, value(kind, hi)?));
    }
    Ok(Field::one(kind, value(kind, v)?))
}

fn value(kind: Kind, v: &Value) -> anyhow::Result<u128> {
    if let Some(n) = v.as_u64() {
        return Ok(u128::from(n));
    }
    let s = v.as_str().with_context(|| format!("value `{v}`"))?;
    Ok(match kind {
        Kind::Ipv4 | Kind::Ipv6 => match s.parse::<IpAddr>()? {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        },
        Kind::Classid => match s {
            "none" => 0,
            "root" => u128::from(u32::MAX),
            _ => {
                let (major, minor) = s
                    .split_once(':')
                    .with_context(|| format!("classid `{s}`"))?;
                let major = u32::from_str_radix(major, 16)?;
                let minor = if minor.is_empty() {
                    0
                } else {
                    u32::from_str_radix(minor, 16)?
                };
                u128::from((major << 16) | minor)
            }
        },
        Kind::Number => s.parse()?,
    })
}

/// The backend's maps as written, sorted like [`parse`]'s.
pub fn written(maps: &[wardgate_compiler::nft::Map]) -> Maps {
    maps.iter()
        .map(|m| {
            let mut elements = m.elements.clone();
            elements.sort();
            (m.name.to_owned(), elements)
        })
        .collect()
}

/// The first differences between what was written and what was read back,
/// per map: elements missing from the kernel and elements it invented.
pub fn differences(written: &Maps, read: &Maps) -> Vec<String> {
    let mut out = Vec::new();
    for (name, want) in written {
        let got = read.get(name).map(Vec::as_slice).unwrap_or_default();
        let got_set: std::collections::BTreeSet<&Element> = got.iter().collect();
        let want_set: std::collections::BTreeSet<&Element> = want.iter().collect();
        let missing: Vec<String> = want_set
            .difference(&got_set)
            .map(|e| e.to_string())
            .collect();
        let extra: Vec<String> = got_set
            .difference(&want_set)
            .map(|e| e.to_string())
            .collect();
        if !missing.is_empty() || !extra.is_empty() || got.len() != want.len() {
            out.push(format!(
                "map {name}: wrote {}, read back {}; {} missing (first: {:?}), {} not written (first: {:?})",
                want.len(),
                got.len(),
                missing.len(),
                missing.iter().take(3).collect::<Vec<_>>(),
                extra.len(),
                extra.iter().take(3).collect::<Vec<_>>(),
            ));
        }
    }
    out
}
