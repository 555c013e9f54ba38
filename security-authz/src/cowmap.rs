//! A hash map split into shards that are shared between snapshots and
//! copied on write.
//!
//! Hand-written rather than taken from a persistent-map crate (`imbl`,
//! `rpds`): those are HAMTs whose lookups chase several pointers, and a
//! lookup is on the path of every authorization check. Here a lookup is one
//! shard pick plus one `HashMap` probe, cloning a map copies 64 `Arc`s, and
//! a write copies only the shard it touches, and only while a published
//! snapshot still shares it (`Arc::make_mut`).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

const SHARDS: usize = 64;

type Shard<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// A sharded copy-on-write hash map.
#[derive(Debug)]
pub(crate) struct CowMap<K, V> {
    hasher: foldhash::fast::FixedState,
    shards: Box<[Arc<Shard<K, V>>]>,
}

impl<K, V> Clone for CowMap<K, V> {
    fn clone(&self) -> Self {
        Self {
            hasher: self.hasher.clone(),
            shards: self.shards.clone(),
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Default for CowMap<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Hash + Eq + Clone, V: Clone> CowMap<K, V> {
    pub(crate) fn new() -> Self {
        // Fixed seeds: the keys (UUIDs) are not chosen by an attacker that
        // could aim at one shard, and a fixed seed keeps shards stable.
        let hasher = foldhash::fast::FixedState::with_seed(0x5ec0_a07d);
        let shards = (0..SHARDS)
            .map(|_| Arc::new(Shard::with_hasher(hasher.clone())))
            .collect();
        Self { hasher, shards }
    }

    fn shard_of(&self, key: &K) -> usize {
        // The high bits pick the shard; the shard's map uses the low ones.
        (self.hasher.hash_one(key) >> 58) as usize % SHARDS
    }

    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.shards.get(self.shard_of(key))?.get(key)
    }

    pub(crate) fn insert(&mut self, key: K, value: V) {
        let i = self.shard_of(&key);
        if let Some(shard) = self.shards.get_mut(i) {
            Arc::make_mut(shard).insert(key, value);
        }
    }

    pub(crate) fn remove(&mut self, key: &K) {
        let i = self.shard_of(key);
        if let Some(shard) = self.shards.get_mut(i)
            && shard.contains_key(key)
        {
            Arc::make_mut(shard).remove(key);
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.len()).sum()
    }

    #[cfg(test)]
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.shards.iter().flat_map(|s| s.values())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_until_written() {
        let mut a: CowMap<u64, u64> = CowMap::new();
        for i in 0..1000 {
            a.insert(i, i * 2);
        }
        let snapshot = a.clone();
        a.insert(7, 0);
        a.remove(&8);
        a.remove(&5000);
        assert_eq!(snapshot.get(&7), Some(&14));
        assert_eq!(snapshot.get(&8), Some(&16));
        assert_eq!(a.get(&7), Some(&0));
        assert_eq!(a.get(&8), None);
        assert_eq!(a.len(), 999);
        assert_eq!(snapshot.len(), 1000);
        let shared = a
            .shards
            .iter()
            .zip(snapshot.shards.iter())
            .filter(|(x, y)| Arc::ptr_eq(x, y))
            .count();
        assert!(
            shared >= SHARDS - 2,
            "only the written shards are copied: {shared}"
        );
        assert_eq!(snapshot.values().count(), 1000);
    }
}
