//! MUD files (RFC 8520) as typed structs, for the three key layouts met in
//! real files: RFC 8520 (`ietf-access-control-list:acls`, `type`, `aces`,
//! `name`), the pre-RFC draft (`access-lists`, `acl-type`,
//! `access-list-entries`, `rule-name`, `ipv4-acl`, `*-port-range-or-operator`)
//! and the hybrid some generators emit (draft outer keys, RFC inner keys).
//! The draft spellings are serde aliases of the RFC ones.
//!
//! Unknown keys are errors (a misspelt key must not silently widen or drop a
//! match); every error names the JSON path of the offending value.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A whole MUD file.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    #[serde(rename = "ietf-mud:mud")]
    pub mud: Mud,
    #[serde(
        rename = "ietf-access-control-list:acls",
        alias = "ietf-access-control-list:access-lists"
    )]
    pub acls: Acls,
}

/// The `ietf-mud:mud` container.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Mud {
    pub mud_version: u32,
    pub mud_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_update: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mud_signature: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_validity: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_supported: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub systeminfo: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mfg_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firmware_rev: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub software_rev: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub documentation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_device_policy: Option<PolicyRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_device_policy: Option<PolicyRef>,
    /// NIST's extension: the ACEs that stay enabled under quarantine.
    #[serde(
        rename = "nist-mud:quarantined-device-policy",
        skip_serializing_if = "Option::is_none"
    )]
    pub quarantine: Option<Quarantine>,
    /// Where the device reports (NIST's reporter extension); not a flow.
    #[serde(
        rename = "ietf-mud-reporter-extension:reporter",
        skip_serializing_if = "Option::is_none"
    )]
    pub reporter: Option<Value>,
}

/// `from-device-policy` / `to-device-policy`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PolicyRef {
    pub access_lists: AccessLists,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AccessLists {
    pub access_list: Vec<AclName>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AclName {
    pub name: String,
}

/// `nist-mud:quarantined-device-policy`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Quarantine {
    pub enabled_ace_names: Vec<AceName>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AceName {
    pub ace_name: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Acls {
    pub acl: Vec<Acl>,
}

/// One access list.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Acl {
    pub name: String,
    /// `ipv4-acl-type`, `ipv6-acl-type`, ... (prefixed with the module name
    /// in some files).
    #[serde(
        rename = "type",
        alias = "acl-type",
        skip_serializing_if = "Option::is_none"
    )]
    pub kind: Option<String>,
    #[serde(alias = "access-list-entries")]
    pub aces: Aces,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Aces {
    pub ace: Vec<Ace>,
}

/// One access control entry.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Ace {
    #[serde(alias = "rule-name")]
    pub name: String,
    pub matches: Matches,
    pub actions: Actions,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Matches {
    #[serde(rename = "ietf-mud:mud", skip_serializing_if = "Option::is_none")]
    pub mud: Option<MudMatch>,
    #[serde(alias = "ipv4-acl", skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<IpMatch>,
    #[serde(alias = "ipv6-acl", skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<IpMatch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpMatch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub udp: Option<UdpMatch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp: Option<IcmpMatch>,
    /// Ethernet header matches (EAPOL and the like): reported, never imported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eth: Option<Value>,
    #[serde(rename = "egress-interface", skip_serializing_if = "Option::is_none")]
    pub egress_interface: Option<Value>,
    #[serde(rename = "ingress-interface", skip_serializing_if = "Option::is_none")]
    pub ingress_interface: Option<Value>,
}

/// The MUD abstractions (`ietf-mud:mud` inside `matches`).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MudMatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub same_manufacturer: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_networks: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub controller: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub my_controller: Option<Value>,
}

/// `ipv4` / `ipv6` (`ipv4-acl` / `ipv6-acl` in the draft).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct IpMatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<u8>,
    #[serde(
        rename = "ietf-acldns:src-dnsname",
        skip_serializing_if = "Option::is_none"
    )]
    pub src_dnsname: Option<String>,
    #[serde(
        rename = "ietf-acldns:dst-dnsname",
        skip_serializing_if = "Option::is_none"
    )]
    pub dst_dnsname: Option<String>,
    #[serde(alias = "source-ipv6-network", skip_serializing_if = "Option::is_none")]
    pub source_ipv4_network: Option<String>,
    #[serde(
        alias = "destination-ipv6-network",
        skip_serializing_if = "Option::is_none"
    )]
    pub destination_ipv4_network: Option<String>,
    /// Draft layout: ports at the IP level.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_port_range_or_operator: Option<PortMatch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_port_range_or_operator: Option<PortMatch>,
    // Header fields the language cannot express: reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dscp: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ecn: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub length: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ihl: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flags: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identification: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_label: Option<Value>,
}

