//! The store contract, clause by clause (the doc of `trait Store` in src/store/mod.rs), in the
//! style of object_store's integration suite: each clause is one `async fn(&dyn Store)`, and
//! `contract!` runs it on a fresh `LocalStore` (a temp directory) and a fresh `S3Store` (a
//! bucket of its own on moto, under a key prefix). A new backend is done when it passes this
//! file unchanged.
//!
//! moto's limits that matter here: multipart parts must be at least 5 MiB but the last, as on
//! S3, and its ListMultipartUploads reports a made-up `Initiated` time (only presence is checked).

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use cachectl::key::{EntryName, Scope};
use cachectl::store::local::LocalStore;
use cachectl::store::s3::S3Store;
use cachectl::store::{EntryMeta, PutOutcome, Removal, Store, Upload, UseRecord};

use crate::support::{moto, tempdir};

const PS1: &str = "0123456789abcdef";
const PS2: &str = "fedcba9876543210";
/// S3's smallest part but the last.
const PART: usize = 5 * 1024 * 1024;

type Clause = fn(Arc<dyn Store>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs `clause` on a fresh store of `backend`, inside a runtime of its own.
fn run(backend: &str, test: &str, clause: Clause) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempdir("cachectl-contract-");
    let store: Arc<dyn Store> = match backend {
        "local" => Arc::new(LocalStore::new(dir.path().join("store"))),
        _ => {
            let moto = moto::moto();
            let bucket = moto::bucket_name(&format!("contract-{test}"));
            moto.create_bucket(&bucket);
            let conf = runtime.block_on(moto.sdk_config());
            Arc::new(S3Store::with_config(&conf, bucket, "team/ci/".into()))
        }
    };
    runtime.block_on(clause(store));
}

/// `clause` runs on every backend; `clause [moto: "why"]` is ignored on S3 where moto itself
/// cannot keep the clause (the reason names the limit; real S3 keeps it).
macro_rules! contract {
    ($($clause:ident $([moto: $why:literal])?),* $(,)?) => {$(
        mod $clause {
            #[test]
            fn local() {
                super::run("local", stringify!($clause), |s| Box::pin(super::$clause(s)));
            }

            #[test]
            $(#[ignore = $why])?
            fn s3() {
                super::run("s3", stringify!($clause), |s| Box::pin(super::$clause(s)));
            }
        }
    )*};
}

contract!(
    an_entry_is_invisible_until_complete_then_whole,
    put_without_overwrite_never_replaces,
    complete_without_overwrite_never_replaces,
    of_concurrent_puts_exactly_one_wins,
    of_concurrent_uploads_exactly_one_wins [moto: "moto 5.2.5 checks If-None-Match on \
        CompleteMultipartUpload without a lock, so two racing completes both succeed; S3 answers \
        the losers 412 or 409 ConditionalRequestConflict"],
    abort_releases_everything,
    remove_of_something_gone_is_ok,
    record_use_is_idempotent_within_the_hour,
    list_sees_exactly_the_committed_entries_of_a_path_set_and_prefix,
    get_range_at_the_ends,
    scan_reads_the_metadata_as_written,
    scopes_keep_their_entries_and_uses_apart,
);

fn name(pathset: &str, key: &str) -> EntryName {
    EntryName {
        scope: Scope::Trusted,
        pathset: pathset.into(),
        key: key.into(),
    }
}

fn meta(key: &str) -> EntryMeta {
    EntryMeta {
        format: 1,
        key: key.into(),
        paths: vec!["node_modules".into(), "~/.npm".into()],
        family: "npm/npm-linux-".into(),
        created: "2026-11-29T12:00:00Z".into(),
        cachectl: "contract".into(),
    }
}

/// `len` bytes that differ by `seed` and by position, so a swapped or shifted range shows.
fn bytes(seed: u8, len: usize) -> Bytes {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(u32::from(seed)) as u8)
        .collect::<Vec<u8>>()
        .into()
}

