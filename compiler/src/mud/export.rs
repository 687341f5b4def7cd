//! A zone's flows to a draft MUD file (`wardgate export mud`).
//!
//! The flows are read from the lowered tables (what the policy really
//! allows, denies subtracted), for every pair of the zone with another zone.
//! Each flow becomes the ACE of the side that opens the connection and, for
//! TCP, UDP (which have ports), the ACE of its replies; TCP ACEs carry
//! `ietf-mud:direction-initiated`. Peers are named by a controller URI
//! `urn:x-wardgate:zone:NAME` (a placeholder class for the manufacturer to
//! replace), `world` by no address match at all; [`Exported::bindings`] maps
//! them back, so that importing the file gives the same flows.
//!
//! What MUD cannot say exactly is reported and left out (never widened):
//! "every protocol but these" (a policy's `any` narrowed by a deny), SCTP
//! port ranges, intra-zone traffic.

use std::collections::BTreeMap;

use wardgate_common::{PROTO_ANY, VERDICT_ALLOW};

use super::schema::{
    AccessLists, Ace, Aces, Acl, AclName, Acls, Actions, Direction, Document, IcmpMatch, IpMatch,
    Matches, Mud, MudMatch, PolicyRef, PortMatch, TcpMatch, UdpMatch,
};
use crate::analysis::Analysis;
use crate::model::{Date, WORLD, ZoneId};

/// The controller URI that stands for a zone in an exported file.
#[must_use]
pub fn zone_uri(zone: &str) -> String {
    format!("urn:x-wardgate:zone:{zone}")
}

/// An exported MUD file and what could not be said.
#[derive(Debug)]
pub struct Exported {
    pub document: Document,
    /// A bindings file (YAML) mapping the peers back to their zones.
    pub bindings: String,
    pub problems: Vec<String>,
}

/// One flow: opened by the zone (`outbound`) or by the peer, protocol
/// (`None` every protocol) and the responder's port or ICMP type ranges
/// (`None` every port).
struct Flow {
    peer: ZoneId,
    outbound: bool,
    proto: Option<u8>,
    ranges: Option<Vec<(u16, u16)>>,
}

/// Protocol (or [`PROTO_ANY`]) to the allowed port or ICMP type ranges.
type ByProto = BTreeMap<u32, Vec<(u16, u16)>>;