/// `tcp`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TcpMatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_port: Option<PortMatch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_port: Option<PortMatch>,
    #[serde(
        rename = "ietf-mud:direction-initiated",
        skip_serializing_if = "Option::is_none"
    )]
    pub direction_initiated: Option<Direction>,
    // Header fields the language cannot express: reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledgement_number: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_offset: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reserved: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flags: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_size: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub urgent_pointer: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<Value>,
}

/// `udp`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct UdpMatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_port: Option<PortMatch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_port: Option<PortMatch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub length: Option<Value>,
}

/// `icmp` (ICMPv6 in an IPv6 ACL).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct IcmpMatch {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rest_of_header: Option<Value>,
}

/// Who opens the TCP connection (`ietf-mud:direction-initiated`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    FromDevice,
    ToDevice,
}

/// A port match: `{operator, port}` or `{lower-port, upper-port}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PortMatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<Operator>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lower_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upper_port: Option<u16>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operator {
    Eq,
    Lt,
    Gt,
    Lte,
    Gte,
    Neq,
}

impl PortMatch {
    /// The ports matched, as inclusive ranges, or why the match is malformed.
    ///
    /// # Errors
    /// A match with neither form, both forms, or an empty range.
    pub fn ranges(&self) -> Result<Vec<(u16, u16)>, String> {
        match (self.operator, self.port, self.lower_port, self.upper_port) {
            (op, Some(p), None, None) => {
                let op = op.unwrap_or(Operator::Eq);
                let r = match op {
                    Operator::Eq => vec![(p, p)],
                    Operator::Lte => vec![(0, p)],
                    Operator::Gte => vec![(p, u16::MAX)],
                    Operator::Lt if p > 0 => vec![(0, p - 1)],
                    Operator::Gt if p < u16::MAX => vec![(p + 1, u16::MAX)],
                    Operator::Neq => {
                        let mut v = Vec::new();
                        if p > 0 {
                            v.push((0, p - 1));
                        }
                        if p < u16::MAX {
                            v.push((p + 1, u16::MAX));
                        }
                        v
                    }
                    Operator::Lt | Operator::Gt => {
                        return Err(format!("port match `{op:?} {p}` matches no port"));
                    }
                };
                Ok(r)
            }
            (None, None, Some(lo), Some(hi)) if lo <= hi => Ok(vec![(lo, hi)]),
            (None, None, Some(lo), Some(hi)) => Err(format!("port range {lo}-{hi} is reversed")),
            _ => Err(
                "a port match is `operator` and `port`, or `lower-port` and `upper-port`".into(),
            ),
        }
    }
}

/// A MUD file that cannot be read as one, with the JSON path of the problem.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    /// `.` for the whole document, else the path (`ietf-mud:mud.mud-url`).
    pub path: String,
    pub message: String,
}

