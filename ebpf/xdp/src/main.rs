//! The wardgate XDP program: one generic program; the policy is data in maps.
//!
//! Per packet, in this order:
//! 1. parse (`parse`): non-IP passes, truncated or malformed IP drops (an
//!    IPv6 packet with an IPv4-mapped address too, counted on its own);
//! 2. IPv6 neighbour discovery and MLD pass; the failsafe (SSH to the gateway) passes;
//! 3. quarantine: a quarantined source or destination drops, tracked or not;
//! 4. later fragments pass only if their first fragment passed;
//! 5. connection tracking (`conntrack`): a packet this CPU's connection
//!    cache vouches for passes (`ctcache`: established connections, and the
//!    first direction of unanswered ones); a table is looked up only if
//!    its filter says it may hold the packet's connection (`ctfilter`); a
//!    tracked connection passes both ways; an entry from an older policy generation is decided again first;
//!    the first reply moves a connection from the unconfirmed table to the
//!    established one; ICMP errors quoting a tracked connection pass;
//! 6. the policy (`decide`): classify both addresses, look up the rule tables;
//! 7. allowed: track and pass (a new connection whose zone is at its
//!    `conntrack-limit` drops); denied by a rule: drop; denied by default:
//!    drop, or pass as an audit in monitor mode;
//! 8. with the fast path on (`CONFIG_FAST_PATH`), a passed packet is forwarded
//!    here (`forward`) instead of by the kernel stack, where the FIB allows.
//!
//! Every verdict is counted (per-CPU) and drops and audits go to a
//! rate-limited ring buffer (`events`); with `CONFIG_FLOWS`, each policy
//! decision of step 6 is also counted per flow key (`flows`), losslessly
//! until that table is full.
#![no_std]
#![no_main]
// `atomic_xadd` for the flow counts (`flows`) and the connection charges
// (`conntrack`): BPF has the instruction but core does not expose 64-bit
// atomics for the target.
#![feature(core_intrinsics)]
#![allow(internal_features, reason = "core_intrinsics: atomic_xadd, see above")]
// Inline BPF assembly for one-instruction word loads (`load`).
#![feature(asm_experimental_arch)]
#![allow(
    unsafe_code,
    reason = "an XDP program reads packets and maps through raw pointers; each block has a SAFETY comment"
)]
#![allow(
    clippy::needless_borrows_for_generic_args,
    reason = "map keys are passed by reference where they already are: by value they would be copied, a byte loop in BPF"
)]

mod clock;
mod conntrack;
mod ctcache;
mod ctfilter;
mod decide;
mod events;
mod flows;
mod forward;
mod load;
mod maps;
mod parse;

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use wardgate_common::{
    CONFIG_CT_FILTER, CONFIG_FAILSAFE, CONFIG_FAST_PATH, CONFIG_FLOWS, CONFIG_LOADED,
    CONFIG_MONITOR_ALL, CONFIG_QUARANTINE, CT_ESTABLISHED, Config, EVENT_AUDIT, EVENT_DROP,
    FailsafeKey, FragKey, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP,
    RULE_NONE, counter, is_link_control_icmpv6,
};

use crate::{
    decide::Decision,
    maps::{CONFIG, FAILSAFE, FRAGMENTS, QUARANTINE, Scratch, Tally, count_rule},
    parse::{Packet, ParseError, Parsed},
};

#[xdp]
pub fn wardgate(ctx: XdpContext) -> u32 {
    match try_wardgate(&ctx) {
        Ok(action) => action,
        // The one place an error becomes an action. Errors only come from
        // map lookups that cannot fail on a loaded program; fail closed.
        Err(()) => xdp_action::XDP_DROP,
    }
}

