//! The registry of the language's diagnostic codes.
//!
//! WG1xx: syntax. WG2xx: names, references, values, includes, inventory.
//! (WG3xx resolution, WG4xx requirements and WG5xx lints belong to the
//! compiler, which keeps its own list of [`CodeInfo`].) A code is never
//! reused; a retired code stays retired.
//!
//! `docs/diagnostics.md` is generated from these entries by
//! [`render_markdown`]; a test fails when it is stale.

use crate::diagnostic::{CodeInfo, Severity};

macro_rules! codes {
    ($( $(#[$meta:meta])* $ident:ident = $code:literal $name:literal $sev:ident {
        summary: $summary:literal,
        explanation: $explanation:literal,
        example: $example:literal $(,)?
    } )*) => {
        $(
            $(#[$meta])*
            pub const $ident: CodeInfo = CodeInfo {
                code: $code,
                name: $name,
                severity: Severity::$sev,
                summary: $summary,
                explanation: $explanation,
                example: $example,
            };
        )*
        /// Every code of the language, in code order.
        pub const ALL: &[CodeInfo] = &[$($ident),*];
    };
}

codes! {
    SYNTAX_ERROR = "WG101" "syntax-error" Error {
        summary: "the text does not follow the grammar of the language",
        explanation: "The parser expected something else at this place; the message says what it expected. After a syntax error the parser skips to the next line that starts a statement, so later errors are still reported.",
        example: "zone imaging {\n    netwroks 10.20.0.0/23\n}\n",
    }
    UNTERMINATED_STRING = "WG102" "unterminated-string" Error {
        summary: "a string has no closing quote on its line",
        explanation: "Strings are written on one line between double quotes. Close the string, or escape a quote inside it as `\\\"`.",
        example: "zone imaging {\n    description \"CT and MR\n}\n",
    }
    INVALID_ESCAPE = "WG103" "invalid-escape" Error {
        summary: "a string contains an escape other than `\\\"` or `\\\\`",
        explanation: "Only `\\\"` (a quote) and `\\\\` (a backslash) are escapes in strings.",
        example: "zone imaging { description \"CT\\tMR\" }\n",
    }
    INVALID_ADDRESS = "WG104" "invalid-address" Error {
        summary: "an address is not a valid IPv4 or IPv6 address",
        explanation: "Addresses are IPv4 dotted quads (`10.20.0.1`) or IPv6 in any standard textual form (`2001:db8::1`). A prefix is an address, `/`, and a length.",
        example: "zone pacs { hosts 10.30.0.256 }\n",
    }
    KEYWORD_AS_NAME = "WG105" "keyword-as-name" Error {
        summary: "a keyword is used as a zone, service or tag name",
        explanation: "Keywords (`zone`, `world`, `any`, `tcp`, `hosts`, ...) cannot be names, so that a policy always reads one way. Choose another name, for example `internet` instead of `world`.",
        example: "zone world { networks 192.0.2.0/24 }\n",
    }
    DUPLICATE_ZONE = "WG201" "duplicate-zone" Error {
        summary: "two zones have the same name",
        explanation: "A zone is declared once, in one file. To add addresses to a zone, repeat the item inside the one declaration (two `networks` lines add up).",
        example: "zone pacs { hosts 10.30.0.5 }\nzone pacs { hosts 10.30.0.6 }\n",
    }
    DUPLICATE_SERVICE = "WG202" "duplicate-service" Error {
        summary: "two services have the same name",
        explanation: "A service is defined once. List every port in that one definition.",
        example: "service dicom = tcp/104\nservice dicom = tcp/11112\n",
    }
    UNDEFINED_ZONE = "WG203" "undefined-zone" Error {
        summary: "a selector names a zone that is not declared",
        explanation: "A selector that matches no zone is an error: a guardrail that silently selects nothing must never pass review. Declare the zone, or fix the spelling.",
        example: "zone imaging { networks 10.20.0.0/23 }\nallow imaging -> pacs : tcp/104\n",
    }
    UNDEFINED_SERVICE = "WG204" "undefined-service" Error {
        summary: "a service name is used but not defined",
        explanation: "Define the service with `service NAME = ...`, or write the protocol and port directly (`tcp/443`).",
        example: "zone a { hosts 10.0.0.1 }\nzone b { hosts 10.0.0.2 }\nallow a -> b : dicom\n",
    }
    UNDEFINED_TAG = "WG205" "undefined-tag" Error {
        summary: "a `tag:` selector names a tag that no zone carries",
        explanation: "A selector that matches no zone is an error. Add the tag to the zones it is meant for (`tags NAME`), or fix the spelling.",
        example: "zone infusion { networks 10.40.0.0/22 }\nrequire no-path world -> tag:life-critical\n",
    }
    HOST_BITS_SET = "WG206" "host-bits-set" Error {
        summary: "a prefix has bits set after its length",
        explanation: "In `10.20.0.1/24` the address has bits set that the length `/24` says are not part of the network: it is ambiguous whether the host or the network was meant. Write the network (`10.20.0.0/24`) or the host (`hosts 10.20.0.1`).",
        example: "zone imaging { networks 10.20.0.1/24 }\n",
    }
    PORT_OUT_OF_RANGE = "WG207" "port-out-of-range" Error {
        summary: "a port is not in 0-65535",
        explanation: "TCP, UDP and SCTP ports are 16-bit numbers.",
        example: "service web = tcp/80800\n",
    }
    PORT_RANGE_REVERSED = "WG208" "port-range-reversed" Error {
        summary: "a port range has its low port above its high port",
        explanation: "A range is written `LOW-HIGH` with LOW ≤ HIGH.",
        example: "service rpc = tcp/49152-1024\n",
    }
    UNKNOWN_ICMP_TYPE = "WG209" "unknown-icmp-type" Error {
        summary: "an ICMP or ICMPv6 type is not a known name or a number in 0-255",
        explanation: "ICMP types are written by number (0-255) or by their standard name, for example `echo-request`, `echo-reply`, `destination-unreachable`, `time-exceeded`, `parameter-problem`, and for ICMPv6 also `packet-too-big`. The names differ between ICMP and ICMPv6 where the protocols do (`redirect` is ICMP only).",
        example: "service ping = icmp/echo\n",
    }
    INVALID_DATE = "WG210" "invalid-date" Error {
        summary: "a date does not exist on the calendar",
        explanation: "Dates are `YYYY-MM-DD` and must exist: there is no 2027-02-29.",
        example: "zone a { hosts 10.0.0.1 }\nzone b { hosts 10.0.0.2 }\nallow a -> b : tcp/22 until 2027-02-29\n",
    }
    INVALID_PROTOCOL = "WG211" "invalid-protocol-number" Error {
        summary: "a `proto/NUMBER` is not an IP protocol number in 0-255",
        explanation: "IP protocol numbers are 8-bit. Write TCP, UDP, SCTP, ICMP and ICMPv6 by name (`tcp/443`), so that ports and types can be given.",
        example: "service esp = proto/500\n",
    }
    PREFIX_LENGTH_OUT_OF_RANGE = "WG212" "prefix-length-out-of-range" Error {
        summary: "a prefix length is longer than the address",
        explanation: "An IPv4 prefix length is 0-32, an IPv6 prefix length 0-128.",
        example: "zone imaging { networks 10.20.0.0/33 }\n",
    }
    CONFLICTING_ZONE_ITEM = "WG213" "conflicting-zone-item" Error {
        summary: "a zone sets `mode`, `criticality` or `description` twice",
        explanation: "List items (`networks`, `hosts`, `tags`) add up when repeated, but a zone has one mode, one criticality and one description. Keep one of them.",
        example: "zone infusion {\n    networks 10.40.0.0/22\n    mode monitor\n    mode enforce\n}\n",
    }
    SERVICE_CYCLE = "WG214" "service-cycle" Error {
        summary: "a service is defined in terms of itself",
        explanation: "Services can name other services, but not in a circle.",
        example: "service a = b, tcp/1\nservice b = a\n",
    }
    INCLUDE_NOT_FOUND = "WG215" "include-not-found" Error {
        summary: "an included file cannot be read",
        explanation: "`include` paths are relative to the including file.",
        example: "include \"missing.ward\"\n",
    }
    INCLUDE_CYCLE = "WG216" "include-cycle" Error {
        summary: "files include each other in a circle",
        explanation: "A file that includes itself, directly or through other files, is an error. Include shared definitions from one place.",
        example: "# a.ward\ninclude \"a.ward\"\n",
    }
    INVALID_INVENTORY = "WG217" "invalid-inventory" Error {
        summary: "an inventory file cannot be read or is not a device list",
        explanation: "An inventory is a YAML file with a `devices` list; each device has `name`, `address` and `zone`, and optionally `vendor`, `model` and `firmware`.",
        example: "inventory \"assets.yaml\"   # assets.yaml: `devices: 42`\n",
    }
    INVENTORY_UNKNOWN_ZONE = "WG218" "inventory-unknown-zone" Error {
        summary: "an inventory device names a zone that is not declared",
        explanation: "Every device is added to its zone as a host; the zone must be declared in the policy.",
        example: "inventory \"assets.yaml\"   # a device with `zone: imagng`\n",
    }
    INVENTORY_BAD_ADDRESS = "WG219" "inventory-bad-address" Error {
        summary: "an inventory device has an address that is not an IP address",
        explanation: "A device's `address` is one IPv4 or IPv6 address, without a prefix length.",
        example: "inventory \"assets.yaml\"   # a device with `address: 10.20.0.300`\n",
    }
    INVENTORY_DUPLICATE_ADDRESS = "WG220" "inventory-duplicate-address" Error {
        summary: "two inventory devices have the same address",
        explanation: "One address belongs to one device. Two devices with the same address is a stale or mistyped inventory entry.",
        example: "inventory \"assets.yaml\"   # two devices with `address: 10.20.0.11`\n",
    }
    NO_ZONES = "WG221" "no-zones" Error {
        summary: "the policy declares no zone",
        explanation: "A policy without zones segments nothing; in practice it is an empty, truncated or half-written file. Loading one on a gateway would replace a working policy by accident, so `wardgate check`, `compile` and the agent refuse it. A file of services alone is a library meant to be included and is not reported. `wardgate check --allow-empty` accepts an empty policy on purpose.",
        example: "# an empty file, or one holding only comments\n",
    }
    INCLUDE_TOO_DEEP = "WG222" "include-too-deep" Error {
        summary: "includes are nested more than 64 files deep",
        explanation: "A file may include files that include others, up to 64 levels below the root file. A deeper chain is almost always generated by mistake (or made to exhaust the checker); the include that goes one level too deep is reported and not read. Flatten the chain: include shared files from one place.",
        example: "# a0.ward includes a1.ward, which includes a2.ward, ... a65.ward\ninclude \"a1.ward\"\n",
    }
    OUTSIDE_POLICY_DIRECTORY = "WG223" "outside-policy-directory" Error {
        summary: "an `include` or `inventory` names a file outside the policy's directory",
        explanation: "A policy may read only files in the directory of its root file and below it, symbolic links resolved, so that checking a policy from a pull request cannot read (and echo) files elsewhere on the machine. `wardgate check --allow-outside DIR` adds a directory that may be read as well.",
        example: "include \"/etc/wardgate/common.ward\"\n",
    }
    NOT_A_POLICY_FILE = "WG224" "not-a-policy-file" Error {
        summary: "an `include` names a file that is not a `.ward` file, or an `inventory` one that is not `.yaml`",
        explanation: "`include` reads policy files, whose names end in `.ward`; `inventory` reads YAML device lists, whose names end in `.yaml` or `.yml`. Any other file is refused before it is read, so its content never appears in a diagnostic.",
        example: "include \"/etc/passwd\"\n",
    }
    INVALID_SUPPRESSION = "WG225" "invalid-suppression" Warning {
        summary: "a suppression comment is malformed, gives no reason, or names an unknown or error code",
        explanation: "`# wardgate: allow(CODE) \"reason\"` acknowledges a warning on the next statement (or, at the end of a line, on that line). It must give a reason and name known warning or note codes; errors cannot be suppressed. A suppression with a problem acknowledges nothing.",
        example: "# wardgate: allow(WG502)\nzone a { hosts 10.0.0.1 }\n",
    }
    INVALID_CONNTRACK_LIMIT = "WG226" "invalid-conntrack-limit" Error {
        summary: "a `conntrack-limit` is 0 or larger than 4294967295",
        explanation: "`conntrack-limit N` caps the connections a zone's hosts may have tracked at once; it is a count from 1 up. A zone without the item has no limit of its own and shares what the limited zones leave (see the language reference, Connection tracking).",
        example: "zone guest { networks 192.168.100.0/22 conntrack-limit 0 }\n",
    }
}

/// Looks a code up by its code (`WG206`) or its name (`host-bits-set`).
#[must_use]
pub fn lookup<'a>(codes: &[&'a CodeInfo], key: &str) -> Option<&'a CodeInfo> {
    codes
        .iter()
        .copied()
        .find(|c| c.code == key || c.name == key)
}

