//! The registry of the compiler's diagnostic codes: WG3xx resolution, WG4xx
//! requirements, WG5xx lints (each lint's entry lives in its own file under
//! [`crate::lints`]). Codes are never reused.

use wardgate_lang::{CodeInfo, Severity};

use crate::lints;

pub const DUPLICATE_PREFIX: CodeInfo = CodeInfo {
    code: "WG301",
    name: "duplicate-prefix",
    severity: Severity::Error,
    summary: "the same prefix is declared by two zones",
    explanation: "An address belongs to the zone with the most specific prefix that holds it; when two zones declare the very same prefix, no zone is more specific and the address would belong to both. Keep the prefix in one zone, or split it into more specific prefixes.",
    example: "zone imaging { networks 10.20.0.0/23 }\nzone pacs { networks 10.20.0.0/23 }\n",
};

pub const IPV4_MAPPED_PREFIX: CodeInfo = CodeInfo {
    code: "WG302",
    name: "ipv4-mapped-prefix",
    severity: Severity::Error,
    summary: "an IPv6 prefix lies inside the IPv4-mapped block `::ffff:0:0/96`",
    explanation: "IPv4 and IPv6 classify separately; the datapath stores IPv4 addresses as IPv4-mapped IPv6 keys, so an IPv6 prefix in that block would silently classify IPv4 traffic. Write the IPv4 form (`10.0.0.0/8` instead of `::ffff:10.0.0.0/104`).",
    example: "zone legacy { networks ::ffff:10.0.0.0/104 }\n",
};

pub const CAPACITY_EXCEEDED: CodeInfo = CodeInfo {
    code: "WG303",
    name: "capacity-exceeded",
    severity: Severity::Error,
    summary: "the policy does not fit the datapath's maps",
    explanation: "The gateway's maps have fixed capacities (zones, prefixes, zone-pair tables, port intervals, rules). A policy that does not fit is rejected before anything touches the kernel. Use tags and fewer, broader selectors, or split the policy across gateways.",
    example: "# a generated policy with more than 262144 prefixes\n",
};

pub const EMPTY_WORLD: CodeInfo = CodeInfo {
    code: "WG304",
    name: "empty-world",
    severity: Severity::Error,
    summary: "a `world` selector matches no zone: zones declare every IPv4 and IPv6 address",
    explanation: "`world` holds every address that no zone declares. When zones declare `0.0.0.0/0` and `::/0`, `world` is empty, and a rule or requirement on it guards nothing; a selector that matches no zone is an error. Keep the internet in `world` (remove the whole-space prefixes), or name the zone that holds those addresses.",
    example: "zone internet { networks 0.0.0.0/0, ::/0 }
zone pumps { networks 10.40.0.0/22 }
require no-path world -> pumps
",
};

pub const WHOLE_ADDRESS_SPACE: CodeInfo = CodeInfo {
    code: "WG305",
    name: "whole-address-space",
    severity: Severity::Warning,
    summary: "a zone declares the whole IPv4 or IPv6 address space (`0.0.0.0/0`, `::/0`)",
    explanation: "Every address no zone declares is already in the built-in zone `world`, the internet. A zone with `0.0.0.0/0` or `::/0` takes every address of that family away from `world`, so rules and requirements on `world` no longer cover them. Write `world` instead, and declare only the ranges the zone really holds.",
    example: "zone internet { networks 0.0.0.0/0 }
",
};

pub const CONNTRACK_LIMITS_EXCEED_CAPACITY: CodeInfo = CodeInfo {
    code: "WG306",
    name: "conntrack-limits-exceed-capacity",
    severity: Severity::Error,
    summary: "the zones' `conntrack-limit`s add up to more than the gateway's connection table can promise",
    explanation: "The established-connection table holds 262144 connections and never evicts one to make room. An eighth of it (32768) is kept for life-critical zones without a limit; the declared limits share the rest, and zones without a limit share what the limits leave. Limits that add up to more could not all be honoured, so a zone within its limit could find the table full. Lower the limits, or leave the item out of zones that may share the rest.",
    example: "zone guest { networks 192.168.100.0/22 conntrack-limit 200000 }\nzone staff { networks 10.10.0.0/16 conntrack-limit 100000 }\n",
};