fn try_wardgate(ctx: &XdpContext) -> Result<u32, ()> {
    let tally = maps::tally().ok_or(())?;
    let tally = &tally;
    tally.add(counter::PACKETS);
    let s = maps::scratch().ok_or(())?;
    match parse::parse(ctx, &mut s.packet) {
        Ok(Parsed::NonIp) => {
            tally.add(counter::NON_IP);
            return Ok(xdp_action::XDP_PASS);
        }
        Ok(Parsed::Ip) => {}
        Err(ParseError::Truncated) => {
            tally.add(counter::DROP_TRUNCATED);
            return Ok(xdp_action::XDP_DROP);
        }
        Err(ParseError::Malformed) => {
            tally.add(counter::DROP_MALFORMED);
            return Ok(xdp_action::XDP_DROP);
        }
        Err(ParseError::Mapped) => {
            tally.add(counter::DROP_MAPPED);
            return Ok(xdp_action::XDP_DROP);
        }
    }
    let p = &s.packet;
    count_protocol(tally, p);
    let config = *CONFIG.get(0).ok_or(())?;
    if config.flags & CONFIG_LOADED == 0 {
        return Ok(xdp_action::XDP_PASS);
    }
    if p.proto == IPPROTO_ICMPV6 && p.later_fragment == 0 && is_link_control_icmpv6(p.icmp_type) {
        tally.add(counter::NEIGHBOR_DISCOVERY);
        return Ok(xdp_action::XDP_PASS);
    }
    if config.flags & CONFIG_FAILSAFE != 0 && failsafe(p) {
        tally.add(counter::PASS_FAILSAFE);
        return Ok(xdp_action::XDP_PASS);
    }
    let now = clock::now(&config);
    let set = config.active_set;
    // SAFETY: the values are not used.
    if config.flags & CONFIG_QUARANTINE != 0
        && unsafe { QUARANTINE.get(&p.src).is_some() || QUARANTINE.get(&p.dst).is_some() }
    {
        tally.add(counter::DROP_QUARANTINE);
        let d = decide::classify(set, &p.src, &p.dst);
        events::emit(
            ctx,
            p,
            &d,
            EVENT_DROP,
            counter::DROP_QUARANTINE,
            &config,
            now,
        );
        return Ok(xdp_action::XDP_DROP);
    }
    if p.later_fragment != 0 {
        // SAFETY: the value is not used.
        if unsafe { FRAGMENTS.get(&frag_key(p)).is_some() } {
            tally.add(counter::PASS_FRAGMENT);
            return Ok(xdp_action::XDP_PASS);
        }
        tally.add(counter::DROP_FRAGMENT);
        let d = decide::classify(set, &p.src, &p.dst);
        events::emit(ctx, p, &d, EVENT_DROP, counter::DROP_FRAGMENT, &config, now);
        return Ok(xdp_action::XDP_DROP);
    }
    let action = track_or_decide(ctx, tally, s, &config, now);
    if action != xdp_action::XDP_PASS {
        return Ok(action);
    }
    let p = &s.packet;
    if p.first_fragment != 0 {
        let _ = FRAGMENTS.insert(&frag_key(p), &1, 0);
    }
    if config.flags & CONFIG_FAST_PATH != 0 {
        return Ok(forward::forward(ctx, tally, &s.packet, &mut s.fib));
    }
    Ok(action)
}

/// Steps 5 to 7: tracked connections, related ICMP errors, then the policy.
#[inline(always)]
fn track_or_decide(
    ctx: &XdpContext,
    tally: &Tally,
    s: &mut Scratch,
    config: &Config,
    now: u64,
) -> u32 {
    let set = config.active_set;
    let p = &s.packet;
    if ctcache::hit(p, config, now) {
        tally.add(counter::CT_CACHE_HIT);
        tally.add(counter::PASS_TRACKED);
        return xdp_action::XDP_PASS;
    }
    let reversed = conntrack::key_of(&mut s.key, p);
    let filtered = config.flags & CONFIG_CT_FILTER != 0;
    if let Some((entry, dir, table)) =
        conntrack::lookup(&s.key, reversed, conntrack::opens(p), filtered, now)
    {
        let key = &s.key;
        // SAFETY: a pointer from a successful lookup in a hash map; the
        // entry stays valid for this program run (RCU).
        let entry = unsafe { &mut *entry };
        if conntrack::expired(entry, key.proto, now) {
            conntrack::remove(key, entry, table);
        } else {
            if entry.generation != config.generation {
                // The policy changed since this connection was allowed: decide it again.
                tally.add(counter::CT_REDECIDED);
                let (src, dst, dport) = conntrack::original(key, entry);
                let port = conntrack::decision_port(key.proto, dport);
                let d = decide::decide(set, src, dst, key.proto, port);
                if !d.allow && !monitored(&d, config) {
                    conntrack::remove(key, entry, table);
                    return deny(ctx, tally, p, &d, config, now);
                }
                entry.generation = config.generation;
                entry.rule = d.rule;
                entry.src_zone = d.src_zone;
                entry.dst_zone = d.dst_zone;
                conntrack::recharge(entry, set);
            }
            conntrack::update(entry, p, dir, now);
            // Still unconfirmed after this packet: its horizon moves.
            if table == conntrack::Table::Unconfirmed
                && (entry.state != CT_ESTABLISHED || !conntrack::promote(key, entry, set))
            {
                ctfilter::note_unconfirmed(key, entry.state, now);
            }
            if ctcache::vouches(entry.state, dir) {
                ctcache::fill(p, config, now);
            }
            tally.add(counter::PASS_TRACKED);
            return xdp_action::XDP_PASS;
        }
    }
    if parse::is_icmp_error(p) && related(ctx, s, filtered, now) {
        tally.add(counter::PASS_TRACKED);
        return xdp_action::XDP_PASS;
    }
    let p = &s.packet;
    let port = if p.proto == IPPROTO_ICMP || p.proto == IPPROTO_ICMPV6 {
        u16::from(p.icmp_type)
    } else {
        p.dport
    };
    let d = decide::decide(set, &p.src, &p.dst, p.proto, port);
    count_rule(d.rule);
    let audit = !d.allow && monitored(&d, config);
    let tracks = conntrack::starts_tracking(p);
    if tracks && (d.allow || audit) && !conntrack::admit(set, d.src_zone) {
        tally.add(counter::DROP_CT_LIMIT);
        events::emit(ctx, p, &d, EVENT_DROP, counter::DROP_CT_LIMIT, config, now);
        return xdp_action::XDP_DROP;
    }
    if config.flags & CONFIG_FLOWS != 0 {
        flows::record(
            ctx,
            p,
            &d,
            flows::verdict(&d, audit),
            config.generation,
            now,
        );
    }
    if d.allow {
        tally.add(if d.intra_zone {
            counter::PASS_INTRA_ZONE
        } else {
            counter::PASS_RULE
        });
    } else if audit {
        tally.add(counter::AUDIT);
        events::emit(ctx, p, &d, EVENT_AUDIT, counter::AUDIT, config, now);
    } else {
        return deny(ctx, tally, p, &d, config, now);
    }
    if tracks {
        conntrack::create(&s.key, reversed, &d, config.generation, now);
    }
    xdp_action::XDP_PASS
}

