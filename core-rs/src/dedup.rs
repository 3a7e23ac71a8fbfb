//! The expiring seen-set of `detection_oid`s.
//!
//! Expiry follows *arrival* time (the ingest clock), not event time: duplicates come from
//! upstream retries, which are close together in arrival whatever the camera's clock said, and
//! a camera with a wrong clock or a replay of old data must neither evict fresh ids nor pin
//! stale ones. An id is kept for at least the horizon and at most the horizon plus one
//! generation span: ids live in a few time-sliced generations (open-addressing sets of `u64`,
//! about 9 bytes a slot, whose one-byte control words keep lookups of new ids mostly in cache,
//! hashed so that runs of nearby ids stay together) and a whole generation is dropped once its
//! newest id is older than the horizon, so expiry costs nothing per id.

use std::hash::{BuildHasherDefault, Hasher};

use hashbrown::HashSet;

type IdSet = HashSet<u64, BuildHasherDefault<IdHasher>>;

/// The ids of one aligned run of 2^RUN_BITS share a block of buckets (one control group): ids
/// that arrive together are mostly close together (a counter per edge agent), so their lookups
/// and inserts share cache lines and pages instead of each missing on its own. Scattered ids
/// cost about what they did with a plain hash; 16 measured better than 8 or 4 end to end.
const RUN_BITS: u32 = 4;

