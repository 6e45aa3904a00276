//! The pipeline as a library (`cachectl::transfer`), called the way a benchmark or `provision`
//! would: no command line, no terminal, progress through a recording `Reporter`. On both
//! stores: a generated tree saved, looked up, restored and compared.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use std::ops::Range;

use bytes::Bytes;
use cachectl::key::{CacheKey, EntryName, PathSet, Scope};
use cachectl::outcome::RestoreOutcome;
use cachectl::store::local::LocalStore;
use cachectl::store::s3::S3Store;
use cachectl::store::{
    self, EntryInfo, EntryMeta, PutOutcome, Removal, Scan, Store, Upload, UseRecord,
};
use cachectl::transfer::{self, Options, Placement, Reporter, SaveRequest, SaveResult};

use crate::support::tree::{self, TreeOptions};
use crate::support::{moto, tempdir};

/// Adds up what the pipeline reports.
#[derive(Default)]
struct Recorded {
    bytes: AtomicU64,
    calls: AtomicU64,
    retries: AtomicU64,
}

impl Reporter for Recorded {
    fn on_bytes(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    fn on_retry(&self, _why: &str) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }
}

/// A store whose first ranged GET comes back with one bit flipped: damage on the way, not in
/// the store.
struct FlipsFirstRead {
    inner: Arc<dyn Store>,
    flipped: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl Store for FlipsFirstRead {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn head(&self, n: &EntryName) -> Result<Option<EntryInfo>, store::Error> {
        self.inner.head(n).await
    }
    async fn list(&self, s: &Scope, ps: &str, p: &str) -> Result<Vec<EntryInfo>, store::Error> {
        self.inner.list(s, ps, p).await
    }
    async fn get_range(&self, n: &EntryName, r: Range<u64>) -> Result<Bytes, store::Error> {
        let bytes = self.inner.get_range(n, r.clone()).await?;
        if r.start == 0 && !self.flipped.swap(true, Ordering::SeqCst) {
            let mut damaged = bytes.to_vec();
            damaged[100] ^= 0x01;
            return Ok(damaged.into());
        }
        Ok(bytes)
    }
    async fn put(
        &self,
        n: &EntryName,
        m: &EntryMeta,
        d: Bytes,
        o: bool,
    ) -> Result<PutOutcome, store::Error> {
        self.inner.put(n, m, d, o).await
    }
    async fn create_upload(
        &self,
        n: &EntryName,
        m: &EntryMeta,
        o: bool,
    ) -> Result<Box<dyn Upload>, store::Error> {
        self.inner.create_upload(n, m, o).await
    }
    async fn record_use(&self, u: &UseRecord) -> Result<(), store::Error> {
        self.inner.record_use(u).await
    }
    async fn scan(&self, p: &str) -> Result<Scan, store::Error> {
        self.inner.scan(p).await
    }
    async fn remove(&self, b: &[Removal]) -> Vec<Result<(), store::Error>> {
        self.inner.remove(b).await
    }
}

/// A bit flipped in transit is fetched again and restores exactly; the entry is not blamed.
#[test]
fn a_bit_flipped_in_transit_is_fetched_again_not_blamed_on_the_entry() {
    let dir = tempdir("cachectl-pipeline-");
    let runtime = runtime();
    let inner: Arc<dyn Store> = Arc::new(LocalStore::new(dir.path().join("store")));
    let src = dir.path().join("src/deps");
    tree::generate(&src, TreeOptions::default());
    let saved_tree = tree::snapshot(&src);
    let paths = PathSet::new(&["deps"]).unwrap();
    let key = CacheKey::new("flip-1").unwrap();
    let request = SaveRequest {
        name: EntryName::new(&Scope::Trusted, &paths, &key),
        meta: EntryMeta {
            format: 1,
            key: key.to_string(),
            paths: paths.paths().to_vec(),
            family: "flip".into(),
            created: "2026-11-29T12:00:00Z".into(),
            cachectl: "pipeline-test".into(),
        },
        roots: vec![src],
        exclude: vec![],
        signer: None,
    };
    runtime.block_on(async {
        let opts = Options::default();
        transfer::save_tree(Arc::clone(&inner), request, &opts, Arc::new(()))
            .await
            .unwrap();
        let store: Arc<dyn Store> = Arc::new(FlipsFirstRead {
            inner,
            flipped: Default::default(),
        });
        let (entry, _) = transfer::lookup(store.as_ref(), &[Scope::Trusted], &paths, &key, &[])
            .await
            .unwrap()
            .unwrap();
        let dest = dir.path().join("dst/deps");
        let seen = Arc::new(Recorded::default());
        transfer::restore_entry(
            store,
            &entry,
            &paths,
            vec![(dest.clone(), Placement::Replace)],
            &opts,
            seen.clone(),
        )
        .await
        .unwrap();
        assert_eq!(seen.retries.load(Ordering::Relaxed), 1, "fetched once more");
        tree::assert_same_tree(&tree::expected_after_restore(&saved_tree), &dest);
    });
}

#[test]
fn save_lookup_restore_through_the_library_local() {
    let dir = tempdir("cachectl-pipeline-");
    let store = Arc::new(LocalStore::new(dir.path().join("store")));
    round_trip(store, dir.path());
}

#[test]
fn save_lookup_restore_through_the_library_s3() {
    let dir = tempdir("cachectl-pipeline-");
    let moto = moto::moto();
    let bucket = moto::bucket_name("pipeline-library");
    moto.create_bucket(&bucket);
    let runtime = runtime();
    let conf = runtime.block_on(moto.sdk_config());
    let store = Arc::new(S3Store::with_config(&conf, bucket, String::new()));
    round_trip_on(&runtime, store, dir.path());
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn round_trip(store: Arc<dyn Store>, root: &std::path::Path) {
    round_trip_on(&runtime(), store, root)
}

fn round_trip_on(runtime: &tokio::runtime::Runtime, store: Arc<dyn Store>, root: &std::path::Path) {
    let src = root.join("src/node_modules");
    tree::generate(
        &src,
        TreeOptions {
            big_file: true,
            ..TreeOptions::default()
        },
    );
    let saved_tree = tree::snapshot(&src);
    let paths = PathSet::new(&["node_modules"]).unwrap();
    let key = CacheKey::new("npm-linux-x64-0123abcd").unwrap();
    let request = SaveRequest {
        name: EntryName::new(&Scope::Trusted, &paths, &key),
        meta: EntryMeta {
            format: 1,
            key: key.to_string(),
            paths: paths.paths().to_vec(),
            family: "npm-linux-x64".into(),
            created: "2026-11-29T12:00:00Z".into(),
            cachectl: "pipeline-test".into(),
        },
        roots: vec![src.clone()],
        exclude: vec![],
        signer: None,
    };
    // Small parts, so the upload is a real multipart one with several parts in flight.
    let opts = Options {
        part_bytes: 5 << 20,
        concurrency: 4,
        ..Options::default()
    };
    runtime.block_on(async {
        let up = Arc::new(Recorded::default());
        let saved = transfer::save_tree(Arc::clone(&store), request.clone(), &opts, up.clone())
            .await
            .unwrap();
        assert!(saved.missing.is_empty());
        let SaveResult::Created(packed) = saved.result else {
            panic!("not created: {:?}", saved.result)
        };
        assert_eq!(
            up.bytes.load(Ordering::Relaxed),
            packed.bytes,
            "reported != uploaded"
        );
        assert!(
            up.calls.load(Ordering::Relaxed) > 1,
            "one report for a multipart upload"
        );

        let again = transfer::save_tree(Arc::clone(&store), request, &opts, Arc::new(()))
            .await
            .unwrap();
        assert!(
            matches!(again.result, SaveResult::Exists),
            "{:?}",
            again.result
        );

        let fallback = [CacheKey::new("npm-linux-x64-").unwrap()];
        let missed = CacheKey::new("npm-linux-x64-ffff0000").unwrap();
        let (entry, outcome) = transfer::lookup(
            store.as_ref(),
            &[Scope::Trusted],
            &paths,
            &missed,
            &fallback,
        )
        .await
        .unwrap()
        .expect("the prefix matches");
        assert_eq!(outcome, RestoreOutcome::Partial);
        assert_eq!(entry.name.key, key.as_str());
        assert_eq!(entry.size, packed.bytes);

        let dest = root.join("dst/node_modules");
        let down = Arc::new(Recorded::default());
        let restored = transfer::restore_entry(
            store,
            &entry,
            &paths,
            vec![(dest.clone(), Placement::Replace)],
            &opts,
            down.clone(),
        )
        .await
        .unwrap();
        assert!(restored.trash.is_empty(), "nothing was replaced");
        let stats = restored.stats;
        assert_eq!(stats.entries, packed.stats.entries);
        assert_eq!(stats.file_bytes, packed.stats.file_bytes);
        assert_eq!(
            down.bytes.load(Ordering::Relaxed),
            packed.bytes,
            "reported != downloaded"
        );
        tree::assert_same_tree(&tree::expected_after_restore(&saved_tree), &dest);
    });
}