/// True if the ICMP error in `s.packet` quotes a packet of a tracked connection.
#[inline(always)]
fn related(ctx: &XdpContext, s: &mut Scratch, filtered: bool, now: u64) -> bool {
    let Ok(q) = parse::quoted(ctx, &s.packet) else {
        return false;
    };
    // The quoted packet's own tuple. A quoted ICMP message can only be part
    // of a tracked connection if it is an echo, so key it as one.
    let echo = if q.proto == IPPROTO_ICMPV6 { 128 } else { 8 };
    let key = &mut s.quoted;
    key.set(&q.src, &q.dst, q.proto, q.sport, q.dport, echo);
    key.canonicalize();
    conntrack::lookup(key, false, false, filtered, now).is_some()
}

/// A denied packet passes as an audit only when no rule denied it (default
/// deny) and monitor mode applies: an explicit deny always drops.
#[inline(always)]
fn monitored(d: &Decision, config: &Config) -> bool {
    d.rule == RULE_NONE && (d.monitor || config.flags & CONFIG_MONITOR_ALL != 0)
}

#[inline(always)]
fn deny(
    ctx: &XdpContext,
    tally: &Tally,
    p: &Packet,
    d: &Decision,
    config: &Config,
    now: u64,
) -> u32 {
    tally.add(counter::DROP_POLICY);
    events::emit(ctx, p, d, EVENT_DROP, counter::DROP_POLICY, config, now);
    xdp_action::XDP_DROP
}

#[inline(always)]
fn failsafe(p: &Packet) -> bool {
    if p.proto != IPPROTO_TCP {
        return false;
    }
    let key = FailsafeKey {
        addr: p.dst,
        port: p.dport,
        proto: p.proto,
        _pad: 0,
    };
    // SAFETY: the value is not used.
    unsafe { FAILSAFE.get(&key).is_some() }
}

#[inline(always)]
fn frag_key(p: &Packet) -> FragKey {
    FragKey {
        src: p.src,
        dst: p.dst,
        id: p.ip_id,
        proto: p.proto,
        _pad: [0; 3],
    }
}

#[inline(always)]
fn count_protocol(tally: &Tally, p: &Packet) {
    if p.vlan_tags > 0 {
        tally.add(counter::VLAN);
    }
    tally.add(if p.family == 4 {
        counter::IPV4
    } else {
        counter::IPV6
    });
    tally.add(match p.proto {
        IPPROTO_TCP => counter::TCP,
        IPPROTO_UDP => counter::UDP,
        IPPROTO_ICMP => counter::ICMP,
        IPPROTO_ICMPV6 => counter::ICMPV6,
        IPPROTO_SCTP => counter::SCTP,
        _ => counter::OTHER_PROTO,
    });
}

/// Writes the jiffies counter and `CLOCK_MONOTONIC_COARSE` (8 bytes each,
/// native order) over the first 16 bytes of the frame and passes it: the
/// agent runs it under `BPF_PROG_TEST_RUN` to calibrate the clock of
/// `clock::now` (it is never attached).
#[xdp]
pub fn wardgate_clock(ctx: XdpContext) -> u32 {
    clock::sample(&ctx);
    xdp_action::XDP_PASS
}

/// Passes every packet: the baseline that benchmarks measure beside `wardgate`
/// in the same run (the agent never attaches it).
#[xdp]
pub fn xdp_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
