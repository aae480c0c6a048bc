//! `FileStore` semantics: atomic create/put/delete, key validation, stale temporary files, the
//! re-entrant lock.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use weft_ipam::{FileStore, Store, StoreError};

fn open() -> (tempfile::TempDir, FileStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path().join("state")).unwrap();
    (dir, store)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every file name under `dir`, recursively.
fn all_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            out.extend(all_files(&entry.path()));
        } else {
            out.push(entry.file_name().into_string().unwrap());
        }
    }
    out
}

#[test]
fn open_creates_a_private_root() {
    let (dir, store) = open();
    assert_eq!(store.root(), dir.path().join("state"));
    assert_eq!(mode(store.root()), 0o700);
    // Opening an existing store is fine.
    FileStore::open(store.root()).unwrap();
}

#[test]
fn open_reports_an_unusable_root() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    fs::write(&file, b"x").unwrap();
    let err = FileStore::open(&file).unwrap_err();
    assert!(matches!(err, StoreError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("file"), "{err}");
}

#[test]
fn put_get_replace_and_persist() {
    let (_dir, store) = open();
    assert_eq!(store.get("a/b/c").unwrap(), None);
    store.put("a/b/c", b"one").unwrap();
    assert_eq!(store.get("a/b/c").unwrap().unwrap(), b"one");
    store.put("a/b/c", b"two").unwrap();
    assert_eq!(store.get("a/b/c").unwrap().unwrap(), b"two");
    assert_eq!(mode(&store.root().join("a/b/c")), 0o600);
    assert_eq!(mode(&store.root().join("a/b")), 0o700);
    let reopened = FileStore::open(store.root()).unwrap();
    assert_eq!(reopened.get("a/b/c").unwrap().unwrap(), b"two");
}

#[test]
fn create_never_replaces() {
    let (_dir, store) = open();
    assert!(store.create("k/v", b"first").unwrap());
    assert!(!store.create("k/v", b"second").unwrap());
    assert_eq!(store.get("k/v").unwrap().unwrap(), b"first");
}

#[test]
fn delete_is_idempotent() {
    let (_dir, store) = open();
    store.put("x/y", b"1").unwrap();
    assert!(store.delete("x/y").unwrap());
    assert!(!store.delete("x/y").unwrap());
    assert!(!store.delete("never/was").unwrap());
    assert_eq!(store.get("x/y").unwrap(), None);
}

#[test]
fn no_temporary_files_are_left_behind() {
    let (_dir, store) = open();
    store.put("d/a", b"1").unwrap();
    store.put("d/a", b"2").unwrap();
    store.create("d/b", b"1").unwrap();
    store.create("d/b", b"2").unwrap();
    store.delete("d/a").unwrap();
    let mut files = all_files(store.root());
    files.sort();
    assert_eq!(files, vec![".lock", "b"]);
}

#[test]
fn list_and_children() {
    let (_dir, store) = open();
    store.put("p/b", b"2").unwrap();
    store.put("p/a", b"1").unwrap();
    store.put("p/sub/deep", b"3").unwrap();
    store.put("q", b"4").unwrap();
    assert_eq!(
        store.list("p").unwrap(),
        vec![
            ("p/a".to_string(), b"1".to_vec()),
            ("p/b".to_string(), b"2".to_vec())
        ]
    );
    assert_eq!(store.children("p").unwrap(), vec!["a", "b", "sub"]);
    assert_eq!(
        store.children("").unwrap(),
        vec!["p", "q"],
        "root lists without .lock"
    );
    assert_eq!(
        store.list("").unwrap(),
        vec![("q".to_string(), b"4".to_vec())]
    );
    assert!(store.list("absent/prefix").unwrap().is_empty());
    assert!(store.children("absent").unwrap().is_empty());
    // A value is not a prefix and a prefix is not a value.
    assert!(store.list("q").unwrap().is_empty());
    assert_eq!(store.get("p").unwrap(), None);
    assert!(!store.delete("p").unwrap());
    assert_eq!(store.get("p/a").unwrap().unwrap(), b"1");
}

#[test]
fn invalid_keys_are_refused_everywhere() {
    let (dir, store) = open();
    for key in [
        "",
        "../escape",
        "a/../../escape",
        "/abs",
        "a//b",
        ".lock",
        "d/.tmp-x",
        "a b",
    ] {
        let refused = |r: Result<(), StoreError>| {
            assert!(
                matches!(r, Err(StoreError::InvalidKey { .. })),
                "{key:?}: {r:?}"
            )
        };
        refused(store.get(key).map(drop));
        refused(store.put(key, b"x"));
        refused(store.create(key, b"x").map(drop));
        refused(store.delete(key).map(drop));
        if !key.is_empty() {
            refused(store.list(key).map(drop));
            refused(store.children(key).map(drop));
        }
    }
    assert!(!dir.path().join("escape").exists());
    assert_eq!(all_files(store.root()), vec![".lock"]);
}