async fn read_all(store: &dyn Store, n: &EntryName) -> Bytes {
    let size = store.head(n).await.unwrap().expect("entry exists").size;
    store.get_range(n, 0..size).await.unwrap()
}

async fn keys(store: &dyn Store, pathset: &str, prefix: &str) -> BTreeSet<String> {
    let listed = store.list(&Scope::Trusted, pathset, prefix).await.unwrap();
    for e in &listed {
        assert_eq!(e.name.pathset, pathset, "listed from another path set");
    }
    listed.into_iter().map(|e| e.name.key).collect()
}

fn set(keys: &[&str]) -> BTreeSet<String> {
    keys.iter().map(|k| (*k).to_owned()).collect()
}

/// A two-part upload of `first` then `last`, not completed.
async fn upload(
    store: &dyn Store,
    n: &EntryName,
    first: Bytes,
    last: Bytes,
    overwrite: bool,
) -> Box<dyn Upload> {
    let up = store
        .create_upload(n, &meta(&n.key), overwrite)
        .await
        .unwrap();
    let offset = first.len() as u64;
    // Out of order on purpose: parts may arrive in any order.
    up.put_part(2, offset, last).await.unwrap();
    up.put_part(1, 0, first).await.unwrap();
    up
}

async fn an_entry_is_invisible_until_complete_then_whole(store: Arc<dyn Store>) {
    let n = name(PS1, "npm-linux-x64-1f2e");
    let (first, last) = (bytes(1, PART), bytes(2, 1234));
    let up = upload(store.as_ref(), &n, first.clone(), last.clone(), false).await;
    assert!(
        store.head(&n).await.unwrap().is_none(),
        "head sees an upload"
    );
    assert!(
        keys(store.as_ref(), PS1, "").await.is_empty(),
        "list sees an upload"
    );
    assert!(
        store.scan("").await.unwrap().entries.is_empty(),
        "scan sees an upload as an entry"
    );
    assert_eq!(up.complete().await.unwrap(), PutOutcome::Created);
    let info = store
        .head(&n)
        .await
        .unwrap()
        .expect("visible after complete");
    assert_eq!(info.size, (PART + 1234) as u64);
    assert_eq!(keys(store.as_ref(), PS1, "").await, set(&[&n.key]));
    let whole = read_all(store.as_ref(), &n).await;
    assert_eq!(whole.len(), PART + 1234);
    assert!(
        whole[..PART] == first[..] && whole[PART..] == last[..],
        "bytes differ"
    );
}

async fn put_without_overwrite_never_replaces(store: Arc<dyn Store>) {
    let n = name(PS1, "pip-3.12-aa");
    let (a, b) = (bytes(1, 100), bytes(2, 120));
    let m = meta(&n.key);
    let put = |data: Bytes, overwrite: bool| store.put(&n, &m, data, overwrite);
    assert_eq!(put(a.clone(), false).await.unwrap(), PutOutcome::Created);
    assert_eq!(
        put(b.clone(), false).await.unwrap(),
        PutOutcome::AlreadyExists
    );
    assert_eq!(
        read_all(store.as_ref(), &n).await,
        a,
        "replaced without overwrite"
    );
    assert_eq!(put(b.clone(), true).await.unwrap(), PutOutcome::Created);
    assert_eq!(
        read_all(store.as_ref(), &n).await,
        b,
        "overwrite did not replace"
    );
}

async fn complete_without_overwrite_never_replaces(store: Arc<dyn Store>) {
    let n = name(PS1, "cargo-registry-77");
    let a = bytes(1, 300);
    assert_eq!(
        store
            .put(&n, &meta(&n.key), a.clone(), false)
            .await
            .unwrap(),
        PutOutcome::Created
    );
    let up = upload(store.as_ref(), &n, bytes(2, PART), bytes(3, 10), false).await;
    assert_eq!(up.complete().await.unwrap(), PutOutcome::AlreadyExists);
    assert_eq!(
        read_all(store.as_ref(), &n).await,
        a,
        "replaced without overwrite"
    );
    let up = upload(store.as_ref(), &n, bytes(4, PART), bytes(5, 10), true).await;
    assert_eq!(up.complete().await.unwrap(), PutOutcome::Created);
    assert_eq!(read_all(store.as_ref(), &n).await.len(), PART + 10);
    let leftovers = store.scan("").await.unwrap().leftovers;
    assert!(leftovers.is_empty(), "a lost complete left {leftovers:?}");
}

