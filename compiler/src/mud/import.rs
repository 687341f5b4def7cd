//! MUD file to flows of one zone, and flows to a `.ward` fragment.
//!
//! Each accepted ACE becomes one flow: who opens the connection (the device
//! or its peer), the peer as selectors from the bindings, and the services
//! (protocol and the responder's ports or ICMP type). The two halves of one
//! conversation (a `from-device` ACE and its `to-device` reply ACE) give the
//! same flow, so they become one rule naming both ACEs: replies of an allowed
//! connection pass in wardgate without a rule of their own.
//!
//! Who opens the connection: TCP's `ietf-mud:direction-initiated` when given;
//! otherwise the sender of the matched packets when the ACE names a
//! destination port or no port, and the receiver when it names only a source
//! port (the ACE then describes replies of a service on that port).
//! The initiator's own (ephemeral) port cannot be expressed: an ACE that
//! restricts it is reported, not widened.
//!
//! Nothing is ever widened: an abstraction without a binding, an Ethernet
//! match, a header field the language has no word for, a `drop` action: the
//! ACE is reported with its name and left out.

use std::collections::BTreeMap;

use super::bindings::Bindings;
use super::schema::{Ace, Direction, Document, IpMatch, PortMatch};

/// Which way an ACL filters, seen from the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Side {
    /// `from-device-policy`: packets the device sends.
    FromDevice,
    /// `to-device-policy`: packets the device receives.
    ToDevice,
}

impl Side {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::FromDevice => "from-device",
            Self::ToDevice => "to-device",
        }
    }
}

/// Who opens the connections of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Initiator {
    Device,
    Peer,
}

/// One allowed conversation between the device zone and a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flow {
    pub initiator: Initiator,
    /// Selectors of the peer, from the bindings (sorted, deduplicated).
    pub peer: Vec<String>,
    /// What the MUD file calls the peer (`dnsname www.example.com`).
    pub peer_label: String,
    /// Services in the language's syntax (`tcp/443`, `udp/5000-5010`, `any`).
    pub services: Vec<String>,
    /// The ACEs that declare it, with their side.
    pub aces: Vec<(String, Side)>,
}

/// An ACE left out, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub ace: String,
    pub side: Side,
    pub message: String,
}

/// What one MUD file gives for one zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Imported {
    pub url: String,
    /// `mfg-name`, or the authority of the MUD URL.
    pub manufacturer: String,
    pub model: Option<String>,
    pub systeminfo: Option<String>,
    pub flows: Vec<Flow>,
    pub problems: Vec<Problem>,
    /// NIST's quarantine extension: the ACE names that stay enabled.
    pub quarantine: Option<Vec<String>>,
}

/// The authority (host) of a URL: `https://a.example/x` is `a.example`.
#[must_use]
pub fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    match host.rsplit_once(':') {
        Some((h, port)) if !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    }
}

/// Imports a parsed MUD file: its flows and the ACEs left out.
#[must_use]
pub fn import(doc: &Document, bindings: &Bindings) -> Imported {
    let mud = &doc.mud;
    let mut flows: Vec<Flow> = Vec::new();
    let mut problems = Vec::new();
    for (side, policy) in [
        (Side::FromDevice, &mud.from_device_policy),
        (Side::ToDevice, &mud.to_device_policy),
    ] {
        let Some(policy) = policy else { continue };
        for name in &policy.access_lists.access_list {
            // `parse` checked that every named ACL exists.
            let Some(acl) = doc.acls.acl.iter().find(|a| a.name == name.name) else {
                continue;
            };
            let v6 = acl.kind.as_deref().is_some_and(|k| k.contains("ipv6"));
            for ace in &acl.aces.ace {
                match flow_of(ace, side, v6, &mud.mud_url, bindings) {
                    Ok(flow) => merge(&mut flows, flow),
                    Err(message) => problems.push(Problem {
                        ace: ace.name.clone(),
                        side,
                        message,
                    }),
                }
            }
        }
    }
    Imported {
        url: mud.mud_url.clone(),
        manufacturer: mud
            .mfg_name
            .clone()
            .unwrap_or_else(|| authority(&mud.mud_url).to_string()),
        model: mud.model_name.clone(),
        systeminfo: mud.systeminfo.clone(),
        flows,
        problems,
        quarantine: mud.quarantine.as_ref().map(|q| {
            q.enabled_ace_names
                .iter()
                .map(|a| a.ace_name.clone())
                .collect()
        }),
    }
}

