//! Drop and audit events to the ring buffer, behind a per-CPU token bucket
//! so that a flood costs a counter increment, not a ring-buffer write.

use aya_ebpf::programs::XdpContext;
use wardgate_common::{Config, Event, counter};

use crate::{
    decide::Decision,
    maps::{EVENT_RATE, EVENTS, count},
    parse::Packet,
};

const NS_PER_SEC: u64 = 1_000_000_000;

/// Takes a token from this CPU's bucket (refilled at `rate` per second, at
/// most `rate` banked). False when the bucket is empty.
#[inline(always)]
fn take_token(rate: u32, now: u64) -> bool {
    if rate == 0 {
        return false;
    }
    let Some(bucket) = EVENT_RATE.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: per-CPU slot from a successful lookup; only this CPU touches it.
    let bucket = unsafe { &mut *bucket };
    let rate = u64::from(rate);
    let elapsed = now.saturating_sub(bucket.last_ns);
    if elapsed > 0 {
        let refill = if elapsed >= NS_PER_SEC {
            rate
        } else {
            elapsed * rate / NS_PER_SEC
        };
        if refill > 0 {
            bucket.tokens = core::cmp::min(bucket.tokens + refill, rate);
            bucket.last_ns = now;
        }
    }
    if bucket.tokens == 0 {
        return false;
    }
    bucket.tokens -= 1;
    true
}

/// Sends one event for `p`, decided by `d`, unless rate-limited.
#[inline(always)]
pub fn emit(
    ctx: &XdpContext,
    p: &Packet,
    d: &Decision,
    verdict: u8,
    reason: u32,
    config: &Config,
    now: u64,
) {
    if !take_token(config.events_per_sec, now) {
        count(counter::EVENTS_RATE_LIMITED);
        return;
    }
    let Some(mut entry) = EVENTS.reserve::<Event>(0) else {
        count(counter::EVENTS_LOST);
        return;
    };
    // SAFETY: `ctx.ctx` is the kernel's valid `xdp_md` for this invocation.
    let ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    entry.write(Event {
        ts_ns: now,
        src: p.src,
        dst: p.dst,
        sport: p.sport,
        dport: if p.proto == wardgate_common::IPPROTO_ICMP
            || p.proto == wardgate_common::IPPROTO_ICMPV6
        {
            u16::from(p.icmp_type)
        } else {
            p.dport
        },
        proto: p.proto,
        verdict,
        family: p.family,
        _pad: 0,
        reason,
        ifindex,
        src_zone: d.src_zone,
        dst_zone: d.dst_zone,
        rule: d.rule,
        generation: config.generation,
    });
    entry.submit(0);
    count(counter::EVENTS_SENT);
}
