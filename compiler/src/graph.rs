//! The flow graph and requirement proofs.
//!
//! Zones are nodes (node index = zone id). An edge `a -> b` (`a != b`) exists
//! when some traffic from `a` to `b` is allowed: some table of the pair has an
//! allowed interval. The edge carries the rules that open it (the deciding
//! `allow` rules of those intervals, lowest id first).
//!
//! `require no-flow A -> B` holds when no edge leads from a zone of `A` to
//! another zone of `B`; `require no-path A -> B` when no chain of edges does.
//! A violation names the shortest chain, hop by hop, with the rule that opens
//! each hop. A requirement that holds by the rules but not at run time, where
//! a zone in `mode monitor` passes what default deny would drop, is reported
//! too (as a warning: the guarantee is not enforced yet). Monitor mode never
//! opens what a `deny` rule covers, so a pair that explicit denies close for
//! every protocol and port stays closed at run time too.

use std::collections::{HashSet, VecDeque};

use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::{Bfs, EdgeRef};
use wardgate_common::{Interval, PROTO_ANY, PairKey, RULE_NONE, VERDICT_ALLOW, VERDICT_DENY};

use crate::model::{Policy, RequireKind, Requirement, RuleId, ZoneId};

/// What opens an edge.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Edge {
    /// Deciding allow rules of the edge's allowed intervals, sorted.
    pub rules: Vec<RuleId>,
}

/// The zone flow graph.
#[derive(Clone, Debug)]
pub struct FlowGraph {
    pub graph: DiGraph<ZoneId, Edge>,
    /// Per zone: `mode monitor`.
    monitor: Vec<bool>,
    /// Pairs `(a, b)`, `a != b`, whose every packet an explicit deny covers:
    /// closed at run time even when a zone of the pair is in monitor mode.
    denied: HashSet<(ZoneId, ZoneId)>,
}

/// Whether explicit denies close a pair for every packet, gathered table by
/// table.
struct Closing {
    pair: (ZoneId, ZoneId),
    /// Protocols with a table of their own.
    own: usize,
    /// Explicit denies cover every port of each of those tables.
    own_closed: bool,
    /// Explicit denies cover the `any` table (`None`: there is none).
    any_closed: Option<bool>,
}

impl Closing {
    fn closed(&self) -> bool {
        // Every protocol number has a table, or the rest fall to `any`.
        self.own_closed && (self.own == 256 || self.any_closed == Some(true))
    }
}

/// One hop of a chain: `from -> to`, opened by `rule`, or by monitor mode
/// (`rule: None`) in a run-time chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hop {
    pub from: ZoneId,
    pub to: ZoneId,
    pub rule: Option<RuleId>,
}

/// The result of proving one requirement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Proof {
    Holds,
    /// Violated by the rules: the shortest chain.
    Violated(Vec<Hop>),
    /// Holds by the rules, but monitor mode opens this chain at run time.
    NotEnforced(Vec<Hop>),
}

impl FlowGraph {
    /// Builds the graph from lowered tables (sorted by key).
    pub fn new<'a>(
        zones: usize,
        monitor: Vec<bool>,
        tables: impl IntoIterator<Item = (PairKey, &'a [Interval])>,
    ) -> Self {
        let mut graph = DiGraph::with_capacity(zones, 0);
        for z in 0..zones {
            graph.add_node(u32::try_from(z).expect("zone count fits u32"));
        }
        let mut current: Option<((ZoneId, ZoneId), Edge)> = None;
        let mut closing: Option<Closing> = None;
        let mut denied = HashSet::new();
        let close = |denied: &mut HashSet<(ZoneId, ZoneId)>, c: Option<Closing>| {
            if let Some(c) = c.filter(Closing::closed) {
                denied.insert(c.pair);
            }
        };
        let flush = |graph: &mut DiGraph<ZoneId, Edge>, cur: Option<((ZoneId, ZoneId), Edge)>| {
            if let Some(((s, d), mut e)) = cur
                && !e.rules.is_empty()
            {
                e.rules.sort_unstable();
                e.rules.dedup();
                graph.add_edge(NodeIndex::new(s as usize), NodeIndex::new(d as usize), e);
            }
        };
        for (key, table) in tables {
            if key.src_zone == key.dst_zone {
                continue;
            }
            let pair = (key.src_zone, key.dst_zone);
            if current.as_ref().is_none_or(|c| c.0 != pair) {
                flush(&mut graph, current.take());
                current = Some((pair, Edge::default()));
                close(&mut denied, closing.take());
                closing = Some(Closing {
                    pair,
                    own: 0,
                    own_closed: true,
                    any_closed: None,
                });
            }
            let all_denied = table
                .iter()
                .all(|iv| iv.verdict == VERDICT_DENY && iv.rule != RULE_NONE);
            let c = closing.as_mut().expect("set above");
            if key.proto == PROTO_ANY {
                c.any_closed = Some(all_denied);
            } else {
                c.own += 1;
                c.own_closed &= all_denied;
            }
            let edge = &mut current.as_mut().expect("set above").1;
            edge.rules.extend(
                table
                    .iter()
                    .filter(|iv| iv.verdict == VERDICT_ALLOW)
                    .map(|iv| iv.rule),
            );
        }
        flush(&mut graph, current);
        close(&mut denied, closing);
        Self {
            graph,
            monitor,
            denied,
        }
    }

