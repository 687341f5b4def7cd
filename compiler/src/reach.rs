//! Transitive reachability for every zone at once, without a zones-squared
//! list of names.
//!
//! Zones of one strongly connected component reach the same zones, so the
//! flow graph is condensed (Tarjan) and each component keeps one bitset of
//! the zones it reaches, built from its successors' bitsets in reverse
//! topological order. Memory is `components x zones` bits (50 MB at 20,000
//! zones in the worst case, a DAG; far less when zones form cycles), time
//! `O(edges x zones / 64)`. The same is done on the reversed graph for
//! "reached by".

use fixedbitset::FixedBitSet;
use petgraph::Direction;
use petgraph::algo::tarjan_scc;
use petgraph::visit::{EdgeRef, Reversed};

use crate::graph::FlowGraph;
use crate::model::ZoneId;

/// Reachability of one direction (forward or reversed).
#[derive(Clone, Debug)]
struct Closure {
    /// Per zone: its component.
    component: Vec<u32>,
    /// Per component: every zone reachable by one or more hops.
    reach: Vec<FixedBitSet>,
}

impl Closure {
    fn new(graph: &FlowGraph, dir: Direction) -> Self {
        let n = graph.zone_count();
        let g = &graph.graph;
        // Tarjan yields components in reverse topological order: every
        // successor's component comes before its predecessors'.
        let sccs = match dir {
            Direction::Outgoing => tarjan_scc(g),
            Direction::Incoming => tarjan_scc(Reversed(g)),
        };
        let mut component = vec![0u32; n];
        for (c, members) in sccs.iter().enumerate() {
            for m in members {
                component[m.index()] = u32::try_from(c).expect("component count fits u32");
            }
        }
        let mut reach: Vec<FixedBitSet> = Vec::with_capacity(sccs.len());
        for (c, members) in sccs.iter().enumerate() {
            let mut bits = FixedBitSet::with_capacity(n);
            if members.len() > 1 {
                // A cycle: every member reaches every member.
                for m in members {
                    bits.insert(m.index());
                }
            }
            for m in members {
                for e in g.edges_directed(*m, dir) {
                    let next = match dir {
                        Direction::Outgoing => e.target(),
                        Direction::Incoming => e.source(),
                    };
                    let d = component[next.index()] as usize;
                    if d != c {
                        bits.insert(next.index());
                        bits.union_with(&reach[d]);
                    }
                }
            }
            reach.push(bits);
        }
        Self { component, reach }
    }

    fn set(&self, z: ZoneId) -> &FixedBitSet {
        &self.reach[self.component[z as usize] as usize]
    }

    /// Zones reachable from `z`, not counting `z` itself.
    fn count(&self, z: ZoneId) -> usize {
        let s = self.set(z);
        s.count_ones(..) - usize::from(s.contains(z as usize))
    }

    fn list(&self, z: ZoneId) -> Vec<ZoneId> {
        self.set(z)
            .ones()
            .filter(|&i| i != z as usize)
            .map(|i| ZoneId::try_from(i).expect("zone count fits u32"))
            .collect()
    }
}

/// Forward and backward reachability of every zone.
#[derive(Clone, Debug)]
pub struct Reach {
    forward: Closure,
    backward: Closure,
}

impl Reach {
    #[must_use]
    pub fn new(graph: &FlowGraph) -> Self {
        Self {
            forward: Closure::new(graph, Direction::Outgoing),
            backward: Closure::new(graph, Direction::Incoming),
        }
    }

    /// How many zones `z` reaches by one or more hops (its blast radius).
    #[must_use]
    pub fn reach_count(&self, z: ZoneId) -> usize {
        self.forward.count(z)
    }

    /// How many zones reach `z` by one or more hops.
    #[must_use]
    pub fn reached_by_count(&self, z: ZoneId) -> usize {
        self.backward.count(z)
    }

    /// The zones `z` reaches by one or more hops, sorted (as [`FlowGraph::reach`]).
    #[must_use]
    pub fn reach(&self, z: ZoneId) -> Vec<ZoneId> {
        self.forward.list(z)
    }

    /// The zones that reach `z` by one or more hops, sorted (as
    /// [`FlowGraph::reached_by`]).
    #[must_use]
    pub fn reached_by(&self, z: ZoneId) -> Vec<ZoneId> {
        self.backward.list(z)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lower::lower;
    use crate::model::Action;
    use crate::testutil::*;

    #[test]
    fn agrees_with_a_breadth_first_search_from_every_zone() {
        // A cycle (1, 2, 3) feeding a chain 4 -> 5, a diamond 6 -> {7, 8} -> 9,
        // and an edge into the cycle from 9.
        let mut p = policy(&["a", "b", "c", "d", "e", "f", "g", "h", "i"]);
        for (s, d) in [
            (1, 2),
            (2, 3),
            (3, 1),
            (3, 4),
            (4, 5),
            (6, 7),
            (6, 8),
            (7, 9),
            (8, 9),
            (9, 1),
        ] {
            rule(&mut p, Action::Allow, &[s], &[d], &[tcp(1, 1)]);
        }
        p.canonicalize();
        let g = FlowGraph::of_policy(&p, &lower(&p, None).unwrap());
        let r = Reach::new(&g);
        for z in 0..u32::try_from(g.zone_count()).unwrap() {
            assert_eq!(r.reach(z), g.reach(z), "reach of {z}");
            assert_eq!(r.reached_by(z), g.reached_by(z), "reached by of {z}");
            assert_eq!(r.reach_count(z), g.reach(z).len());
            assert_eq!(r.reached_by_count(z), g.reached_by(z).len());
        }
        assert_eq!(
            r.reach_count(6),
            8,
            "f reaches everything but world and itself"
        );
    }
}