#[test]
fn stale_temporary_files_are_ignored() {
    let (_dir, store) = open();
    store.put("d/a", b"1").unwrap();
    // What a crash between write and rename leaves behind.
    fs::write(store.root().join("d/.tmp-deadbeefdeadbeef"), b"half").unwrap();
    fs::write(store.root().join(".tmp-0000000000000000"), b"").unwrap();
    assert_eq!(
        store.list("d").unwrap(),
        vec![("d/a".to_string(), b"1".to_vec())]
    );
    assert_eq!(store.children("d").unwrap(), vec!["a"]);
    assert_eq!(store.children("").unwrap(), vec!["d"]);
    store.put("d/a", b"2").unwrap();
    assert!(store.create("d/b", b"3").unwrap());
    assert_eq!(store.get("d/a").unwrap().unwrap(), b"2");
    assert_eq!(store.children("d").unwrap(), vec!["a", "b"]);
}

#[test]
fn a_value_where_a_prefix_is_needed_is_an_io_error() {
    let (_dir, store) = open();
    store.put("v", b"1").unwrap();
    let err = store.put("v/child", b"2").unwrap_err();
    assert!(matches!(err, StoreError::Io { .. }), "{err:?}");
    assert_eq!(store.get("v").unwrap().unwrap(), b"1");
}

/// Runs `f` on a thread and fails (instead of hanging) if it does not finish in time.
fn within(secs: u64, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .expect("did not finish: deadlock?");
}

#[test]
fn lock_is_reentrant_within_a_thread() {
    let (_dir, store) = open();
    let store = Arc::new(store);
    let s = Arc::clone(&store);
    within(10, move || {
        let outer = s.lock().unwrap();
        let inner = s.lock().unwrap();
        // Out of order on purpose: the count, not the guard, decides.
        drop(outer);
        let again = s.lock().unwrap();
        drop(inner);
        drop(again);
    });
    // Fully released: another thread can take it.
    let s = Arc::clone(&store);
    within(10, move || drop(s.lock().unwrap()));
}

/// Takes the lock on `other` in a new thread while `held` is held, and checks it has to wait.
fn assert_blocks(held: &dyn Store, other: Arc<dyn Store>) {
    let guard = held.lock().unwrap();
    let (tx, rx) = mpsc::channel();
    let waiter = thread::spawn(move || {
        let _g = other.lock().unwrap();
        tx.send(()).unwrap();
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "lock taken while another holder had it"
    );
    drop(guard);
    rx.recv_timeout(Duration::from_secs(10))
        .expect("waiter never got the released lock");
    waiter.join().unwrap();
}

#[test]
fn another_thread_waits_for_the_lock() {
    let (_dir, store) = open();
    let store = Arc::new(store);
    assert_blocks(&*store, Arc::clone(&store) as Arc<dyn Store>);
}

#[test]
fn another_store_on_the_same_root_waits_for_the_lock() {
    let (_dir, store) = open();
    let second: Arc<dyn Store> = Arc::new(FileStore::open(store.root()).unwrap());
    assert_blocks(&store, second);
}

#[test]
fn deleting_the_last_key_removes_its_empty_directories() {
    let (_dir, store) = open();
    let root = store.root().to_path_buf();
    store.put("ports/tcp/8080/any", b"x").unwrap();
    store.put("ports/tcp/8081/any", b"y").unwrap();
    assert!(store.delete("ports/tcp/8080/any").unwrap());
    assert!(
        !root.join("ports/tcp/8080").exists(),
        "empty directory left"
    );
    assert!(
        root.join("ports/tcp").is_dir(),
        "a directory with keys was removed"
    );
    assert!(store.delete("ports/tcp/8081/any").unwrap());
    assert!(!root.join("ports").exists());
    assert!(root.is_dir(), "the root itself stays");
    // Writing under a pruned path re-creates it.
    store.put("ports/tcp/8080/any", b"z").unwrap();
    assert_eq!(
        store.get("ports/tcp/8080/any").unwrap().as_deref(),
        Some(&b"z"[..])
    );
}

#[test]
fn hints_are_replaced_atomically_too() {
    let (_dir, store) = open();
    store.put_hint("ipam/cursor/p", b"1").unwrap();
    store.put_hint("ipam/cursor/p", b"2").unwrap();
    assert_eq!(
        store.get("ipam/cursor/p").unwrap().as_deref(),
        Some(&b"2"[..])
    );
    assert_eq!(
        all_files(store.root()).len(),
        2,
        "{:?}",
        all_files(store.root())
    );
}

#[test]
fn a_lock_timeout_gives_up_while_another_store_holds_the_lock() {
    let (_dir, store) = open();
    let root = store.root().to_path_buf();
    let held = store.lock().unwrap();
    let other = FileStore::open(&root)
        .unwrap()
        .with_lock_timeout(Duration::from_millis(150));
    let started = std::time::Instant::now();
    match other.lock() {
        Err(StoreError::LockTimeout { .. }) => {}
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("took a lock someone else holds"),
    }
    assert!(started.elapsed() >= Duration::from_millis(150));
    drop(held);
    other.lock().expect("free once released");
}