/// Places the ids of one aligned run in consecutive buckets at a position mixed from the run
/// number, and takes the 7-bit tag hashbrown filters with from the whole id, so that ids sharing
/// a run still differ in their tags.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    #[inline]
    fn write_u64(&mut self, id: u64) {
        const TAG: u64 = 0xfe00_0000_0000_0000;
        let run = (id >> RUN_BITS).wrapping_mul(0xf135_7aea_2e62_a9c5).rotate_left(26);
        let tag = id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = (tag & TAG) | ((run << RUN_BITS) & !TAG) | (id & ((1 << RUN_BITS) - 1));
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` ids are hashed; anything else still gets a defined hash.
        for &b in bytes {
            self.write_u64(self.0.rotate_left(8) ^ u64::from(b));
        }
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Generations per horizon: more means tighter expiry but more sets to probe per lookup.
const GENERATIONS_PER_HORIZON: i64 = 4;

struct Generation {
    start_ms: i64,
    ids: IdSet,
}

/// Ids seen (committed) within the horizon.
pub struct SeenSet {
    horizon_ms: i64,
    span_ms: i64,
    /// Sorted by `start_ms`, oldest first.
    generations: Vec<Generation>,
}

impl SeenSet {
    pub fn new(horizon_ms: i64) -> Self {
        let horizon_ms = horizon_ms.max(1);
        let span_ms = (horizon_ms / GENERATIONS_PER_HORIZON).max(1);
        SeenSet { horizon_ms, span_ms, generations: Vec::new() }
    }

    pub fn horizon_ms(&self) -> i64 {
        self.horizon_ms
    }

    pub fn contains(&self, id: u64) -> bool {
        self.generations.iter().rev().any(|g| g.ids.contains(&id))
    }

    /// Records `id` in generation `slot` (from `slot`); returns false if that generation held it.
    /// Callers check `contains` first for the other generations.
    pub fn insert(&mut self, id: u64, slot: usize) -> bool {
        self.generations[slot].ids.insert(id)
    }

    /// The index of the generation for ids arriving at `at_ms` (created if need be), valid
    /// until the next call that adds or drops a generation; `None` if it has expired at `now_ms`.
    pub fn slot(&mut self, at_ms: i64, now_ms: i64) -> Option<usize> {
        let start_ms = at_ms - at_ms.rem_euclid(self.span_ms);
        if !self.alive(start_ms, now_ms) {
            return None;
        }
        Some(match self.generations.binary_search_by_key(&start_ms, |g| g.start_ms) {
            Ok(index) => index,
            Err(index) => {
                // A new newest generation will likely hold about as many ids as the one before
                // it; sizing it so up front saves rehashing a large table while batches wait.
                let expected = match self.generations.last() {
                    Some(newest) if index == self.generations.len() => newest.ids.len(),
                    _ => 0,
                };
                let ids = IdSet::with_capacity_and_hasher(expected, BuildHasherDefault::default());
                self.generations.insert(index, Generation { start_ms, ids });
                index
            }
        })
    }

    /// Forgets `id` recorded at `at_ms` (a batch that was not committed).
    pub fn remove(&mut self, id: u64, at_ms: i64) {
        let start_ms = at_ms - at_ms.rem_euclid(self.span_ms);
        if let Ok(index) = self.generations.binary_search_by_key(&start_ms, |g| g.start_ms) {
            self.generations[index].ids.remove(&id);
        }
    }

    /// The generation that holds ids arriving at `at_ms`, unless it has expired at `now_ms`.
    fn generation(&mut self, at_ms: i64, now_ms: i64) -> Option<&mut IdSet> {
        let index = self.slot(at_ms, now_ms)?;
        Some(&mut self.generations[index].ids)
    }

    /// Records `id` as seen at `at_ms`; skipped if its generation has already expired at `now_ms`.
    pub fn insert_at(&mut self, id: u64, at_ms: i64, now_ms: i64) {
        if let Some(ids) = self.generation(at_ms, now_ms) {
            ids.insert(id);
        }
    }

    /// A generation lives until its newest possible id is older than the horizon.
    fn alive(&self, start_ms: i64, now_ms: i64) -> bool {
        start_ms.saturating_add(self.span_ms).saturating_add(self.horizon_ms) > now_ms
    }

    /// Drops every generation that is no longer alive at `now_ms`.
    pub fn expire(&mut self, now_ms: i64) {
        let (horizon, span) = (self.horizon_ms, self.span_ms);
        self.generations.retain(|g| g.start_ms.saturating_add(span).saturating_add(horizon) > now_ms);
    }

    pub fn len(&self) -> usize {
        self.generations.iter().map(|g| g.ids.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes held by the sets.
    pub fn allocated_bytes(&self) -> usize {
        self.generations.iter().map(|g| g.ids.allocation_size()).sum::<usize>()
            + self.generations.capacity() * std::mem::size_of::<Generation>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_ids_for_at_least_the_horizon() {
        let mut seen = SeenSet::new(1000);
        seen.insert_at(1, 10, 10);
        for now in [10, 500, 1010] {
            seen.expire(now);
            assert!(seen.contains(1), "expired too early at {now}");
        }
        seen.expire(1010 + 250);
        assert!(!seen.contains(1), "kept longer than horizon + span");
        assert!(seen.is_empty());
    }

    #[test]
    fn old_arrivals_go_into_their_own_generation() {
        let mut seen = SeenSet::new(1000);
        seen.insert_at(1, 900, 900);
        seen.insert_at(2, 100, 900);
        seen.insert_at(3, 500, 900);
        assert_eq!(seen.generations.iter().map(|g| g.start_ms).collect::<Vec<_>>(), vec![0, 500, 750]);
        seen.expire(1300);
        assert!(!seen.contains(2));
        assert!(seen.contains(3));
        assert!(seen.contains(1));
    }

    #[test]
    fn skips_ids_already_past_the_horizon() {
        let mut seen = SeenSet::new(1000);
        seen.insert_at(1, 0, 5000);
        assert!(seen.is_empty());
    }

    #[test]
    fn insert_new_and_remove() {
        let mut seen = SeenSet::new(1000);
        let slot = seen.slot(100, 100).unwrap();
        assert!(seen.insert(7, slot));
        assert!(!seen.insert(7, slot));
        seen.remove(7, 100);
        assert!(!seen.contains(7));
        assert_eq!(seen.slot(0, 5000), None);
    }

    #[test]
    fn a_new_generation_is_sized_like_the_last() {
        let mut seen = SeenSet::new(1000);
        for id in 1..=1000 {
            seen.insert_at(id, 0, 0);
        }
        let slot = seen.slot(300, 300).unwrap();
        assert!(seen.generations[slot].ids.allocation_size() >= 1000 * 8);
    }

    #[test]
    fn memory_per_id_is_within_budget() {
        let mut seen = SeenSet::new(3_600_000);
        let n = 1_000_000u64;
        for id in 1..=n {
            seen.insert_at(id.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1, 0, 0);
        }
        assert!(seen.allocated_bytes() <= 24 * seen.len(), "{} bytes for {} ids", seen.allocated_bytes(), seen.len());
    }
}
