//! Dataset B: location id -> name, swapped whole while batches run.

use std::sync::{Arc, RwLock};

use hashbrown::HashMap;
use rustc_hash::FxBuildHasher;

#[derive(Default)]
pub struct Locations {
    names: HashMap<i64, Box<str>, FxBuildHasher>,
}

impl Locations {
    pub fn new(entries: impl IntoIterator<Item = (i64, String)>) -> Self {
        Locations { names: entries.into_iter().map(|(oid, name)| (oid, name.into_boxed_str())).collect() }
    }
    pub fn get(&self, oid: i64) -> Option<&str> {
        self.names.get(&oid).map(AsRef::as_ref)
    }
    pub fn len(&self) -> usize {
        self.names.len()
    }
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// The current table; a batch takes a snapshot at its start and keeps it to its end, so a reload
/// never splits a batch between two versions.
#[derive(Default)]
pub struct LocationTable {
    current: RwLock<Arc<Locations>>,
}

impl LocationTable {
    pub fn snapshot(&self) -> Arc<Locations> {
        Arc::clone(&self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
    pub fn replace(&self, locations: Locations) {
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(locations);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_survives_a_replace() {
        let table = LocationTable::default();
        table.replace(Locations::new([(1, "Old Town".to_string())]));
        let before = table.snapshot();
        table.replace(Locations::new([(2, "Harbour".to_string())]));
        assert_eq!(before.get(1), Some("Old Town"));
        assert_eq!(table.snapshot().get(1), None);
        assert_eq!(table.snapshot().get(2), Some("Harbour"));
    }
}