/// Exports the flows of `zone` as a MUD file for `url`.
///
/// # Errors
/// The zone is not declared, or the policy did not lower.
pub fn export(analysis: &Analysis, zone: &str, url: &str, today: Date) -> Result<Exported, String> {
    let policy = &analysis.policy;
    let z = policy
        .zone_id(zone)
        .filter(|&id| id != WORLD)
        .ok_or_else(|| format!("no zone is named `{zone}`"))?;
    let lowered = analysis
        .lowered
        .as_ref()
        .ok_or_else(|| "the policy does not fit the datapath".to_string())?;
    let mut problems = Vec::new();
    let mut flows = Vec::new();
    let mut tables: BTreeMap<(ZoneId, bool), ByProto> = BTreeMap::new();
    for (key, intervals) in &lowered.tables {
        let (s, d) = (key.src_zone, key.dst_zone);
        let (peer, outbound) = if s == z && d != z {
            (d, true)
        } else if d == z && s != z {
            (s, false)
        } else {
            if s == z && d == z {
                problems.push(format!(
                    "traffic inside `{zone}` has rules of its own: MUD has no word for it, left out"
                ));
            }
            continue;
        };
        let allowed: Vec<(u16, u16)> = intervals
            .iter()
            .filter(|i| i.verdict == VERDICT_ALLOW)
            .map(|i| (i.lo, i.hi))
            .collect();
        tables
            .entry((peer, outbound))
            .or_default()
            .insert(key.proto, merge(allowed));
    }
    for ((peer, outbound), by_proto) in tables {
        let name = |p: ZoneId| policy.zone(p).name.clone();
        let arrow = if outbound {
            format!("{zone} -> {}", name(peer))
        } else {
            format!("{} -> {zone}", name(peer))
        };
        let whole = |r: &Vec<(u16, u16)>| r.as_slice() == [(0, u16::MAX)];
        if let Some(any) = by_proto.get(&PROTO_ANY)
            && !any.is_empty()
        {
            if whole(any) && by_proto.values().all(whole) {
                flows.push(Flow {
                    peer,
                    outbound,
                    proto: None,
                    ranges: None,
                });
                continue;
            }
            problems.push(format!(
                "{arrow}: every protocol but some (an `any` narrowed by a deny) cannot be said in MUD: left out, write the protocols in the file by hand"
            ));
        }
        for (&proto, ranges) in &by_proto {
            if proto == PROTO_ANY || ranges.is_empty() {
                continue;
            }
            let Ok(p) = u8::try_from(proto) else { continue };
            match p {
                6 | 17 | 1 | 58 => flows.push(Flow {
                    peer,
                    outbound,
                    proto: Some(p),
                    ranges: (!whole(ranges)).then(|| ranges.clone()),
                }),
                _ if whole(ranges) => flows.push(Flow {
                    peer,
                    outbound,
                    proto: Some(p),
                    ranges: None,
                }),
                _ => problems.push(format!(
                    "{arrow}: protocol {p} with ports: MUD matches ports of TCP and UDP only, left out"
                )),
            }
        }
    }

    let base = url
        .rsplit('/')
        .find(|s| !s.is_empty())
        .map(|s| {
            s.chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect::<String>()
        })
        .unwrap_or_else(|| "mud".into());
    let mut acls: Vec<Acl> = Vec::new();
    for family in ["v4", "v6"] {
        for side in ["fr", "to"] {
            acls.push(Acl {
                name: format!("{base}-{family}{side}"),
                kind: Some(format!("ipv{}-acl-type", &family[1..])),
                aces: Aces { ace: Vec::new() },
            });
        }
    }
    for (n, flow) in flows.iter().enumerate() {
        let peer = &policy.zone(flow.peer).name;
        for (f, v6) in [(0, false), (2, true)] {
            match (flow.proto, v6) {
                (Some(1), true) | (Some(58), false) => continue,
                _ => {}
            }
            let ranges = flow.ranges.clone().unwrap_or_default();
            let icmp = matches!(flow.proto, Some(1 | 58));
            let types: Vec<Option<u8>> = if icmp && flow.ranges.is_some() {
                ranges
                    .iter()
                    .flat_map(|&(lo, hi)| lo..=hi)
                    .filter_map(|t| u8::try_from(t).ok().map(Some))
                    .collect()
            } else {
                vec![None]
            };
            let port_sets: Vec<Option<PortMatch>> = if icmp || flow.ranges.is_none() {
                vec![None]
            } else {
                ranges
                    .iter()
                    .map(|&(lo, hi)| {
                        Some(if lo == hi {
                            PortMatch {
                                port: Some(lo),
                                operator: Some(super::schema::Operator::Eq),
                                ..PortMatch::default()
                            }
                        } else {
                            PortMatch {
                                lower_port: Some(lo),
                                upper_port: Some(hi),
                                ..PortMatch::default()
                            }
                        })
                    })
                    .collect()
            };
            let mut k = 0;
            for ty in &types {
                for port in &port_sets {
                    // The opener's ACE: to the responder's port.
                    let (open, reply) = if flow.outbound {
                        (f, f + 1)
                    } else {
                        (f + 1, f)
                    };
                    let tag = format!(
                        "{}{}{n}-{k}",
                        if v6 { "v6-" } else { "v4-" },
                        if flow.outbound { "out" } else { "in" }
                    );
                    acls[open].aces.ace.push(ace(
                        format!(
                            "{peer}-{tag}-{}",
                            if flow.outbound { "frdev" } else { "todev" }
                        ),
                        peer,
                        flow,
                        *ty,
                        *port,
                        (true, v6),
                    ));
                    // Replies need an ACE of their own where the file can
                    // say which they are: TCP (direction-initiated), UDP
                    // from the responder's port.
                    if flow.proto == Some(6) || (flow.proto == Some(17) && port.is_some()) {
                        acls[reply].aces.ace.push(ace(
                            format!(
                                "{peer}-{tag}-{}",
                                if flow.outbound { "todev" } else { "frdev" }
                            ),
                            peer,
                            flow,
                            *ty,
                            *port,
                            (false, v6),
                        ));
                    }
                    k += 1;
                }
            }
        }
    }
    acls.retain(|a| !a.aces.ace.is_empty());
    let refs = |suffix: &str| {
        let names: Vec<AclName> = acls
            .iter()
            .filter(|a| a.name.ends_with(suffix))
            .map(|a| AclName {
                name: a.name.clone(),
            })
            .collect();
        (!names.is_empty()).then_some(PolicyRef {
            access_lists: AccessLists { access_list: names },
        })
    };
    let document = Document {
        mud: Mud {
            mud_version: 1,
            mud_url: url.to_string(),
            last_update: Some(format!("{today}T00:00:00+00:00")),
            mud_signature: None,
            cache_validity: Some(48),
            is_supported: Some(true),
            systeminfo: Some(format!("draft by wardgate export mud for zone {zone}")),
            mfg_name: None,
            model_name: None,
            firmware_rev: None,
            software_rev: None,
            documentation: None,
            extensions: None,
            from_device_policy: refs("fr"),
            to_device_policy: refs("to"),
            quarantine: None,
            reporter: None,
        },
        acls: Acls { acl: acls },
    };
    let mut bindings =
        String::from("# Bindings for the draft MUD file: its placeholder peers are these zones.\n");
    let mut peers: Vec<&str> = flows
        .iter()
        .filter(|f| f.peer != WORLD)
        .map(|f| policy.zone(f.peer).name.as_str())
        .collect();
    peers.sort_unstable();
    peers.dedup();
    if !peers.is_empty() {
        bindings.push_str("controller:\n");
        for p in peers {
            bindings.push_str(&format!("  \"{}\": {p}\n", zone_uri(p)));
        }
    }
    if flows.iter().any(|f| f.peer == WORLD) {
        bindings.push_str("any-address: world\n");
    }
    problems.sort();
    problems.dedup();
    Ok(Exported {
        document,
        bindings,
        problems,
    })
}