/// `(outcomes, stored bytes)` after `writers` race to create one entry.
fn winner(outcomes: &[(PutOutcome, Bytes)], stored: &Bytes) {
    let created: Vec<_> = outcomes
        .iter()
        .filter(|(o, _)| *o == PutOutcome::Created)
        .collect();
    assert_eq!(
        created.len(),
        1,
        "outcomes: {:?}",
        outcomes.iter().map(|o| o.0).collect::<Vec<_>>()
    );
    assert_eq!(
        outcomes.len() - 1,
        outcomes
            .iter()
            .filter(|(o, _)| *o == PutOutcome::AlreadyExists)
            .count()
    );
    assert!(
        created[0].1 == stored,
        "the stored bytes are not the winner's"
    );
}

/// Waits for racing `writers` of `n`, then checks that exactly one won and its bytes are stored.
async fn race(
    store: &dyn Store,
    n: &EntryName,
    writers: impl Iterator<Item = tokio::task::JoinHandle<(PutOutcome, Bytes)>>,
) {
    let outcomes: Vec<_> = futures_util::future::join_all(writers)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    winner(&outcomes, &read_all(store, n).await);
}

async fn of_concurrent_puts_exactly_one_wins(store: Arc<dyn Store>) {
    let n = name(PS1, "npm-race");
    let writers = (0..8u8).map(|i| {
        let (store, n) = (Arc::clone(&store), n.clone());
        tokio::spawn(async move {
            let data = bytes(i, 4096 + usize::from(i));
            let o = store
                .put(&n, &meta(&n.key), data.clone(), false)
                .await
                .unwrap();
            (o, data)
        })
    });
    race(store.as_ref(), &n, writers).await;
}

async fn of_concurrent_uploads_exactly_one_wins(store: Arc<dyn Store>) {
    let n = name(PS1, "gradle-race");
    let writers = (0..3u8).map(|i| {
        let (store, n) = (Arc::clone(&store), n.clone());
        tokio::spawn(async move {
            let (first, last) = (bytes(i, PART), bytes(i + 100, 10 + usize::from(i)));
            let up = upload(store.as_ref(), &n, first.clone(), last.clone(), false).await;
            let o = up.complete().await.unwrap();
            (o, [first, last].concat().into())
        })
    });
    race(store.as_ref(), &n, writers).await;
    let leftovers = store.scan("").await.unwrap().leftovers;
    assert!(leftovers.is_empty(), "losers left {leftovers:?}");
}

async fn abort_releases_everything(store: Arc<dyn Store>) {
    let n = name(PS2, "go-mod-5");
    let up = store.create_upload(&n, &meta(&n.key), false).await.unwrap();
    up.put_part(1, 0, bytes(1, PART)).await.unwrap();
    assert_eq!(
        store.scan("").await.unwrap().leftovers.len(),
        1,
        "the upload in progress is not visible as a leftover"
    );
    up.abort().await.unwrap();
    let scan = store.scan("").await.unwrap();
    assert!(scan.leftovers.is_empty(), "abort left {:?}", scan.leftovers);
    assert!(scan.entries.is_empty());
    assert!(store.head(&n).await.unwrap().is_none());
}

async fn remove_of_something_gone_is_ok(store: Arc<dyn Store>) {
    let n = name(PS1, "maven-9");
    let never = name(PS2, "never-saved");
    store
        .put(&n, &meta(&n.key), bytes(1, 10), false)
        .await
        .unwrap();
    let batch = [
        Removal::Entry(n.clone()),
        Removal::Entry(never.clone()),
        Removal::Use(UseRecord::at(never, SystemTime::now())),
    ];
    for round in ["present", "already gone"] {
        let results = store.remove(&batch).await;
        assert_eq!(results.len(), batch.len(), "{round}");
        for r in &results {
            assert!(r.is_ok(), "{round}: {r:?}");
        }
    }
    assert!(store.head(&n).await.unwrap().is_none());
}

