//! Many processes and threads allocating from one pool in one `FileStore` never hand out an
//! address twice. Child processes are this test binary re-run with an environment variable that
//! selects the child's part.

use std::collections::BTreeSet;
use std::env;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use weft_ipam::{FileStore, Ipam, PoolRequest, Store};

const WORKERS: usize = 8;
const PER_WORKER: usize = 25;
const SUBNET: &str = "10.77.0.0/24";

/// Set in a child: what to do (`alloc` or `lock`).
const CHILD_ROLE: &str = "WEFT_IPAM_TEST_CHILD";
const CHILD_ROOT: &str = "WEFT_IPAM_TEST_ROOT";
const CHILD_ID: &str = "WEFT_IPAM_TEST_ID";

fn make_pool(store: &FileStore) -> String {
    let req = PoolRequest {
        subnet: Some(SUBNET.parse().unwrap()),
        owner: "concurrency".into(),
        ..Default::default()
    };
    Ipam::new(store).request_pool(&req, &[]).unwrap().id
}

/// Allocates `PER_WORKER` addresses as worker `id`, returning them.
fn allocate(store: &FileStore, pool: &str, id: &str) -> Vec<IpAddr> {
    let ipam = Ipam::new(store);
    (0..PER_WORKER)
        .map(|i| {
            ipam.request_address(pool, None, &format!("{id}-{i}"))
                .unwrap_or_else(|e| panic!("worker {id} allocation {i}: {e}"))
                .addr()
        })
        .collect()
}

/// Checks the store holds exactly `returned`, each with a distinct owner.
fn assert_all_distinct(store: &FileStore, pool: &str, returned: &[IpAddr]) {
    let distinct: BTreeSet<IpAddr> = returned.iter().copied().collect();
    assert_eq!(returned.len(), WORKERS * PER_WORKER);
    assert_eq!(
        distinct.len(),
        returned.len(),
        "an address was handed out twice"
    );
    let allocated = Ipam::new(store).allocated(pool).unwrap();
    let stored: BTreeSet<IpAddr> = allocated.iter().map(|(a, _)| *a).collect();
    assert_eq!(stored, distinct);
    let owners: BTreeSet<&str> = allocated.iter().map(|(_, o)| o.as_str()).collect();
    assert_eq!(owners.len(), returned.len(), "two addresses share an owner");
    // First-free: however the workers interleaved, the pool fills from the bottom without gaps.
    let subnet: IpNet = SUBNET.parse().unwrap();
    let lowest: BTreeSet<IpAddr> = subnet.hosts().take(returned.len()).collect();
    assert_eq!(distinct, lowest);
}

/// Re-runs this test binary as a child for `test` with the given role.
fn spawn_child(test: &str, role: &str, root: &Path, id: &str) -> Child {
    Command::new(env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ROLE, role)
        .env(CHILD_ROOT, root)
        .env(CHILD_ID, id)
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits for every child with a deadline; kills the rest (by their own handles) on timeout.
fn wait_all(children: &mut [Child], deadline: Duration) {
    let until = Instant::now() + deadline;
    let mut done = vec![false; children.len()];
    while done.iter().any(|d| !d) {
        for (child, done) in children.iter_mut().zip(done.iter_mut()) {
            if *done {
                continue;
            }
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "child {} failed: {status}", child.id());
                *done = true;
            }
        }
        if Instant::now() > until {
            for child in children.iter_mut() {
                let _ = child.kill();
                let _ = child.wait();
            }
            panic!("children did not finish within {deadline:?}");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// The child's part, if this process is a child; `true` when it ran.
fn run_as_child() -> bool {
    let Ok(role) = env::var(CHILD_ROLE) else {
        return false;
    };
    let root = PathBuf::from(env::var(CHILD_ROOT).unwrap());
    let id = env::var(CHILD_ID).unwrap();
    let store = FileStore::open(&root).unwrap();
    match role.as_str() {
        "alloc" => {
            let pool = Ipam::new(&store).pools().unwrap()[0].id.clone();
            let got = allocate(&store, &pool, &id);
            let text: Vec<String> = got.iter().map(|a| a.to_string()).collect();
            fs::write(root.join(format!("out-{id}")), text.join("\n")).unwrap();
        }
        "lock" => {
            // Outside the store's keys' reach (written directly), so it needs no lock.
            fs::write(root.join("trying"), b"").unwrap();
            let _g = store.lock().unwrap();
            store.put("marker", id.as_bytes()).unwrap();
        }
        other => panic!("unknown child role {other}"),
    }
    true
}

#[test]
fn multi_process_allocation() {
    if run_as_child() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = FileStore::open(&root).unwrap();
    let pool = make_pool(&store);
    let mut children: Vec<Child> = (0..WORKERS)
        .map(|i| spawn_child("multi_process_allocation", "alloc", &root, &format!("p{i}")))
        .collect();
    wait_all(&mut children, Duration::from_secs(120));
    let mut returned = Vec::new();
    for i in 0..WORKERS {
        let text = fs::read_to_string(root.join(format!("out-p{i}"))).unwrap();
        returned.extend(text.lines().map(|l| l.parse::<IpAddr>().unwrap()));
    }
    assert_all_distinct(&store, &pool, &returned);
}

#[test]
fn another_process_waits_for_the_lock() {
    if run_as_child() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = FileStore::open(&root).unwrap();
    let guard = store.lock().unwrap();
    let mut child = [spawn_child(
        "another_process_waits_for_the_lock",
        "lock",
        &root,
        "child",
    )];
    let started = Instant::now() + Duration::from_secs(30);
    while !root.join("trying").exists() {
        assert!(Instant::now() < started, "child never started");
        thread::sleep(Duration::from_millis(5));
    }
    // The child is about to lock; it must not get to write its marker while we hold the lock.
    let until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < until {
        assert_eq!(
            store.get("marker").unwrap(),
            None,
            "child wrote while we held the lock"
        );
        thread::sleep(Duration::from_millis(20));
    }
    drop(guard);
    wait_all(&mut child, Duration::from_secs(30));
    assert_eq!(store.get("marker").unwrap().unwrap(), b"child");
}

#[test]
fn multi_thread_allocation_sharing_one_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FileStore::open(dir.path()).unwrap());
    let pool = make_pool(&store);
    let workers: Vec<_> = (0..WORKERS)
        .map(|i| {
            let (store, pool) = (Arc::clone(&store), pool.clone());
            thread::spawn(move || allocate(&store, &pool, &format!("t{i}")))
        })
        .collect();
    let returned: Vec<IpAddr> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert_all_distinct(&store, &pool, &returned);
}

#[test]
fn multi_thread_allocation_with_a_store_each() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let store = FileStore::open(&root).unwrap();
    let pool = make_pool(&store);
    let workers: Vec<_> = (0..WORKERS)
        .map(|i| {
            let (root, pool) = (root.clone(), pool.clone());
            thread::spawn(move || {
                let own = FileStore::open(&root).unwrap();
                allocate(&own, &pool, &format!("s{i}"))
            })
        })
        .collect();
    let returned: Vec<IpAddr> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert_all_distinct(&store, &pool, &returned);
}
