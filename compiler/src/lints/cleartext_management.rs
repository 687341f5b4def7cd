//! `cleartext-management` (WG508).
//!
//! ## What it does
//! Finds `allow` rules that let cleartext management protocols into a zone
//! tagged `medical`: telnet (tcp/23), ftp (tcp/21), http (tcp/80), vnc
//! (tcp/5900), snmp v1/v2c (udp/161, udp/162).
//!
//! ## Why is this bad
//! Medical devices often ship with default or weak passwords and old firmware.
//! These protocols carry credentials in the clear: anyone on the path reads
//! them and takes over the device (a pump, a monitor, a modality).
//!
//! ## Example
//! ```ward
//! zone imaging { networks 10.20.0.0/23 tags medical }
//! allow biomed -> imaging : tcp/23
//! ```
//!
//! ## Fix
//! Use the encrypted equivalent (ssh, sftp, https), or limit the rule to a
//! maintenance window with `until`. SNMPv3 with privacy is encrypted but uses
//! the ports of v1/v2c, so a port-based check cannot tell them apart: where
//! the devices run v3, acknowledge the finding with a suppression comment
//! that says so.

use wardgate_lang::{CodeInfo, Diagnostic, Severity};

use super::Context;

/// Cleartext management protocols: (protocol, port, name).
pub const CLEARTEXT: &[(u8, u16, &str)] = &[
    (6, 21, "ftp"),
    (6, 23, "telnet"),
    (6, 80, "http"),
    (6, 5900, "vnc"),
    (17, 161, "snmp"),
    (17, 162, "snmp-trap"),
];

pub const CODE: CodeInfo = CodeInfo {
    code: "WG508",
    name: "cleartext-management",
    severity: Severity::Warning,
    summary: "cleartext management protocols (telnet, ftp, http, vnc, snmp v1/v2c) are allowed into a `medical` zone",
    explanation: "Medical devices often keep default or weak passwords; these protocols carry them in the clear, so anyone on the path can take over the device. Use the encrypted equivalent (ssh, sftp, https), or limit the rule to a maintenance window with `until`. SNMPv3 with privacy is encrypted but uses the ports of v1/v2c, which this check cannot tell apart: where the devices run v3, acknowledge the finding with `# wardgate: allow(WG508) \"snmp v3 with privacy\"`.",
    example: "zone imaging { networks 10.20.0.0/23 tags medical }\nzone biomed { networks 10.60.0.0/26 }\nallow biomed -> imaging : tcp/23\n",
};

pub fn check(cx: &Context, out: &mut Vec<Diagnostic>) {
    for (_, rule) in cx.allows() {
        let medical: Vec<_> = rule
            .dst
            .iter()
            .copied()
            .filter(|&d| cx.policy.zone(d).is_medical())
            .collect();
        if medical.is_empty() {
            continue;
        }
        let mut hits = Vec::new();
        let mut into = None;
        for &(proto, port, name) in CLEARTEXT {
            if !rule.services.iter().any(|a| a.covers(proto, port)) {
                continue;
            }
            let found = medical.iter().find_map(|&d| {
                rule.src
                    .iter()
                    .any(|&s| cx.consulted(s, d) && cx.allowed(s, d, proto, port))
                    .then_some(d)
            });
            if let Some(d) = found {
                hits.push(name);
                into.get_or_insert(d);
            }
        }
        let Some(d) = into else { continue };
        out.push(
            Diagnostic::new(
                &CODE,
                rule.origin.span(),
                format!(
                    "cleartext management ({}) is allowed into medical zone `{}`",
                    hits.join(", "),
                    cx.policy.zone(d).name
                ),
            )
            .with_primary_label("credentials travel in the clear")
            .with_help(
                "use ssh, sftp or https instead, or limit the rule with `until` (snmp v3 uses the same ports as v1/v2c, so this check cannot tell them apart)",
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::lints::codes_of;

    const Z: &str = "zone m { hosts 10.0.0.1 tags medical }\nzone b { hosts 10.0.0.2 }\n";

    #[test]
    fn fires_for_telnet_http_and_broad_rules() {
        let p = format!("{Z}allow b -> m : tcp/23\n");
        assert_eq!(
            codes_of(&p, "2026-01-01", "WG508"),
            vec!["cleartext management (telnet) is allowed into medical zone `m`"]
        );
        let p = format!("{Z}allow b -> m : tcp\n");
        assert_eq!(
            codes_of(&p, "2026-01-01", "WG508"),
            vec!["cleartext management (ftp, telnet, http, vnc) is allowed into medical zone `m`"]
        );
    }

    #[test]
    fn does_not_fire_for_encrypted_denied_or_non_medical() {
        let p = format!("{Z}allow b -> m : tcp/22, tcp/443\n");
        assert!(codes_of(&p, "2026-01-01", "WG508").is_empty());
        let p = format!("{Z}allow b -> m : tcp/23\ndeny b -> m : tcp/23\n");
        assert!(codes_of(&p, "2026-01-01", "WG508").is_empty());
        let p = format!("{Z}allow m -> b : tcp/23\n");
        assert!(codes_of(&p, "2026-01-01", "WG508").is_empty());
    }
}