    /// The graph of a policy lowered into `tables`.
    #[must_use]
    pub fn of_policy(policy: &Policy, lowered: &crate::lower::Lowered) -> Self {
        Self::new(
            policy.zones.len(),
            policy.zones.iter().map(|z| z.monitor).collect(),
            lowered.tables.iter().map(|(k, t)| (*k, t.as_slice())),
        )
    }

    /// The graph of an image.
    #[must_use]
    pub fn of_image(image: &crate::image::PolicyImage) -> Self {
        Self::new(
            image.zones().len(),
            image
                .zones()
                .iter()
                .map(|z| z.flags & wardgate_common::ZONE_MONITOR != 0)
                .collect(),
            image.pairs().iter().map(|(k, s)| {
                (
                    *k,
                    &image.intervals()[s.first as usize..(s.first + s.count) as usize],
                )
            }),
        )
    }

    #[must_use]
    pub fn zone_count(&self) -> usize {
        self.graph.node_count()
    }

    /// The edge `a -> b`, if traffic flows.
    #[must_use]
    pub fn edge(&self, a: ZoneId, b: ZoneId) -> Option<&Edge> {
        self.graph
            .find_edge(NodeIndex::new(a as usize), NodeIndex::new(b as usize))
            .map(|e| &self.graph[e])
    }

    /// Out-neighbours with the lowest rule that opens each hop, sorted by zone.
    #[must_use]
    pub fn out(&self, a: ZoneId) -> Vec<(ZoneId, RuleId)> {
        let mut v: Vec<_> = self
            .graph
            .edges_directed(NodeIndex::new(a as usize), Direction::Outgoing)
            .map(|e| (self.graph[e.target()], e.weight().rules[0]))
            .collect();
        v.sort_unstable();
        v
    }

    /// In-neighbours, sorted.
    #[must_use]
    pub fn into_zone(&self, b: ZoneId) -> Vec<ZoneId> {
        let mut v: Vec<_> = self
            .graph
            .neighbors_directed(NodeIndex::new(b as usize), Direction::Incoming)
            .map(|n| self.graph[n])
            .collect();
        v.sort_unstable();
        v
    }

    /// Every zone reachable from `a` by one or more hops (not `a` itself
    /// unless a cycle leads back), sorted.
    #[must_use]
    pub fn reach(&self, a: ZoneId) -> Vec<ZoneId> {
        let start = NodeIndex::new(a as usize);
        let mut bfs = Bfs::new(&self.graph, start);
        let mut v = Vec::new();
        while let Some(n) = bfs.next(&self.graph) {
            if n != start {
                v.push(self.graph[n]);
            }
        }
        v.sort_unstable();
        v
    }

    /// Every zone from which `b` is reachable by one or more hops, sorted.
    #[must_use]
    pub fn reached_by(&self, b: ZoneId) -> Vec<ZoneId> {
        let rev = petgraph::visit::Reversed(&self.graph);
        let start = NodeIndex::new(b as usize);
        let mut bfs = Bfs::new(rev, start);
        let mut v = Vec::new();
        while let Some(n) = bfs.next(rev) {
            if n != start {
                v.push(self.graph[n]);
            }
        }
        v.sort_unstable();
        v
    }