/// The diagnostic reference (`docs/diagnostics.md`) for these codes.
#[must_use]
pub fn render_markdown(codes: &[&CodeInfo]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    out.push_str("<!-- Generated from the code registries by `UPDATE_DOCS=1 cargo test -p wardgate-compiler --test cli_check`. Do not edit by hand. -->\n\n");
    out.push_str("# wardgate diagnostics\n\n");
    out.push_str("Every problem `wardgate check` reports has a stable code, a kebab-case name and a default severity. ");
    out.push_str(
        "Codes are never reused. WG1xx: syntax; WG2xx: names, values, includes and inventory; ",
    );
    out.push_str("WG3xx: resolution; WG4xx: requirements; WG5xx: lints.\n\n");
    out.push_str("Output formats: `--format human` (default), `concise` (one line each: `file:line:col: severity[CODE] message`), `json`, `sarif` (SARIF 2.1.0; each rule's `helpUri` points to its section below) and `github` (workflow annotations); see [the JSON format](#json-output) below. ");
    out.push_str("Human and `github` output show the first 100 diagnostics and then one line counting the rest; `concise`, `json` and `sarif` list them all. ");
    out.push_str("Lines and columns are 1-based and count characters in every format. Control characters in a policy are shown as visible pictures (`␛`), never sent to the terminal.\n\n");
    out.push_str("A warning can be acknowledged in the policy with a reason, `# wardgate: allow(WG502) \"vendor window, ticket 123\"` (see [Suppressing a finding](language.md#suppressing-a-finding)); it then counts for neither `--deny-warnings` nor the summary, is left out of human, concise and github output, and is listed in JSON (`suppressed`) and SARIF (`suppressions`).\n\n");
    out.push_str("| code | name | severity | summary |\n|---|---|---|---|\n");
    for c in codes {
        let _ = writeln!(
            out,
            "| [{}](#{}) | `{}` | {} | {} |",
            c.code,
            c.code.to_lowercase(),
            c.name,
            c.severity,
            c.summary
        );
    }
    for c in codes {
        let _ = write!(
            out,
            "\n## {}\n\n`{}` · {}\n\n{}.\n\n{}\n\nExample:\n\n```ward\n{}```\n",
            c.code,
            c.name,
            c.severity,
            upper_first(c.summary),
            c.explanation,
            c.example
        );
    }
    out.push_str(JSON_FORMAT_DOC);
    out
}

fn upper_first(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map_or_else(String::new, |f| f.to_uppercase().chain(chars).collect())
}

const JSON_FORMAT_DOC: &str = r#"
## JSON output

`wardgate check --format json` prints one object:

```json
{
  "version": 1,
  "diagnostics": [
    {
      "file": "examples/bad/host-bits-set.ward",
      "line": 1, "column": 27, "end_line": 1, "end_column": 39,
      "code": "WG206", "name": "host-bits-set", "severity": "error",
      "message": "prefix `10.20.0.1/24` has host bits set",
      "label": "host bits set",
      "labels": [ { "file": "...", "line": 1, "column": 1, "end_line": 1, "end_column": 5, "message": "..." } ],
      "help": "write the network `10.20.0.0/24`"
    }
  ],
  "errors": 1,
  "warnings": 0,
  "suppressed": 0
}
```

Lines and columns are 1-based; columns count characters; the end is exclusive. `label` and `help` are `null` when absent. `errors` and `warnings` count the findings that no suppression comment acknowledges; an acknowledged finding is listed with `"suppressed": { "file": "...", "line": 12, "reason": "..." }` (the field is absent otherwise) and counted in `suppressed`.
"#;
