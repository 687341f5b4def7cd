//! `wardgate query FILE --from ADDR --to ADDR [--proto P] [--port N | --icmp-type T]`:
//! how the gateway decides the first packet of a connection, with both zones
//! and the deciding rule. Decided from the compiled image by the reference
//! evaluator, exactly as the datapath decides; IPv6 neighbour discovery
//! passes before any policy lookup, in the datapath and here.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;
use wardgate_compiler::{Packet, decide};
use wardgate_lang::ast::ServiceAtom;
use wardgate_lang::date::Date;

use super::{EXIT_FAILURE, EXIT_OK, exit, parse_date};

#[derive(clap::Args)]
pub struct Args {
    /// The root policy file.
    pub file: PathBuf,
    /// Source address (the connection's initiator).
    #[arg(long, value_name = "ADDR")]
    pub from: IpAddr,
    /// Destination address.
    #[arg(long, value_name = "ADDR")]
    pub to: IpAddr,
    /// Protocol: tcp, udp, sctp, icmp, icmpv6 or a number (default tcp, or
    /// icmp/icmpv6 with `--icmp-type`).
    #[arg(long, value_name = "P")]
    pub proto: Option<String>,
    /// Destination port (tcp, udp, sctp).
    #[arg(long, value_name = "N", conflicts_with = "icmp_type")]
    pub port: Option<u16>,
    /// ICMP type, by number or name (`echo-request`).
    #[arg(long, value_name = "T")]
    pub icmp_type: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// The date rule expiry is judged against (`YYYY-MM-DD`, UTC); default today.
    #[arg(long, value_parser = parse_date, value_name = "DATE")]
    pub today: Option<Date>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
}

/// The `--format json` object (`docs/compiler.md`): `rule` is `null` for
/// intra-zone, default-deny and neighbour-discovery decisions.
#[derive(Serialize)]
struct Answer<'a> {
    verdict: &'a str,
    src_zone: &'a str,
    dst_zone: &'a str,
    rule: Option<RuleJson<'a>>,
    /// Set only when the packet drops before the policy sees it:
    /// `drop_mapped` (an IPv6 packet with an IPv4-mapped address).
    #[serde(skip_serializing_if = "Option::is_none")]
    drop_reason: Option<&'static str>,
}

#[derive(Serialize)]
struct RuleJson<'a> {
    file: &'a str,
    line: u32,
    text: &'a str,
}

fn protocol(args: &Args) -> Result<u8, String> {
    let v6 = args.from.is_ipv6();
    let Some(p) = args.proto.as_deref() else {
        return Ok(if args.icmp_type.is_some() {
            if v6 { 58 } else { 1 }
        } else {
            6
        });
    };
    Ok(match p {
        "tcp" => 6,
        "udp" => 17,
        "sctp" => 132,
        "icmp" => 1,
        "icmpv6" => 58,
        n => n.parse::<u8>().map_err(|_| {
            format!("`{n}` is not a protocol (tcp, udp, sctp, icmp, icmpv6 or a number 0-255)")
        })?,
    })
}

fn icmp_type(proto: u8, t: &str) -> Result<u16, String> {
    if let Ok(n) = t.parse::<u8>() {
        return Ok(u16::from(n));
    }
    let name = if proto == 58 { "icmpv6" } else { "icmp" };
    match wardgate_lang::parser::parse_service_atom(
        wardgate_lang::FileId(0),
        &format!("{name}/{t}"),
    ) {
        Ok(a) => match a.node {
            ServiceAtom::Icmp(Some(t)) | ServiceAtom::Icmpv6(Some(t)) => Ok(u16::from(t.value)),
            _ => Err(format!("`{t}` is not an {name} type")),
        },
        Err(_) => Err(format!(
            "`{t}` is not an {name} type (a number or a name such as `echo-request`)"
        )),
    }
}

/// ICMPv6 link control: neighbour discovery (133-137) and the multicast
/// listener discovery it relies on. The datapath passes it whatever the policy
/// says ([`wardgate_common::is_link_control_icmpv6`]), since segmentation must
/// not break the network underneath it. Returns what to call it.
fn link_control(pkt: &Packet) -> Option<&'static str> {
    let icmp_type = u8::try_from(pkt.port).ok()?;
    (pkt.proto == wardgate_common::IPPROTO_ICMPV6
        && wardgate_common::is_link_control_icmpv6(icmp_type))
    .then_some(if (133..=137).contains(&icmp_type) {
        "neighbour discovery"
    } else {
        "multicast listener discovery"
    })
}

fn packet(args: &Args) -> Result<Packet, String> {
    if args.from.is_ipv4() != args.to.is_ipv4() {
        return Err("`--from` and `--to` must both be IPv4 or both IPv6".into());
    }
    let proto = protocol(args)?;
    let port = match proto {
        6 | 17 | 132 => {
            if args.icmp_type.is_some() {
                return Err("`--icmp-type` needs `--proto icmp` or `--proto icmpv6`".into());
            }
            args.port.ok_or_else(|| {
                format!(
                    "`--port` is required for `{}`",
                    args.proto.as_deref().unwrap_or("tcp")
                )
            })?
        }
        1 | 58 => {
            if args.port.is_some() {
                return Err("ICMP has no ports: use `--icmp-type`".into());
            }
            match &args.icmp_type {
                Some(t) => icmp_type(proto, t)?,
                None => return Err("`--icmp-type` is required for ICMP".into()),
            }
        }
        _ => {
            if args.port.is_some() || args.icmp_type.is_some() {
                return Err(format!("protocol {proto} has no ports or types"));
            }
            0
        }
    };
    Ok(Packet {
        src: args.from,
        dst: args.to,
        proto,
        port,
    })
}

pub fn run(args: &Args) -> ExitCode {
    let pkt = match packet(args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return exit(EXIT_FAILURE);
        }
    };
    let compiled = match super::compile::load(&args.file, args.today) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let image = &compiled.image;
    let mut d = decide(image, &pkt);
    let link_control = link_control(&pkt);
    if link_control.is_some() {
        d.verdict = wardgate_compiler::Verdict::Allow;
        d.rule = None;
    }
    let rule = d.rule.and_then(|r| image.rule(r));
    let answer = Answer {
        verdict: d.verdict.as_str(),
        src_zone: image.zone_name(d.src_zone),
        dst_zone: image.zone_name(d.dst_zone),
        rule: rule.map(|r| RuleJson {
            file: &r.file,
            line: r.line,
            text: &r.text,
        }),
        drop_reason: d.malformed.then_some("drop_mapped"),
    };
    match args.format {
        Format::Json => outln!(
            "{}",
            serde_json::to_string(&answer).expect("answer serializes")
        ),
        Format::Human => {
            outln!(
                "{}: {} -> {}",
                answer.verdict,
                answer.src_zone,
                answer.dst_zone
            );
            match rule {
                None if d.malformed => outln!(
                    "  malformed: an IPv4-mapped IPv6 address (`::ffff:0:0/96`) never appears on a real wire; the gateway drops it"
                ),
                None if let Some(what) = link_control => {
                    outln!("  passes: {what} (the gateway never filters it)");
                }
                Some(r) => outln!("  rule: {}:{}: {}", r.file, r.line, r.text),
                None if d.src_zone == d.dst_zone
                    && d.rule.is_none()
                    && answer.verdict == "allow" =>
                {
                    outln!("  intra-zone traffic (the zone is not isolated)");
                }
                None => outln!("  no rule allows it (default deny)"),
            }
            if answer.verdict == "audit" {
                outln!("  passed and logged: a zone involved is in mode monitor");
            }
        }
    }
    exit(EXIT_OK)
}