    /// Proves a requirement.
    #[must_use]
    pub fn prove(&self, req: &Requirement) -> Proof {
        let depth = match req.kind {
            RequireKind::NoFlow => 1,
            RequireKind::NoPath => usize::MAX,
        };
        let adj: Vec<Vec<(ZoneId, RuleId)>> = (0..self.zone_count())
            .map(|z| self.out(u32::try_from(z).expect("zone count fits u32")))
            .collect();
        let by_rules = |u: ZoneId, out: &mut Vec<(ZoneId, Option<RuleId>)>| {
            out.extend(adj[u as usize].iter().map(|&(v, r)| (v, Some(r))));
        };
        if let Some(chain) = shortest_chain(self.zone_count(), &req.from, &req.to, depth, by_rules)
        {
            return Proof::Violated(chain);
        }
        if !self.monitor.iter().any(|&m| m) {
            return Proof::Holds;
        }
        let monitors: Vec<ZoneId> = (0..self.zone_count())
            .filter(|&z| self.monitor[z])
            .map(|z| u32::try_from(z).expect("zone count fits u32"))
            .collect();
        let at_run_time = |u: ZoneId, out: &mut Vec<(ZoneId, Option<RuleId>)>| {
            let rules = &adj[u as usize];
            let rule_to = |v: ZoneId| {
                rules
                    .binary_search_by_key(&v, |e| e.0)
                    .ok()
                    .map(|i| rules[i].1)
            };
            let opens = |v: ZoneId| v != u && !self.denied.contains(&(u, v));
            if self.monitor[u as usize] {
                for v in 0..self.zone_count() {
                    let v = u32::try_from(v).expect("zone count fits u32");
                    if opens(v) {
                        out.push((v, rule_to(v)));
                    }
                }
            } else {
                let mut all: Vec<ZoneId> = rules.iter().map(|e| e.0).collect();
                all.extend(monitors.iter().copied().filter(|&m| opens(m)));
                all.sort_unstable();
                all.dedup();
                out.extend(all.into_iter().map(|v| (v, rule_to(v))));
            }
        };
        match shortest_chain(self.zone_count(), &req.from, &req.to, depth, at_run_time) {
            Some(chain) => Proof::NotEnforced(chain),
            None => Proof::Holds,
        }
    }
}

