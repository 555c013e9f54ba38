//! The command bus's optional cache of rebuilt aggregates.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use quick_cache::sync::{Cache, EntryAction, EntryResult};

use crate::event::StreamId;

/// How many streams a cache made with [`StateCache::default`] keeps.
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;

/// Aggregates the [`Repository`](crate::Repository) has rebuilt, kept so
/// that the next load of the same stream reads only the events appended
/// since (by this process or any other), and a command's cost does not
/// grow with the aggregate's history.
///
/// One cache holds every aggregate type: entries are keyed by stream
/// (whose id names the aggregate type) and type-erased. It is bounded: it
/// keeps at most about `capacity` streams, evicting the least useful ones
/// (quick_cache's S3-FIFO policy: streams touched once leave first).
///
/// A cached state is never trusted alone. Every load catches it up from
/// the store before it is used, and a command appends expecting the
/// version that catch-up reached, so optimistic concurrency holds exactly
/// as without a cache, also with several processes (each with its own
/// cache) writing to one store. An entry never moves back to an older
/// version.
///
/// Cloning gives another handle to the same cache.
#[derive(Clone)]
pub struct StateCache {
    entries: Arc<Cache<StreamId, Entry>>,
}

/// One cached aggregate: its version (comparable without knowing its
/// type) and the value, an `Arc` of the repository's folded state.
#[derive(Clone)]
struct Entry {
    version: u64,
    value: Arc<dyn Any + Send + Sync>,
}

impl StateCache {
    /// A cache of at most about `capacity` streams.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Arc::new(Cache::new(capacity.max(1))),
        }
    }

    /// How many streams it holds now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forgets every stream.
    pub fn clear(&self) {
        self.entries.clear();
    }

    /// Forgets one stream.
    pub fn forget(&self, stream_id: &StreamId) {
        self.entries.remove(stream_id);
    }

    /// The value kept for a stream, if it is a `T`.
    pub(crate) fn get<T: Any + Send + Sync>(&self, stream_id: &StreamId) -> Option<Arc<T>> {
        let entry = self.entries.get(stream_id)?;
        entry.value.downcast::<T>().ok()
    }

    /// Keeps `value` as the stream's state at `version`, unless the cache
    /// already holds a newer one.
    pub(crate) fn put<T: Any + Send + Sync>(
        &self,
        stream_id: &StreamId,
        version: u64,
        value: Arc<T>,
    ) {
        let mut fresh = Some(Entry { version, value });
        let result = self.entries.entry(stream_id, None, |_, current| {
            if let Some(entry) = fresh.take_if(|entry| entry.version > current.version) {
                *current = entry;
            }
            EntryAction::Retain(())
        });
        if let EntryResult::Vacant(guard) = result
            && let Some(entry) = fresh
        {
            // Nothing to do if another writer filled the slot meanwhile.
            let _ = guard.insert(entry);
        }
    }
}

impl Default for StateCache {
    fn default() -> Self {
        Self::new(DEFAULT_CACHE_CAPACITY)
    }
}

impl fmt::Debug for StateCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateCache")
            .field("len", &self.entries.len())
            .field("capacity", &self.entries.capacity())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TenantId;
    use uuid::Uuid;

    fn stream() -> StreamId {
        StreamId::new(TenantId::from_uuid(Uuid::now_v7()), "thing", Uuid::now_v7())
    }

    #[test]
    fn entries_only_move_forward_and_keep_their_type() {
        let cache = StateCache::new(10);
        let s = stream();
        assert!(cache.get::<String>(&s).is_none());
        cache.put(&s, 3, Arc::new("three".to_owned()));
        cache.put(&s, 2, Arc::new("two".to_owned()));
        assert_eq!(
            cache.get::<String>(&s).as_deref().map(String::as_str),
            Some("three")
        );
        cache.put(&s, 5, Arc::new("five".to_owned()));
        assert_eq!(
            cache.get::<String>(&s).as_deref().map(String::as_str),
            Some("five")
        );
        assert!(cache.get::<u64>(&s).is_none(), "another type is a miss");
        cache.forget(&s);
        assert!(cache.is_empty());
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = StateCache::new(50);
        for i in 0..1_000_u64 {
            cache.put(&stream(), i, Arc::new(i));
        }
        assert!(cache.len() <= 60, "{} entries kept", cache.len());
        cache.clear();
        assert_eq!(cache.len(), 0);
    }
}