fn merge(flows: &mut Vec<Flow>, flow: Flow) {
    if let Some(f) = flows.iter_mut().find(|f| {
        f.initiator == flow.initiator && f.peer == flow.peer && f.services == flow.services
    }) {
        f.aces.extend(flow.aces);
        if !f.peer_label.split(", ").any(|l| l == flow.peer_label) {
            f.peer_label = format!("{}, {}", f.peer_label, flow.peer_label);
        }
    } else {
        flows.push(flow);
    }
}

/// One ACE to one flow, or why it cannot be imported.
fn flow_of(
    ace: &Ace,
    side: Side,
    acl_v6: bool,
    url: &str,
    bindings: &Bindings,
) -> Result<Flow, String> {
    let m = &ace.matches;
    let forwarding = ace.actions.forwarding.as_str();
    if !matches!(forwarding.rsplit(':').next(), Some("accept")) {
        return Err(format!(
            "forwarding `{forwarding}` is not imported: MUD files list what is allowed, and wardgate denies everything else by default"
        ));
    }
    if m.eth.is_some() {
        return Err(if m.ipv4.is_none() && m.ipv6.is_none() {
            "Ethernet-only match (for example EAPOL): the policy language describes IP traffic only"
                .to_string()
        } else {
            "Ethernet header match: the policy language describes IP traffic only".to_string()
        });
    }
    let mut unsupported = Vec::new();
    if m.egress_interface.is_some() {
        unsupported.push("egress-interface");
    }
    if m.ingress_interface.is_some() {
        unsupported.push("ingress-interface");
    }
    if m.ipv4.is_some() && m.ipv6.is_some() {
        return Err("matches both `ipv4` and `ipv6`".into());
    }
    let v6 = m.ipv6.is_some() || (acl_v6 && m.ipv4.is_none());
    let ip = m.ipv4.as_ref().or(m.ipv6.as_ref());
    if let Some(ip) = ip {
        unsupported.extend(ip_unsupported(ip));
    }
    if let Some(t) = &m.tcp {
        for (name, set) in [
            ("tcp.sequence-number", t.sequence_number.is_some()),
            (
                "tcp.acknowledgement-number",
                t.acknowledgement_number.is_some(),
            ),
            ("tcp.data-offset", t.data_offset.is_some()),
            ("tcp.reserved", t.reserved.is_some()),
            ("tcp.flags", t.flags.is_some()),
            ("tcp.window-size", t.window_size.is_some()),
            ("tcp.urgent-pointer", t.urgent_pointer.is_some()),
            ("tcp.options", t.options.is_some()),
        ] {
            if set {
                unsupported.push(name);
            }
        }
    }
    if m.udp.as_ref().is_some_and(|u| u.length.is_some()) {
        unsupported.push("udp.length");
    }
    if let Some(i) = &m.icmp {
        if i.code.is_some() {
            unsupported.push("icmp.code");
        }
        if i.rest_of_header.is_some() {
            unsupported.push("icmp.rest-of-header");
        }
    }
    if !unsupported.is_empty() {
        return Err(format!(
            "matches the language cannot express: {}",
            unsupported
                .iter()
                .map(|u| format!("`{u}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }

    let (peer_label, peer) = peer_of(ace, side, url, bindings)?;
    let proto = protocol(ace, v6)?;

    // Ports: in `tcp`/`udp`, or at the IP level in the draft layout.
    let src = m
        .tcp
        .as_ref()
        .and_then(|t| t.source_port)
        .or_else(|| m.udp.as_ref().and_then(|u| u.source_port))
        .or_else(|| ip.and_then(|i| i.source_port_range_or_operator));
    let dst = m
        .tcp
        .as_ref()
        .and_then(|t| t.destination_port)
        .or_else(|| m.udp.as_ref().and_then(|u| u.destination_port))
        .or_else(|| ip.and_then(|i| i.destination_port_range_or_operator));
    let direction = m.tcp.as_ref().and_then(|t| t.direction_initiated);
    if direction.is_some() && proto != Some(6) {
        return Err("`direction-initiated` on a protocol other than TCP".into());
    }
    let sender = match side {
        Side::FromDevice => Initiator::Device,
        Side::ToDevice => Initiator::Peer,
    };
    let initiator = match direction {
        Some(Direction::FromDevice) => Initiator::Device,
        Some(Direction::ToDevice) => Initiator::Peer,
        None if src.is_some() && dst.is_none() => other(sender),
        None => sender,
    };
    // The responder's port is the destination of packets the initiator
    // sends, the source of packets it receives.
    let (responder_port, initiator_port) = if initiator == sender {
        (dst, src)
    } else {
        (src, dst)
    };
    if let Some(p) = initiator_port {
        return Err(format!(
            "restricts the port of the side that opens the connection ({}): the policy language matches destination ports only",
            port_text(&p)
        ));
    }
    let services = services(
        proto,
        responder_port,
        m.icmp.as_ref().and_then(|i| i.kind),
        v6,
    )?;
    Ok(Flow {
        initiator,
        peer,
        peer_label,
        services,
        aces: vec![(ace.name.clone(), side)],
    })
}

fn other(i: Initiator) -> Initiator {
    match i {
        Initiator::Device => Initiator::Peer,
        Initiator::Peer => Initiator::Device,
    }
}

fn port_text(p: &PortMatch) -> String {
    p.ranges()
        .unwrap_or_default()
        .iter()
        .map(|&(lo, hi)| {
            if lo == hi {
                format!("port {lo}")
            } else {
                format!("ports {lo}-{hi}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn ip_unsupported(ip: &IpMatch) -> Vec<&'static str> {
    [
        ("dscp", ip.dscp.is_some()),
        ("ecn", ip.ecn.is_some()),
        ("length", ip.length.is_some()),
        ("ttl", ip.ttl.is_some()),
        ("ihl", ip.ihl.is_some()),
        ("flags", ip.flags.is_some()),
        ("offset", ip.offset.is_some()),
        ("identification", ip.identification.is_some()),
        ("flow-label", ip.flow_label.is_some()),
    ]
    .into_iter()
    .filter_map(|(n, set)| set.then_some(n))
    .collect()
}

/// The IP protocol: `protocol`, or implied by the `tcp`/`udp`/`icmp`
/// container; `None` is every protocol.
fn protocol(ace: &Ace, v6: bool) -> Result<Option<u8>, String> {
    let m = &ace.matches;
    let declared = m.ipv4.as_ref().or(m.ipv6.as_ref()).and_then(|i| i.protocol);
    let icmp = if v6 { 58 } else { 1 };
    let implied: Vec<u8> = [
        (6, m.tcp.is_some()),
        (17, m.udp.is_some()),
        (icmp, m.icmp.is_some()),
    ]
    .into_iter()
    .filter_map(|(p, set)| set.then_some(p))
    .collect();
    if implied.len() > 1 {
        return Err("matches more than one of `tcp`, `udp` and `icmp`".into());
    }
    match (declared, implied.first()) {
        (Some(d), Some(&i)) if d != i => Err(format!(
            "`protocol` {d} contradicts the `{}` match",
            if i == 6 {
                "tcp"
            } else if i == 17 {
                "udp"
            } else {
                "icmp"
            }
        )),
        (Some(d), _) => Ok(Some(d)),
        (None, Some(&i)) => Ok(Some(i)),
        (None, None) => Ok(None),
    }
}

/// The services of a flow in the language's syntax.
fn services(
    proto: Option<u8>,
    port: Option<PortMatch>,
    icmp_type: Option<u8>,
    v6: bool,
) -> Result<Vec<String>, String> {
    let Some(p) = proto else {
        if port.is_some() {
            return Err("a port without a protocol".into());
        }
        return Ok(vec!["any".into()]);
    };
    let name = match p {
        6 => "tcp",
        17 => "udp",
        132 => "sctp",
        1 | 58 => {
            if port.is_some() {
                return Err("a port on ICMP".into());
            }
            let n = if p == 58 || (v6 && p == 1) {
                "icmpv6"
            } else {
                "icmp"
            };
            if p == 1 && v6 {
                return Err("protocol 1 (ICMP) in an IPv6 ACL".into());
            }
            return Ok(vec![match icmp_type {
                Some(t) => format!("{n}/{t}"),
                None => n.to_string(),
            }]);
        }
        other => {
            if port.is_some() {
                return Err(format!("a port on protocol {other}"));
            }
            return Ok(vec![format!("proto/{other}")]);
        }
    };
    if icmp_type.is_some() {
        return Err(format!("an ICMP type on {name}"));
    }
    let Some(port) = port else {
        return Ok(vec![name.to_string()]);
    };
    let ranges = port.ranges()?;
    Ok(ranges
        .into_iter()
        .map(|(lo, hi)| match (lo, hi) {
            (0, u16::MAX) => name.to_string(),
            (lo, hi) if lo == hi => format!("{name}/{lo}"),
            (lo, hi) => format!("{name}/{lo}-{hi}"),
        })
        .collect())
}

/// The peer of an ACE: what the file calls it and the bound selectors.
fn peer_of(
    ace: &Ace,
    side: Side,
    url: &str,
    bindings: &Bindings,
) -> Result<(String, Vec<String>), String> {
    let m = &ace.matches;
    let ip = m.ipv4.as_ref().or(m.ipv6.as_ref());
    // (label, binding if any, where a binding goes)
    let mut found: Vec<(String, Option<Vec<String>>, String)> = Vec::new();
    if let Some(mm) = &m.mud {
        if let Some(c) = &mm.controller {
            found.push((
                format!("controller `{c}`"),
                bindings.controller.get(c).map(|s| s.to_vec()),
                format!("`controller:` under \"{c}\""),
            ));
        }
        if mm.my_controller.is_some() {
            found.push((
                "my-controller".into(),
                bindings.my_controller.get(url).map(|s| s.to_vec()),
                format!("`my-controller:` under the MUD URL \"{url}\""),
            ));
        }
        if mm.local_networks.is_some() {
            found.push((
                "local-networks".into(),
                bindings.local_networks.as_ref().map(|s| s.to_vec()),
                "`local-networks:`".into(),
            ));
        }
        if mm.same_manufacturer.is_some() {
            let a = authority(url);
            found.push((
                format!("same-manufacturer ({a})"),
                bindings.manufacturer.get(a).map(|s| s.to_vec()),
                format!("`manufacturer:` under \"{a}\""),
            ));
        }
        if let Some(a) = &mm.manufacturer {
            found.push((
                format!("manufacturer `{a}`"),
                bindings.manufacturer.get(a).map(|s| s.to_vec()),
                format!("`manufacturer:` under \"{a}\""),
            ));
        }
        if let Some(u) = &mm.model {
            found.push((
                format!("model `{u}`"),
                bindings.model.get(u).map(|s| s.to_vec()),
                format!("`model:` under \"{u}\""),
            ));
        }
    }
    if let Some(ip) = ip {
        let (peer_dns, own_dns, peer_net, own_net, own_key) = match side {
            Side::FromDevice => (
                &ip.dst_dnsname,
                &ip.src_dnsname,
                &ip.destination_ipv4_network,
                &ip.source_ipv4_network,
                "source",
            ),
            Side::ToDevice => (
                &ip.src_dnsname,
                &ip.dst_dnsname,
                &ip.source_ipv4_network,
                &ip.destination_ipv4_network,
                "destination",
            ),
        };
        if own_dns.is_some() || own_net.is_some() {
            return Err(format!(
                "restricts the device's own {own_key} address: the device is its zone, so the policy language cannot narrow it"
            ));
        }
        if let Some(n) = peer_dns {
            found.push((
                format!("dnsname `{n}`"),
                bindings.dnsname.get(n).map(|s| s.to_vec()),
                format!("`dnsname:` under \"{n}\""),
            ));
        }
        if let Some(n) = peer_net {
            return Err(format!(
                "matches the address range `{n}`: declare a zone for it and write the rule by hand"
            ));
        }
    }
    if found.len() > 1 {
        return Err(format!(
            "matches {} at once (an intersection the policy language cannot express)",
            found
                .iter()
                .map(|f| f.0.as_str())
                .collect::<Vec<_>>()
                .join(" and ")
        ));
    }
    let (label, bound, hint) = found.pop().unwrap_or_else(|| {
        (
            "any address".into(),
            bindings.any_address.as_ref().map(|s| s.to_vec()),
            "`any-address:`".into(),
        )
    });
    match bound {
        Some(mut sel) => {
            sel.sort();
            sel.dedup();
            Ok((label, sel))
        }
        None => Err(format!(
            "{label} has no binding: add one to the bindings file ({hint})"
        )),
    }
}

/// Escapes a string for a `.ward` string literal.
fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in one_line(s).chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Text safe for a one-line comment or string.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The rule of a flow, without its reason string.
#[must_use]
pub fn rule_text(zone: &str, flow: &Flow) -> String {
    let peer = flow.peer.join(", ");
    let services = flow.services.join(", ");
    match flow.initiator {
        Initiator::Device => format!("allow {zone} -> {peer} : {services}"),
        Initiator::Peer => format!("allow {peer} -> {zone} : {services}"),
    }
}

fn ace_list(aces: &[(String, Side)]) -> String {
    aces.iter()
        .map(|(a, s)| format!("{a} ({})", s.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What [`render`] writes for one MUD file.
pub struct Section<'a> {
    /// The file as named on the command line.
    pub file: &'a str,
    pub imported: &'a Imported,
    /// Flows withheld because they would break a requirement, with the
    /// requirement and chain in words.
    pub withheld: &'a BTreeMap<usize, String>,
}

/// The `.ward` fragment for `zone`: one section per MUD file.
#[must_use]
pub fn render(zone: &str, sections: &[Section<'_>]) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "# Generated by `wardgate import mud` for zone `{zone}`: review before use.\n"
    ));
    out.push_str(
        "# Rules hold for IPv4 and IPv6 alike; the zones' addresses decide which apply.\n",
    );
    for s in sections {
        let i = s.imported;
        out.push('\n');
        out.push_str(&format!("# MUD file {}\n", one_line(s.file)));
        out.push_str(&format!("# MUD URL {}\n", one_line(&i.url)));
        let mut about = format!("# manufacturer {}", one_line(&i.manufacturer));
        if let Some(m) = &i.model {
            about.push_str(&format!(", model {}", one_line(m)));
        }
        if let Some(si) = &i.systeminfo {
            about.push_str(&format!(", systeminfo \"{}\"", one_line(si)));
        }
        out.push_str(&about);
        out.push('\n');
        for (n, flow) in i.flows.iter().enumerate() {
            out.push('\n');
            out.push_str(&format!(
                "# ACE {}: {}\n",
                one_line(&ace_list(&flow.aces)),
                one_line(&flow.peer_label)
            ));
            let names: Vec<&str> = flow.aces.iter().map(|(a, _)| a.as_str()).collect();
            let reason = quoted(&format!("mud {} {}", i.url, names.join(", ")));
            if let Some(why) = s.withheld.get(&n) {
                out.push_str(&format!("# withheld: {}\n", one_line(why)));
                out.push_str(&format!("# {} {reason}\n", rule_text(zone, flow)));
            } else {
                out.push_str(&format!("{} {reason}\n", rule_text(zone, flow)));
            }
        }
        for p in &i.problems {
            out.push('\n');
            out.push_str(&format!(
                "# not imported: ACE {} ({}): {}\n",
                one_line(&p.ace),
                p.side.name(),
                one_line(&p.message)
            ));
        }
        if let Some(q) = quarantine_text(zone, i) {
            out.push('\n');
            for line in q.lines() {
                out.push_str(&format!("# {line}\n"));
            }
        }
    }
    out
}

/// What stays allowed under NIST's quarantine extension, in words.
#[must_use]
pub fn quarantine_text(zone: &str, i: &Imported) -> Option<String> {
    let names = i.quarantine.as_ref()?;
    let mut text = format!(
        "quarantine (nist-mud:quarantined-device-policy): under quarantine the manufacturer keeps ACE {} enabled",
        names.join(", ")
    );
    let kept: Vec<&Flow> = i
        .flows
        .iter()
        .filter(|f| f.aces.iter().any(|(a, _)| names.contains(a)))
        .collect();
    if kept.is_empty() {
        text.push_str("; none of them was imported");
    } else {
        text.push_str(", that is:");
        for f in kept {
            text.push_str(&format!("\n  {}", rule_text(zone, f)));
        }
    }
    text.push_str(
        "\nwardgate's quarantine (wardgate-agent quarantine add) drops all of a host's traffic; allow these by hand if the device must keep them",
    );
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::authority;

    #[test]
    fn authority_is_the_host() {
        assert_eq!(authority("https://a.example/x/y"), "a.example");
        assert_eq!(authority("https://u@a.example:8443/x"), "a.example");
        assert_eq!(authority("https://a.example"), "a.example");
        assert_eq!(authority("https://[2001:db8::1]:443/m"), "[2001:db8::1]");
        assert_eq!(authority("https://[2001:db8::1]/m"), "[2001:db8::1]");
    }
}