async fn record_use_is_idempotent_within_the_hour(store: Arc<dyn Store>) {
    let n = name(PS1, "uv-0c");
    store
        .put(&n, &meta(&n.key), bytes(1, 10), false)
        .await
        .unwrap();
    let hour = SystemTime::UNIX_EPOCH + Duration::from_secs(493_000 * 3600);
    let same_hour = hour + Duration::from_secs(59 * 60);
    let next_hour = hour + Duration::from_secs(3600);
    for t in [hour, same_hour, hour] {
        store
            .record_use(&UseRecord::at(n.clone(), t))
            .await
            .unwrap();
    }
    let uses = store.scan("").await.unwrap().uses;
    assert_eq!(
        uses,
        [UseRecord::at(n.clone(), hour)],
        "one record for one hour"
    );
    store
        .record_use(&UseRecord::at(n.clone(), next_hour))
        .await
        .unwrap();
    let hours: BTreeSet<u64> = store
        .scan("")
        .await
        .unwrap()
        .uses
        .iter()
        .map(|u| u.hour)
        .collect();
    assert_eq!(hours, BTreeSet::from([493_000, 493_001]));
}

async fn list_sees_exactly_the_committed_entries_of_a_path_set_and_prefix(store: Arc<dyn Store>) {
    for (pathset, key) in [
        (PS1, "npm-a"),
        (PS1, "npm-b"),
        (PS1, "pip-a"),
        (PS1, "npm/x%y"),
        (PS1, ".npm-hidden"),
        (PS2, "npm-c"),
    ] {
        let n = name(pathset, key);
        store
            .put(&n, &meta(key), bytes(1, 10), false)
            .await
            .unwrap();
    }
    let pending = upload(
        store.as_ref(),
        &name(PS1, "npm-pending"),
        bytes(1, PART),
        bytes(2, 1),
        false,
    )
    .await;
    store
        .record_use(&UseRecord::at(
            name(PS1, "npm-used-only"),
            SystemTime::now(),
        ))
        .await
        .unwrap();
    let s = store.as_ref();
    assert_eq!(keys(s, PS1, "npm-").await, set(&["npm-a", "npm-b"]));
    assert_eq!(keys(s, PS1, "npm-a").await, set(&["npm-a"]));
    assert_eq!(keys(s, PS1, "npm/").await, set(&["npm/x%y"]));
    assert_eq!(keys(s, PS1, ".npm").await, set(&[".npm-hidden"]));
    assert_eq!(
        keys(s, PS1, "").await,
        set(&["npm-a", "npm-b", "pip-a", "npm/x%y", ".npm-hidden"])
    );
    assert_eq!(keys(s, PS2, "npm-").await, set(&["npm-c"]));
    assert_eq!(keys(s, PS2, "pip").await, set(&[]));
    assert_eq!(keys(s, "00000000000000ff", "").await, set(&[]));
    pending.abort().await.unwrap();
}

async fn get_range_at_the_ends(store: Arc<dyn Store>) {
    let n = name(PS1, "bundler-1");
    let data = bytes(7, 1000);
    store
        .put(&n, &meta(&n.key), data.clone(), false)
        .await
        .unwrap();
    for range in [0..1, 999..1000, 0..1000, 500..501, 1..999] {
        let got = store.get_range(&n, range.clone()).await.unwrap();
        assert_eq!(
            got,
            data.slice(range.start as usize..range.end as usize),
            "{range:?}"
        );
    }
}

