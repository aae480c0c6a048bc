//! Test doubles for code that takes a `Store`: an in-memory store with the same semantics as
//! `FileStore` (key validation, re-entrant lock) but no durability.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::reentrant::ReentrantLock;
use crate::store::{validate_key, validate_prefix, Store, StoreError, StoreLock};

/// An in-memory `Store` for unit tests (this crate's and its users').
#[derive(Default)]
pub struct MemStore {
    data: Mutex<BTreeMap<String, Vec<u8>>>,
    lock: Arc<ReentrantLock>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every key and value, for assertions.
    pub fn dump(&self) -> BTreeMap<String, Vec<u8>> {
        self.data().clone()
    }

    fn data(&self) -> MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct MemLockGuard(Arc<ReentrantLock>);

impl Drop for MemLockGuard {
    fn drop(&mut self) {
        self.0.release(|| {});
    }
}

/// The part of `key` after `prefix/` (all of it for the root prefix), if `key` is below it.
fn below<'k>(key: &'k str, prefix: &str) -> Option<&'k str> {
    if prefix.is_empty() {
        Some(key)
    } else {
        key.strip_prefix(prefix)?.strip_prefix('/')
    }
}

impl Store for MemStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        validate_key(key)?;
        Ok(self.data().get(key).cloned())
    }

    fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        validate_prefix(prefix)?;
        Ok(self
            .data()
            .iter()
            .filter(|(k, _)| below(k, prefix).is_some_and(|rest| !rest.contains('/')))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn children(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        validate_prefix(prefix)?;
        let mut names: Vec<String> = self
            .data()
            .keys()
            .filter_map(|k| below(k, prefix))
            .map(|rest| rest.split('/').next().unwrap_or(rest).to_string())
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        validate_key(key)?;
        self.data().insert(key.to_string(), value.to_vec());
        Ok(())
    }

    fn create(&self, key: &str, value: &[u8]) -> Result<bool, StoreError> {
        validate_key(key)?;
        let mut data = self.data();
        if data.contains_key(key) {
            return Ok(false);
        }
        data.insert(key.to_string(), value.to_vec());
        Ok(true)
    }

    fn delete(&self, key: &str) -> Result<bool, StoreError> {
        validate_key(key)?;
        Ok(self.data().remove(key).is_some())
    }

    fn lock(&self) -> Result<StoreLock, StoreError> {
        self.lock.acquire(|| Ok::<_, StoreError>(()))?;
        Ok(StoreLock::new(Box::new(MemLockGuard(Arc::clone(
            &self.lock,
        )))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_and_children_see_direct_descendants_only() {
        let s = MemStore::new();
        s.put("a/b", b"1").unwrap();
        s.put("a/c/d", b"2").unwrap();
        s.put("ab", b"3").unwrap();
        assert_eq!(
            s.list("a").unwrap(),
            vec![("a/b".to_string(), b"1".to_vec())]
        );
        assert_eq!(s.children("a").unwrap(), vec!["b", "c"]);
        assert_eq!(s.children("").unwrap(), vec!["a", "ab"]);
        assert!(s.list("zz").unwrap().is_empty());
    }

    #[test]
    fn create_does_not_replace() {
        let s = MemStore::new();
        assert!(s.create("k", b"1").unwrap());
        assert!(!s.create("k", b"2").unwrap());
        assert_eq!(s.get("k").unwrap().unwrap(), b"1");
        assert!(s.delete("k").unwrap());
        assert!(!s.delete("k").unwrap());
    }
}