/// Parses a MUD file and checks that the ACLs its policies name exist.
///
/// # Errors
/// Not JSON, not a MUD file, unknown keys, wrong types, missing ACLs: a
/// [`ParseError`] naming the JSON path.
pub fn parse(text: &str) -> Result<Document, ParseError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    let doc: Document = serde_path_to_error::deserialize(de).map_err(|e| {
        let mut path = e.path().to_string();
        let inner = e.into_inner();
        let message = if inner.is_syntax() || inner.is_eof() {
            path = ".".into();
            format!("not JSON: {inner}")
        } else if path == "."
            || !(path.starts_with("ietf-mud:mud") || path.starts_with("ietf-access-control-list:"))
        {
            format!("not a MUD file (no `ietf-mud:mud` and ACLs at the top): {inner}")
        } else {
            format!("at `{path}`: {inner}")
        };
        ParseError { path, message }
    })?;
    if doc.mud.mud_version != 1 {
        return Err(ParseError {
            path: "ietf-mud:mud.mud-version".into(),
            message: format!(
                "at `ietf-mud:mud.mud-version`: version {} is not supported (only 1)",
                doc.mud.mud_version
            ),
        });
    }
    for (key, policy) in [
        ("from-device-policy", &doc.mud.from_device_policy),
        ("to-device-policy", &doc.mud.to_device_policy),
    ] {
        let Some(policy) = policy else { continue };
        for (i, acl) in policy.access_lists.access_list.iter().enumerate() {
            if !doc.acls.acl.iter().any(|a| a.name == acl.name) {
                let path = format!("ietf-mud:mud.{key}.access-lists.access-list[{i}].name");
                return Err(ParseError {
                    message: format!("at `{path}`: no ACL is named `{}`", acl.name),
                    path,
                });
            }
        }
    }
    for (i, acl) in doc.acls.acl.iter().enumerate() {
        for (j, ace) in acl.aces.ace.iter().enumerate() {
            for (name, port) in ace.ports() {
                if let Err(e) = port.ranges() {
                    let path = format!("acls.acl[{i}].aces.ace[{j}].matches.{name}");
                    return Err(ParseError {
                        message: format!("at `{path}`: {e}"),
                        path,
                    });
                }
            }
        }
    }
    Ok(doc)
}

impl Ace {
    /// Every port match of the ACE, with where it sits.
    #[must_use]
    pub fn ports(&self) -> Vec<(&'static str, PortMatch)> {
        let m = &self.matches;
        let mut out = Vec::new();
        let mut add = |name, p: Option<PortMatch>| {
            if let Some(p) = p {
                out.push((name, p));
            }
        };
        add(
            "tcp.source-port",
            m.tcp.as_ref().and_then(|t| t.source_port),
        );
        add(
            "tcp.destination-port",
            m.tcp.as_ref().and_then(|t| t.destination_port),
        );
        add(
            "udp.source-port",
            m.udp.as_ref().and_then(|t| t.source_port),
        );
        add(
            "udp.destination-port",
            m.udp.as_ref().and_then(|t| t.destination_port),
        );
        for ip in [&m.ipv4, &m.ipv6].into_iter().flatten() {
            add(
                "ip.source-port-range-or-operator",
                ip.source_port_range_or_operator,
            );
            add(
                "ip.destination-port-range-or-operator",
                ip.destination_port_range_or_operator,
            );
        }
        out
    }
}

/// `actions`: `forwarding` is `accept`, `drop` or `reject` (optionally
/// prefixed with the module name).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Actions {
    pub forwarding: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logging: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(operator: Operator, port: u16) -> PortMatch {
        PortMatch {
            operator: Some(operator),
            port: Some(port),
            ..PortMatch::default()
        }
    }

    #[test]
    fn port_operators_become_ranges() {
        assert_eq!(op(Operator::Eq, 80).ranges(), Ok(vec![(80, 80)]));
        assert_eq!(op(Operator::Lt, 1024).ranges(), Ok(vec![(0, 1023)]));
        assert_eq!(op(Operator::Lte, 1024).ranges(), Ok(vec![(0, 1024)]));
        assert_eq!(op(Operator::Gt, 1023).ranges(), Ok(vec![(1024, u16::MAX)]));
        assert_eq!(op(Operator::Gte, 1024).ranges(), Ok(vec![(1024, u16::MAX)]));
        assert_eq!(
            op(Operator::Neq, 23).ranges(),
            Ok(vec![(0, 22), (24, u16::MAX)])
        );
        assert_eq!(op(Operator::Neq, 0).ranges(), Ok(vec![(1, u16::MAX)]));
        assert!(op(Operator::Lt, 0).ranges().is_err());
        assert!(op(Operator::Gt, u16::MAX).ranges().is_err());
        let range = |lo, hi| PortMatch {
            lower_port: Some(lo),
            upper_port: Some(hi),
            ..PortMatch::default()
        };
        assert_eq!(range(8000, 8010).ranges(), Ok(vec![(8000, 8010)]));
        assert!(range(9, 8).ranges().unwrap_err().contains("reversed"));
        assert!(PortMatch::default().ranges().is_err());
        let both = PortMatch {
            lower_port: Some(1),
            ..op(Operator::Eq, 80)
        };
        assert!(both.ranges().is_err());
    }
}