pub const NO_FLOW_VIOLATED: CodeInfo = CodeInfo {
    code: "WG401",
    name: "no-flow-violated",
    severity: Severity::Error,
    summary: "a `require no-flow` requirement does not hold: a rule allows traffic it forbids",
    explanation: "`require no-flow A -> B` holds when no traffic at all is allowed from a zone of `A` to another zone of `B`. The message names the hop and the rule (file:line) that opens it. Narrow or remove that rule, or add a `deny` for the pair.",
    example: "zone guest { networks 192.168.100.0/22 }\nzone pacs { hosts 10.30.0.5 tags phi }\nallow guest -> pacs : tcp/443\nrequire no-flow guest -> tag:phi\n",
};

pub const NO_PATH_VIOLATED: CodeInfo = CodeInfo {
    code: "WG402",
    name: "no-path-violated",
    severity: Severity::Error,
    summary: "a `require no-path` requirement does not hold: a chain of allowed hops leads from source to target",
    explanation: "`require no-path A -> B` forbids lateral movement: no chain of allowed hops, of any length, from a zone of `A` to another zone of `B`. An attacker who holds a host in each zone on the way can pivot. The message names the shortest chain, hop by hop, with the rule that opens each hop; break the chain at any hop.",
    example: "zone guest { networks 192.168.100.0/22 }\nzone web { hosts 10.0.0.80 }\nzone pumps { networks 10.40.0.0/22 tags life-critical }\nallow guest -> web : tcp/443\nallow web -> pumps : tcp/443\nrequire no-path guest -> tag:life-critical\n",
};

pub const REQUIREMENT_NOT_ENFORCED: CodeInfo = CodeInfo {
    code: "WG403",
    name: "requirement-not-enforced",
    severity: Severity::Warning,
    summary: "a requirement holds by the rules but a zone in `mode monitor` lets traffic through at run time",
    explanation: "A zone in `mode monitor` passes (and audits) what default deny would drop because of it, so the requirement is not enforced until the zone is switched to `mode enforce`. Traffic that a `deny` rule covers still drops in monitor mode, so a pair that denies close for every packet stays closed. The message names the chain that monitor mode opens.",
    example: "zone guest { networks 192.168.100.0/22 }\nzone pumps { networks 10.40.0.0/22 mode monitor }\nrequire no-flow guest -> pumps\n",
};

/// Every code of the compiler, in code order.
pub const ALL: &[CodeInfo] = &[
    DUPLICATE_PREFIX,
    IPV4_MAPPED_PREFIX,
    CAPACITY_EXCEEDED,
    EMPTY_WORLD,
    WHOLE_ADDRESS_SPACE,
    CONNTRACK_LIMITS_EXCEED_CAPACITY,
    NO_FLOW_VIOLATED,
    NO_PATH_VIOLATED,
    REQUIREMENT_NOT_ENFORCED,
    lints::shadowed_by_deny::CODE,
    lints::redundant_rule::CODE,
    lints::unused_service::CODE,
    lints::empty_zone::CODE,
    lints::overlapping_prefix::CODE,
    lints::expired_rule::CODE,
    lints::rule_expires_soon::CODE,
    lints::cleartext_management::CODE,
    lints::medical_to_world::CODE,
    lints::broad_service::CODE,
];

#[cfg(test)]
mod tests {
    #[test]
    fn codes_are_unique_and_in_order() {
        let mut seen = std::collections::HashSet::new();
        for w in super::ALL.windows(2) {
            assert!(w[0].code < w[1].code, "{} before {}", w[0].code, w[1].code);
        }
        for c in super::ALL {
            assert!(seen.insert(c.name), "{}", c.name);
            assert!(
                wardgate_lang::codes::ALL
                    .iter()
                    .all(|l| l.code != c.code && l.name != c.name)
            );
        }
    }
}
