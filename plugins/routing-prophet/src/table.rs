//! The delivery predictability table of one node, A: P(A,X) for every node
//! X it knows, with RFC 6693's three update rules (§2.1.2):
//!
//! * **Encounter** (Eq. 1), when A meets B:
//!   `P(A,B) = P(A,B)_old + (1 − δ − P(A,B)_old) × P_encounter`,
//!   where `P_encounter = P_encounter_max × interval / I_typ` if the
//!   previous encounter with B was `interval < I_typ` ago, else
//!   `P_encounter_max`. When B is not in the table (never met, or aged below
//!   `P_first_threshold` and dropped), `P(A,B) = P_encounter_first`.
//! * **Ageing** (Eq. 2): `P(A,X) = P(A,X)_old × γ^K`, K the number of whole
//!   time units since the table was last aged. The remainder is carried, so
//!   ageing often or seldom gives the same result.
//! * **Transitivity** (Eq. 3), with B's vector:
//!   `P(A,C) = max(P(A,C)_old, P(A,B) × P(B,C) × β)`.
//!
//! Entries below `P_first_threshold` are dropped, and at most `max_entries`
//! are kept (the smallest go first, except those the caller protects: the
//! neighbours in contact). Sans-IO: every call that needs the time takes it.

use std::collections::HashMap;

use crate::config::Config;
use crate::node_id::NodeId;

#[derive(Clone, Copy, Debug, PartialEq)]
struct Entry {
    p: f64,
    /// When A last met this node; `None` if it is only known transitively.
    met_ms: Option<u64>,
}

/// P(A,·) for this node A.
#[derive(Clone, Debug)]
pub struct Table {
    config: Config,
    entries: HashMap<NodeId, Entry>,
    /// The table is aged up to this time.
    aged_ms: u64,
}

impl Table {
    pub fn new(config: Config, now_ms: u64) -> Table {
        Table { config, entries: HashMap::new(), aged_ms: now_ms }
    }