/// The shortest chain of at most `depth` hops from a zone `a` of `from` to a
/// zone `b != a` of `to`.
///
/// A multi-source BFS in which every node keeps up to two labels with
/// distinct origins: when one label's origin is the target itself, the other
/// still finds a chain from a different source. `O(V + E)`.
fn shortest_chain(
    zones: usize,
    from: &[ZoneId],
    to: &[ZoneId],
    depth: usize,
    neighbours: impl Fn(ZoneId, &mut Vec<(ZoneId, Option<RuleId>)>),
) -> Option<Vec<Hop>> {
    struct State {
        node: ZoneId,
        origin: ZoneId,
        depth: usize,
        parent: Option<(usize, Option<RuleId>)>,
    }
    let mut target = vec![false; zones];
    for &b in to {
        target[b as usize] = true;
    }
    let mut labels: Vec<[Option<ZoneId>; 2]> = vec![[None, None]; zones];
    let mut states: Vec<State> = Vec::new();
    let mut queue = VecDeque::new();
    for &a in from {
        labels[a as usize][0] = Some(a);
        states.push(State {
            node: a,
            origin: a,
            depth: 0,
            parent: None,
        });
        queue.push_back(states.len() - 1);
    }
    let mut nbrs = Vec::new();
    while let Some(i) = queue.pop_front() {
        if states[i].depth >= depth {
            continue;
        }
        let (u, o, d) = (states[i].node, states[i].origin, states[i].depth);
        nbrs.clear();
        neighbours(u, &mut nbrs);
        for &(v, rule) in &nbrs {
            if target[v as usize] && v != o {
                let mut chain = vec![Hop {
                    from: u,
                    to: v,
                    rule,
                }];
                let mut j = i;
                while let Some((p, r)) = states[j].parent {
                    chain.push(Hop {
                        from: states[p].node,
                        to: states[j].node,
                        rule: r,
                    });
                    j = p;
                }
                chain.reverse();
                return Some(chain);
            }
            let l = &mut labels[v as usize];
            if l.contains(&Some(o)) {
                continue;
            }
            let Some(slot) = l.iter_mut().find(|s| s.is_none()) else {
                continue;
            };
            *slot = Some(o);
            states.push(State {
                node: v,
                origin: o,
                depth: d + 1,
                parent: Some((i, rule)),
            });
            queue.push_back(states.len() - 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lower::lower;
    use crate::model::{Action, Origin};
    use crate::testutil::*;

    fn req(kind: RequireKind, from: &[ZoneId], to: &[ZoneId]) -> Requirement {
        Requirement {
            kind,
            from: from.to_vec(),
            to: to.to_vec(),
            text: String::new(),
            origin: Origin::default(),
        }
    }

    fn chain_zones(p: &Proof) -> Vec<(ZoneId, ZoneId)> {
        match p {
            Proof::Holds => vec![],
            Proof::Violated(c) | Proof::NotEnforced(c) => {
                c.iter().map(|h| (h.from, h.to)).collect()
            }
        }
    }

    #[test]
    fn no_path_finds_the_shortest_chain() {
        // a -> b -> c -> d and a -> x -> d: shortest is a, x, d.
        let mut p = policy(&["a", "b", "c", "d", "x"]);
        rule(&mut p, Action::Allow, &[1], &[2], &[tcp(1, 1)]);
        rule(&mut p, Action::Allow, &[2], &[3], &[tcp(1, 1)]);
        rule(&mut p, Action::Allow, &[3], &[4], &[tcp(1, 1)]);
        rule(&mut p, Action::Allow, &[1], &[5], &[tcp(1, 1)]);
        rule(&mut p, Action::Allow, &[5], &[4], &[tcp(1, 1)]);
        p.canonicalize();
        let g = FlowGraph::of_policy(&p, &lower(&p, None).unwrap());
        let proof = g.prove(&req(RequireKind::NoPath, &[1], &[4]));
        assert_eq!(chain_zones(&proof), vec![(1, 5), (5, 4)]);
        assert_eq!(g.prove(&req(RequireKind::NoFlow, &[1], &[4])), Proof::Holds);
        assert_eq!(g.prove(&req(RequireKind::NoPath, &[4], &[1])), Proof::Holds);
    }

    #[test]
    fn a_source_that_is_also_a_target_does_not_hide_other_sources() {
        // from {a, b} to {b}: b -> u, a -> x -> u -> b.
        let mut p = policy(&["a", "b", "u", "x"]);
        rule(&mut p, Action::Allow, &[2], &[3], &[tcp(1, 1)]);
        rule(&mut p, Action::Allow, &[1], &[4], &[tcp(1, 1)]);
        rule(&mut p, Action::Allow, &[4], &[3], &[tcp(1, 1)]);
        rule(&mut p, Action::Allow, &[3], &[2], &[tcp(1, 1)]);
        p.canonicalize();
        let g = FlowGraph::of_policy(&p, &lower(&p, None).unwrap());
        let proof = g.prove(&req(RequireKind::NoPath, &[1, 2], &[2]));
        assert_eq!(chain_zones(&proof), vec![(1, 4), (4, 3), (3, 2)]);
    }

    #[test]
    fn monitor_opens_default_deny_pairs_but_never_what_a_deny_covers() {
        let mut p = policy(&["a", "b"]);
        rule(&mut p, Action::Allow, &[1], &[2], &[tcp(1, 100)]);
        rule(&mut p, Action::Deny, &[1], &[2], &[any()]);
        p.canonicalize();
        let g = FlowGraph::of_policy(&p, &lower(&p, None).unwrap());
        assert_eq!(g.prove(&req(RequireKind::NoFlow, &[1], &[2])), Proof::Holds);
        p.zones[2].monitor = true;
        let g = FlowGraph::of_policy(&p, &lower(&p, None).unwrap());
        assert_eq!(
            g.prove(&req(RequireKind::NoFlow, &[1], &[2])),
            Proof::Holds,
            "a deny of every packet holds in monitor mode too"
        );

        // A deny of tcp only leaves udp to default deny, which monitor opens.
        let mut p = policy(&["a", "b"]);
        rule(&mut p, Action::Deny, &[1], &[2], &[tcp(0, u16::MAX)]);
        p.zones[2].monitor = true;
        p.canonicalize();
        let g = FlowGraph::of_policy(&p, &lower(&p, None).unwrap());
        assert_eq!(
            g.prove(&req(RequireKind::NoFlow, &[1], &[2])),
            Proof::NotEnforced(vec![Hop {
                from: 1,
                to: 2,
                rule: None
            }])
        );
    }
}