async fn scan_reads_the_metadata_as_written(store: Arc<dyn Store>) {
    let key = "ключ-npm/é 100%";
    let n = name(PS2, key);
    let written = EntryMeta {
        paths: vec!["~/.cache/pip".into(), "vendor/ü".into()],
        ..meta(key)
    };
    store.put(&n, &written, bytes(1, 10), false).await.unwrap();
    store
        .put(&name(PS1, "other-1"), &meta("other-1"), bytes(2, 10), false)
        .await
        .unwrap();
    let scan = store.scan("ключ").await.unwrap();
    assert_eq!(scan.entries.len(), 1, "{:?}", scan.entries);
    assert_eq!(scan.entries[0].info.name, n);
    assert_eq!(scan.entries[0].info.size, 10);
    assert_eq!(scan.entries[0].meta.as_ref(), Some(&written));
}

async fn scopes_keep_their_entries_and_uses_apart(store: Arc<dyn Store>) {
    let pr = |n: &str| Scope::Untrusted(n.into());
    let in_scope = |scope: &Scope, key: &str| EntryName {
        scope: scope.clone(),
        ..name(PS1, key)
    };
    let scopes = [Scope::Trusted, pr("pr-1"), pr("pr-2")];
    for (i, scope) in scopes.iter().enumerate() {
        let n = in_scope(scope, "npm-a");
        let outcome = store
            .put(&n, &meta("npm-a"), bytes(i as u8, 10 + i), false)
            .await
            .unwrap();
        assert_eq!(
            outcome,
            PutOutcome::Created,
            "the same key in scope {scope}"
        );
    }
    store
        .put(
            &in_scope(&pr("pr-1"), "npm-b"),
            &meta("npm-b"),
            bytes(9, 3),
            false,
        )
        .await
        .unwrap();
    for (i, scope) in scopes.iter().enumerate() {
        let n = in_scope(scope, "npm-a");
        assert_eq!(store.head(&n).await.unwrap().unwrap().size, 10 + i as u64);
        assert_eq!(read_all(store.as_ref(), &n).await, bytes(i as u8, 10 + i));
    }
    let listed = |scope: Scope| {
        let store = Arc::clone(&store);
        async move {
            let found = store.list(&scope, PS1, "npm-").await.unwrap();
            assert!(found.iter().all(|e| e.name.scope == scope), "{found:?}");
            found
                .into_iter()
                .map(|e| e.name.key)
                .collect::<BTreeSet<_>>()
        }
    };
    assert_eq!(listed(Scope::Trusted).await, set(&["npm-a"]));
    assert_eq!(listed(pr("pr-1")).await, set(&["npm-a", "npm-b"]));
    assert_eq!(listed(pr("pr-2")).await, set(&["npm-a"]));
    assert_eq!(listed(pr("pr-3")).await, set(&[]));

    let now = SystemTime::now();
    store
        .record_use(&UseRecord::at(in_scope(&pr("pr-1"), "npm-a"), now))
        .await
        .unwrap();
    store
        .record_use(&UseRecord::at(in_scope(&Scope::Trusted, "npm-a"), now))
        .await
        .unwrap();
    let scan = store.scan("").await.unwrap();
    let mut entries: Vec<(String, String)> = scan
        .entries
        .iter()
        .map(|e| (e.info.name.scope.to_string(), e.info.name.key.clone()))
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        [
            ("pr-1", "npm-a"),
            ("pr-1", "npm-b"),
            ("pr-2", "npm-a"),
            ("trusted", "npm-a")
        ]
        .map(|(s, k)| (s.to_owned(), k.to_owned()))
    );
    let mut uses: Vec<String> = scan.uses.iter().map(|u| u.name.scope.to_string()).collect();
    uses.sort();
    assert_eq!(uses, ["pr-1", "trusted"]);

    let gone = store
        .remove(&[Removal::Entry(in_scope(&pr("pr-1"), "npm-a"))])
        .await;
    assert!(gone.iter().all(Result::is_ok), "{gone:?}");
    assert!(store
        .head(&in_scope(&pr("pr-1"), "npm-a"))
        .await
        .unwrap()
        .is_none());
    assert!(
        store
            .head(&in_scope(&Scope::Trusted, "npm-a"))
            .await
            .unwrap()
            .is_some(),
        "removing a scope's entry leaves the trusted one"
    );
}