/// Sorted, adjacent ranges joined.
fn merge(mut ranges: Vec<(u16, u16)>) -> Vec<(u16, u16)> {
    ranges.sort_unstable();
    let mut out: Vec<(u16, u16)> = Vec::new();
    for (lo, hi) in ranges {
        match out.last_mut() {
            Some(last) if u32::from(lo) <= u32::from(last.1) + 1 => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// One ACE of a flow: the opener's (`opener`, to the responder's port) or
/// the replies' (from the responder's port).
fn ace(
    name: String,
    peer: &str,
    flow: &Flow,
    icmp_type: Option<u8>,
    port: Option<PortMatch>,
    (opener, v6): (bool, bool),
) -> Ace {
    let mut m = Matches::default();
    if flow.peer != WORLD {
        m.mud = Some(MudMatch {
            controller: Some(zone_uri(peer)),
            ..MudMatch::default()
        });
    }
    if let Some(p) = flow.proto {
        let ip = Some(IpMatch {
            protocol: Some(p),
            ..IpMatch::default()
        });
        if v6 {
            m.ipv6 = ip;
        } else {
            m.ipv4 = ip;
        }
    }
    let (src, dst) = if opener { (None, port) } else { (port, None) };
    match flow.proto {
        Some(6) => {
            m.tcp = Some(TcpMatch {
                source_port: src,
                destination_port: dst,
                direction_initiated: Some(if flow.outbound {
                    Direction::FromDevice
                } else {
                    Direction::ToDevice
                }),
                ..TcpMatch::default()
            });
        }
        Some(17) => {
            m.udp = Some(UdpMatch {
                source_port: src,
                destination_port: dst,
                length: None,
            });
        }
        Some(1 | 58) if icmp_type.is_some() => {
            m.icmp = Some(IcmpMatch {
                kind: icmp_type,
                code: None,
                rest_of_header: None,
            });
        }
        _ => {}
    }
    Ace {
        name,
        matches: m,
        actions: Actions {
            forwarding: "accept".into(),
            logging: None,
        },
    }
}
