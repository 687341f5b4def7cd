//! Lints: patterns that are legal but probably wrong or dangerous.
//!
//! One file per lint, each opening with its documentation (What it does /
//! Why is this bad / Example / Fix), then its registry entry `CODE`, its
//! check, and the cases that must fire and must not. The diagnostics
//! reference (`docs/diagnostics.md`) is generated from the registry entries.
//!
//! Lints read the resolved policy and the lowered tables ([`Context`]), so
//! "allowed" always means what the datapath will do, deny winning.

use wardgate_common::{Interval, PROTO_ANY, PairKey, VERDICT_ALLOW};
use wardgate_lang::Diagnostic;

use crate::lower::{Lowered, find};
use crate::model::{Action, Date, Policy, Rule, RuleId, ServiceAtom, ZoneId};

pub mod broad_service;
pub mod cleartext_management;
pub mod empty_zone;
pub mod expired_rule;
pub mod medical_to_world;
pub mod overlapping_prefix;
pub mod redundant_rule;
pub mod rule_expires_soon;
pub mod shadowed_by_deny;
pub mod unused_service;

/// What every lint reads.
pub struct Context<'a> {
    pub policy: &'a Policy,
    pub lowered: &'a Lowered,
    pub today: Option<Date>,
}

impl Context<'_> {
    /// Allow rules in force, with their ids.
    pub fn allows(&self) -> impl Iterator<Item = (RuleId, &Rule)> {
        self.policy
            .rules
            .iter()
            .enumerate()
            .filter(|(i, r)| r.action == Action::Allow && self.lowered.in_force[*i])
            .map(|(i, r)| (u32::try_from(i).expect("rule count fits u32"), r))
    }

    /// Is the pair looked up by the datapath (not intra-zone of an open zone)?
    #[must_use]
    pub fn consulted(&self, s: ZoneId, d: ZoneId) -> bool {
        s != d || self.policy.zone(s).isolated
    }

    /// The table the datapath uses for `(s, d, proto)`.
    #[must_use]
    pub fn table(&self, s: ZoneId, d: ZoneId, proto: u8) -> Option<&[Interval]> {
        let key = |proto| PairKey {
            src_zone: s,
            dst_zone: d,
            proto,
        };
        self.lowered
            .tables
            .get(&key(u32::from(proto)))
            .or_else(|| self.lowered.tables.get(&key(PROTO_ANY)))
            .map(Vec::as_slice)
    }

    /// Is `(s, d, proto, port)` allowed by the tables?
    #[must_use]
    pub fn allowed(&self, s: ZoneId, d: ZoneId, proto: u8, port: u16) -> bool {
        self.table(s, d, proto)
            .and_then(|t| find(t, port))
            .is_some_and(|iv| iv.verdict == VERDICT_ALLOW)
    }

    /// Does `atom` cover some allowed packet from `s` to `d`?
    #[must_use]
    pub fn opens(&self, s: ZoneId, d: ZoneId, atom: &ServiceAtom) -> bool {
        let range = |proto| {
            PairKey {
                src_zone: s,
                dst_zone: d,
                proto,
            }..=PairKey {
                src_zone: s,
                dst_zone: d,
                proto,
            }
        };
        let (lo, hi) = match atom.proto {
            Some(p) => (u32::from(p), u32::from(p)),
            None => (0, PROTO_ANY),
        };
        let keys = *range(lo).start()..=*range(hi).end();
        self.lowered.tables.range(keys).any(|(_, t)| {
            t.iter()
                .any(|iv| iv.verdict == VERDICT_ALLOW && iv.lo <= atom.hi && atom.lo <= iv.hi)
        })
    }

    /// Does `rule` open anything from `s` to `d`?
    #[must_use]
    pub fn rule_opens(&self, rule: &Rule, s: ZoneId, d: ZoneId) -> bool {
        self.consulted(s, d) && rule.services.iter().any(|a| self.opens(s, d, a))
    }
}

/// Runs every lint.
#[must_use]
pub fn run(cx: &Context) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    shadowed_by_deny::check(cx, &mut out);
    redundant_rule::check(cx, &mut out);
    unused_service::check(cx, &mut out);
    empty_zone::check(cx, &mut out);
    overlapping_prefix::check(cx, &mut out);
    expired_rule::check(cx, &mut out);
    rule_expires_soon::check(cx, &mut out);
    cleartext_management::check(cx, &mut out);
    medical_to_world::check(cx, &mut out);
    broad_service::check(cx, &mut out);
    out
}

/// Shared test helper: the codes a lint reports on a policy text.
#[cfg(test)]
pub(crate) fn codes_of(text: &str, today: &str, code: &str) -> Vec<String> {
    crate::testutil::check_text(text, today.parse().ok())
        .into_iter()
        .filter(|d| d.code == code)
        .map(|d| d.message)
        .collect()
}
