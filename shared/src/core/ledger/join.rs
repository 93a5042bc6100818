//! The joins that make the fold order-independent: a last-writer-wins register under a rank
//! taken from the event itself, and min / max for instants that only ever get known.

use std::hash::{DefaultHasher, Hash, Hasher};

use crate::core::facts::{Fact, Millis};

/// Orders observations of the same job or task. See the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct Rank {
    pub(super) major: u64,
    pub(super) observed_at: i64,
    pub(super) id_hash: u64,
}

impl Rank {
    pub(super) fn new(major: u64, fact: &Fact) -> Self {
        // DefaultHasher::new() has fixed keys: the same id hashes the same within a build,
        // which is all the in-memory fold needs (ranks are never persisted).
        let mut hasher = DefaultHasher::new();
        fact.event_id.hash(&mut hasher);
        Self {
            major,
            observed_at: fact.observed_at.map_or(i64::MIN, |m| m.0),
            id_hash: hasher.finish(),
        }
    }
}

/// A last-writer-wins register: the value offered with the greatest (rank, value) is kept.
#[derive(Clone, Debug)]
pub(super) struct Lww<T> {
    pub(super) slot: Option<(Rank, T)>,
}

impl<T> Default for Lww<T> {
    fn default() -> Self {
        Self { slot: None }
    }
}

impl<T: Ord> Lww<T> {
    pub(super) fn offer(&mut self, rank: Rank, value: Option<T>) {
        let Some(value) = value else { return };
        let keep =
            matches!(&self.slot, Some((held_rank, held)) if (held_rank, held) >= (&rank, &value));
        if !keep {
            self.slot = Some((rank, value));
        }
    }

    /// As [`Lww::offer`], cloning the value only when it wins.
    pub(super) fn offer_ref(&mut self, rank: Rank, value: Option<&T>)
    where
        T: Clone,
    {
        let Some(value) = value else { return };
        let keep =
            matches!(&self.slot, Some((held_rank, held)) if (held_rank, held) >= (&rank, value));
        if !keep {
            self.slot = Some((rank, value.clone()));
        }
    }

    /// As [`Lww::offer`], building the value only when its rank does not already lose.
    pub(super) fn offer_with(&mut self, rank: Rank, make: impl FnOnce() -> T) {
        if matches!(&self.slot, Some((held_rank, _)) if *held_rank > rank) {
            return;
        }
        self.offer(rank, Some(make()));
    }

    pub(super) fn get(&self) -> Option<&T> {
        self.slot.as_ref().map(|(_, value)| value)
    }
}

/// Joins for instants that only ever get known: the earliest start, the latest stop.
pub(crate) fn join_min(slot: &mut Option<Millis>, value: Option<Millis>) {
    if let Some(value) = value {
        *slot = Some(slot.map_or(value, |held| held.min(value)));
    }
}

pub(crate) fn join_max(slot: &mut Option<Millis>, value: Option<Millis>) {
    if let Some(value) = value {
        *slot = Some(slot.map_or(value, |held| held.max(value)));
    }
}

/// The value under `key` in a vector of pairs sorted by key, inserted as default if absent.
pub(super) fn sorted_entry<V: Default>(pairs: &mut Vec<(u32, V)>, key: u32) -> &mut V {
    let position = match pairs.binary_search_by_key(&key, |(k, _)| *k) {
        Ok(position) => position,
        Err(position) => {
            pairs.insert(position, (key, V::default()));
            position
        }
    };
    &mut pairs[position].1
}