    /// P(A,node), 0 if unknown. Age the table first for the current value.
    pub fn get(&self, node: &NodeId) -> f64 {
        self.entries.get(node).map_or(0.0, |e| e.p)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Eq. 2: ages every entry by the whole time units since the last call
    /// and drops those that fall below `P_first_threshold`.
    pub fn age(&mut self, now_ms: u64) {
        if now_ms < self.aged_ms {
            // The host's clock is monotonic; if it ever is not, restart the
            // unit rather than age by a wrapped-around interval.
            self.aged_ms = now_ms;
            return;
        }
        let k = (now_ms - self.aged_ms) / self.config.time_unit_ms;
        if k == 0 {
            return;
        }
        self.aged_ms += k * self.config.time_unit_ms;
        // k can be huge after a long sleep: powf, not powi(k as i32).
        let factor = self.config.gamma.powf(k as f64);
        let threshold = self.config.p_first_threshold;
        self.entries.retain(|_, e| {
            e.p *= factor;
            e.p >= threshold
        });
    }

    /// Eq. 1: A meets `b` at `now_ms`. Age the table first.
    pub fn encounter(&mut self, b: NodeId, now_ms: u64) {
        let c = &self.config;
        match self.entries.get_mut(&b) {
            Some(e) => {
                let p_encounter = match e.met_ms {
                    Some(t) if now_ms.saturating_sub(t) < c.i_typ_ms => {
                        c.p_encounter_max * (now_ms.saturating_sub(t) as f64 / c.i_typ_ms as f64)
                    }
                    _ => c.p_encounter_max,
                };
                e.p = (e.p + (1.0 - c.delta - e.p) * p_encounter).clamp(0.0, 1.0);
                e.met_ms = Some(now_ms);
            }
            None => {
                self.entries.insert(b, Entry { p: c.p_encounter_first, met_ms: Some(now_ms) });
            }
        }
    }

    /// Eq. 3: B's vector `(C, P(B,C))` arrives. `skip` is A itself (a
    /// neighbour's opinion of how well it reaches us is no route). Does
    /// nothing if A does not know B. Age the table first.
    pub fn transitive(
        &mut self,
        b: NodeId,
        vector: impl IntoIterator<Item = (NodeId, f64)>,
        skip: Option<NodeId>,
    ) {
        let p_ab = self.get(&b);
        if p_ab <= 0.0 {
            return;
        }
        let (beta, threshold) = (self.config.beta, self.config.p_first_threshold);
        for (c, p_bc) in vector {
            if c == b || Some(c) == skip {
                continue;
            }
            let p = p_ab * p_bc.clamp(0.0, 1.0) * beta;
            match self.entries.get_mut(&c) {
                Some(e) => e.p = e.p.max(p),
                None if p >= threshold => {
                    self.entries.insert(c, Entry { p, met_ms: None });
                }
                None => {}
            }
        }
    }

    /// Drops the smallest entries beyond `max_entries`, never one for which
    /// `protect` is true.
    pub fn enforce_cap(&mut self, protect: impl Fn(&NodeId) -> bool) {
        let max = self.config.max_entries as usize;
        if self.entries.len() <= max {
            return;
        }
        let mut victims: Vec<(f64, NodeId)> =
            self.entries.iter().filter(|(n, _)| !protect(n)).map(|(n, e)| (e.p, *n)).collect();
        let excess = (self.entries.len() - max).min(victims.len());
        // Smallest first; ties broken by node so the outcome is deterministic.
        victims.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for (_, n) in &victims[..excess] {
            self.entries.remove(n);
        }
    }

    /// Every entry, highest predictability first (ties by node), as a
    /// neighbour should read them: the most useful first if the vector is
    /// split over several messages.
    pub fn sorted(&self) -> Vec<(NodeId, f64)> {
        let mut v: Vec<(NodeId, f64)> = self.entries.iter().map(|(n, e)| (*n, e.p)).collect();
        v.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNIT: u64 = 30_000;
    const I_TYP: u64 = 300_000;

    fn n(b: u8) -> NodeId {
        NodeId([b; 32])
    }

    fn table() -> Table {
        Table::new(Config::default(), 0)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn encounters_follow_equation_1() {
        let mut t = table();
        // First encounter: P_encounter_first.
        t.encounter(n(2), 0);
        assert_eq!(t.get(&n(2)), 0.5);
        // Again after ≥ I_typ: P_encounter = 0.7.
        // 0.5 + (1 − 0.01 − 0.5) × 0.7 = 0.5 + 0.49 × 0.7 = 0.843
        t.encounter(n(2), I_TYP);
        assert!(close(t.get(&n(2)), 0.843), "{}", t.get(&n(2)));
        // Again after I_typ / 4: P_encounter = 0.7 × 0.25 = 0.175.
        // 0.843 + (0.99 − 0.843) × 0.175 = 0.843 + 0.147 × 0.175 = 0.868725
        t.encounter(n(2), I_TYP + I_TYP / 4);
        assert!(close(t.get(&n(2)), 0.868725), "{}", t.get(&n(2)));
        // At once again: interval 0, P_encounter 0, no change.
        t.encounter(n(2), I_TYP + I_TYP / 4);
        assert!(close(t.get(&n(2)), 0.868725));
        // Many encounters approach 1 − δ and never pass it.
        for i in 2..200 {
            t.encounter(n(2), i * I_TYP);
        }
        assert!(t.get(&n(2)) <= 0.99 && t.get(&n(2)) > 0.9899, "{}", t.get(&n(2)));
    }

    #[test]
    fn a_node_known_only_transitively_meets_with_full_p_encounter() {
        let mut t = table();
        t.encounter(n(2), 0);
        t.transitive(n(2), [(n(3), 0.8)], None);
        // 0.5 × 0.8 × 0.9 = 0.36
        assert!(close(t.get(&n(3)), 0.36));
        t.encounter(n(3), 1);
        // No previous encounter: P_encounter_max. 0.36 + (0.99 − 0.36) × 0.7 = 0.801
        assert!(close(t.get(&n(3)), 0.801), "{}", t.get(&n(3)));
    }

    #[test]
    fn ageing_follows_equation_2_in_whole_units() {
        let mut t = table();
        t.encounter(n(2), 0);
        t.encounter(n(2), I_TYP); // 0.843, as above
        t.age(I_TYP); // 10 units since the start: 0.843 × 0.999^10
        // 0.999^10 = 0.990044880209748..., × 0.843 = 0.834607834016818...
        assert!(close(t.get(&n(2)), 0.834_607_834_016_818), "{}", t.get(&n(2)));
        // Less than a unit: nothing; the remainder is carried.
        t.age(I_TYP + UNIT - 1);
        assert!(close(t.get(&n(2)), 0.834_607_834_016_818));
        t.age(I_TYP + UNIT);
        assert!(close(t.get(&n(2)), 0.834_607_834_016_818 * 0.999));
        // Ageing in many small steps equals ageing in one.
        let mut once = table();
        let mut often = table();
        once.encounter(n(2), 0);
        often.encounter(n(2), 0);
        for now in (0..=100 * UNIT).step_by(7_777) {
            often.age(now);
        }
        often.age(100 * UNIT);
        once.age(100 * UNIT);
        assert!(close(once.get(&n(2)), often.get(&n(2))));
        assert!(close(once.get(&n(2)), 0.5 * 0.999f64.powi(100)));
    }

    #[test]
    fn aged_below_the_threshold_is_forgotten_and_met_again_as_first() {
        let mut t = table();
        t.encounter(n(2), 0);
        // 0.5 × 0.999^K < 0.1 ⇔ K > ln(0.2) / ln(0.999) = 1608.6: K = 1609.
        t.age(1608 * UNIT);
        assert!(t.get(&n(2)) >= 0.1);
        t.age(1609 * UNIT);
        assert_eq!(t.get(&n(2)), 0.0);
        assert!(t.is_empty());
        t.encounter(n(2), 1609 * UNIT + 1);
        assert_eq!(t.get(&n(2)), 0.5);
    }

    #[test]
    fn transitivity_follows_equation_3() {
        let mut t = table();
        t.encounter(n(2), 0); // P(A,B) = 0.5
        t.transitive(n(2), [(n(3), 0.8), (n(4), 0.2), (n(5), 0.1), (n(1), 0.9), (n(2), 0.99)], Some(n(1)));
        assert!(close(t.get(&n(3)), 0.36)); // 0.5 × 0.8 × 0.9
        // 0.5 × 0.2 × 0.9 = 0.09 < P_first_threshold: not added.
        assert_eq!(t.get(&n(4)), 0.0);
        assert_eq!(t.get(&n(5)), 0.0);
        // Ourselves and the sender are skipped.
        assert_eq!(t.get(&n(1)), 0.0);
        assert_eq!(t.get(&n(2)), 0.5);
        // max(): a better direct value stays, a worse one is raised.
        t.encounter(n(6), 0); // 0.5
        t.transitive(n(2), [(n(3), 0.9), (n(6), 0.5)], None);
        assert!(close(t.get(&n(3)), 0.405)); // 0.5 × 0.9 × 0.9 > 0.36
        assert_eq!(t.get(&n(6)), 0.5); // 0.225 < 0.5
        // A vector from a node we do not know does nothing.
        t.transitive(n(9), [(n(10), 1.0)], None);
        assert_eq!(t.get(&n(10)), 0.0);
    }

    #[test]
    fn the_cap_drops_the_smallest_unprotected_entries() {
        let config = Config { max_entries: 3, ..Config::default() };
        let mut t = Table::new(config, 0);
        t.encounter(n(1), 0); // 0.5
        t.transitive(n(1), [(n(2), 0.9), (n(3), 0.5), (n(4), 0.3), (n(5), 0.7)], None);
        // 0.405, 0.225, 0.135, 0.315
        assert_eq!(t.len(), 5);
        t.enforce_cap(|node| *node == n(4));
        assert_eq!(t.len(), 3);
        let kept: Vec<NodeId> = t.sorted().into_iter().map(|(n, _)| n).collect();
        assert_eq!(kept, [n(1), n(2), n(4)]);
        // Everything protected: nothing to drop.
        t.transitive(n(1), [(n(6), 0.9)], None);
        t.enforce_cap(|_| true);
        assert_eq!(t.len(), 4);
    }
}
