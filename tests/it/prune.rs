//! `prune`, `ls` and `rm` against moto S3 and the local store.
//!
//! Time is set, not waited for: saves and restores run with `CACHECTL_NOW` (the clock cachectl
//! records creation and last use with), prune judges with `--as-of`, and the 2,500-entry test
//! plants entries with metadata directly (docs/FORMAT.md), as another writer could.
//!
//! moto answers ListMultipartUploads with a fixed `Initiated` of 2010-11-10, so every open
//! upload looks old there: the S3 test checks that a stale upload is aborted, and the
//! "in-flight uploads are spared" half runs on the local store, whose temp files carry real
//! times.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::support::{format, moto, write, Fixture, StoreKind};

const BOTH: [StoreKind; 2] = [StoreKind::Local, StoreKind::S3];

fn tag(kind: StoreKind) -> &'static str {
    match kind {
        StoreKind::Local => "local",
        StoreKind::S3 => "s3",
    }
}

/// Saves `key` from a one-file tree of `size` bytes, as if at `at`.
fn save_at(fx: &Fixture, key: &str, size: usize, at: &str) {
    let src = fx.root().join(format!("src-{key}"));
    write(&src.join("deps/blob"), vec![b'a' + (size % 26) as u8; size]);
    fx.save(key, &src)
        .paths(["deps"])
        .arg("--level")
        .arg("1")
        .env("CACHECTL_NOW", at)
        .run()
        .expect(0, "saved");
}

/// Restores exactly `key`, as if at `at`.
fn restore_at(fx: &Fixture, key: &str, at: &str) {
    let dst = fx.root().join(format!("dst-{key}-{at}"));
    fs::create_dir_all(&dst).unwrap();
    fx.restore(key, &dst)
        .paths(["deps"])
        .env("CACHECTL_NOW", at)
        .run()
        .expect(0, "hit");
}

fn ls(fx: &Fixture) -> Value {
    let run = fx
        .cachectl()
        .args(["ls", "--json", "--store", &fx.store])
        .run();
    run.assert_code(0);
    run.json()
}

fn keys_of(ls: &Value) -> Vec<String> {
    ls["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap().to_owned())
        .collect()
}

fn size_of(ls: &Value, key: &str) -> u64 {
    ls["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == key)
        .unwrap_or_else(|| panic!("{key} not listed: {ls}"))["size"]
        .as_u64()
        .unwrap()
}

/// `cachectl prune --json --store S ARGS...`; returns (exit code, JSON).
fn prune(fx: &Fixture, args: &[&str]) -> (i32, Value) {
    let run = fx
        .cachectl()
        .args(["prune", "--json", "--store", &fx.store])
        .args(args)
        .run();
    let json = run.json();
    (run.code.unwrap_or(-1), json)
}

/// Keys a prune report says it deleted (or would delete), sorted.
fn deleted_keys(report: &Value) -> Vec<String> {
    let mut keys: Vec<String> = report["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap().to_owned())
        .collect();
    keys.sort();
    keys
}

/// Five entries over January 2026 in two families, two of them restored later.
///
/// | key          | created | last used |
/// |--------------|---------|-----------|
/// | npm-00000001 | 01-01   | 01-18     |
/// | npm-00000002 | 01-05   | never     |
/// | npm-00000003 | 01-09   | never     |
/// | npm-00000004 | 01-15   | 01-16     |
/// | pip-00000001 | 01-02   | never     |
fn january(fx: &Fixture) {
    save_at(fx, "npm-00000001", 3000, "2026-01-01T00:00:00Z");
    save_at(fx, "pip-00000001", 4000, "2026-01-02T00:00:00Z");
    save_at(fx, "npm-00000002", 5000, "2026-01-05T00:00:00Z");
    save_at(fx, "npm-00000003", 6000, "2026-01-09T00:00:00Z");
    save_at(fx, "npm-00000004", 7000, "2026-01-15T00:00:00Z");
    restore_at(fx, "npm-00000004", "2026-01-16T10:00:00Z");
    restore_at(fx, "npm-00000001", "2026-01-18T10:00:00Z");
}

const AS_OF: &str = "2026-01-20T00:00:00Z";

#[test]
fn each_rule_alone_and_combined_on_both_stores() {
    for kind in BOTH {
        let fx = Fixture::new(kind, &format!("prune-rules-{}", tag(kind)));
        january(&fx);
        let before = ls(&fx);
        assert_eq!(
            keys_of(&before),
            [
                "npm-00000001",
                "npm-00000002",
                "npm-00000003",
                "npm-00000004",
                "pip-00000001"
            ],
            "{kind:?}: ls is sorted by key"
        );
        let dry = |rules: &[&str]| {
            let mut args = vec!["--dry-run", "--as-of", AS_OF];
            args.extend_from_slice(rules);
            let (code, json) = prune(&fx, &args);
            assert_eq!(code, 0, "{kind:?} {rules:?}: {json}");
            assert_eq!(json["dry_run"], true);
            deleted_keys(&json)
        };
        assert_eq!(
            dry(&["--max-age", "12d"]),
            ["npm-00000001", "npm-00000002", "pip-00000001"],
            "{kind:?}: max-age goes by creation, not use"
        );
        assert_eq!(
            dry(&["--max-unused", "10d"]),
            ["npm-00000002", "npm-00000003", "pip-00000001"],
            "{kind:?}: max-unused goes by last use (creation if never restored)"
        );
        assert_eq!(
            dry(&["--max-age", "12d", "--keep-last", "1"]),
            ["npm-00000001", "npm-00000002"],
            "{kind:?}: keep-last 1 keeps pip's only entry although it is too old"
        );
        // Least recently used first: pip-1 (01-02), npm-2 (01-05), then it fits.
        let total = before["total_bytes"].as_u64().unwrap();
        let budget = total - size_of(&before, "pip-00000001") - size_of(&before, "npm-00000002");
        assert_eq!(
            dry(&["--max-total-size", &budget.to_string()]),
            ["npm-00000002", "pip-00000001"],
            "{kind:?}: max-total-size deletes least recently used until the store fits"
        );
        // At 01-15 00:30 npm-4 is 30 minutes old and npm-1 is in use ("future" restore).
        let (code, json) = prune(
            &fx,
            &[
                "--dry-run",
                "--as-of",
                "2026-01-15T00:30:00Z",
                "--max-age",
                "0s",
            ],
        );
        assert_eq!(code, 0);
        assert_eq!(
            deleted_keys(&json),
            ["npm-00000002", "npm-00000003", "pip-00000001"],
            "{kind:?}: min-age (1h) protects the new entry and the one in use"
        );
        assert_eq!(json["protected"]["min-age"], 2, "{json}");
        assert_eq!(ls(&fx), before, "{kind:?}: dry runs delete nothing");

        // Combined, for real: max-unused 10d takes npm-2 and npm-3 and would take pip-1, but
        // keep-last 1 spares it (pip's newest); a budget of npm-4 + pip-1 then takes the least
        // recently used of the rest that is not protected: npm-1 (npm-4 is npm's newest).
        let (code, json) = prune(
            &fx,
            &[
                "--as-of",
                AS_OF,
                "--max-unused",
                "10d",
                "--keep-last",
                "1",
                "--max-total-size",
                &(size_of(&before, "npm-00000004") + size_of(&before, "pip-00000001")).to_string(),
            ],
        );
        assert_eq!(code, 0, "{json}");
        assert_eq!(json["dry_run"], false);
        assert_eq!(
            deleted_keys(&json),
            ["npm-00000001", "npm-00000002", "npm-00000003"]
        );
        assert_eq!(json["deleted_by_reason"]["max-unused"], 2, "{json}");
        assert_eq!(json["deleted_by_reason"]["max-total-size"], 1, "{json}");
        assert_eq!(json["deleted"], 3);
        assert_eq!(json["scanned"], 5);
        let after = ls(&fx);
        assert_eq!(keys_of(&after), ["npm-00000004", "pip-00000001"]);
        assert_eq!(json["store_entries_after"], 2);
        assert_eq!(json["store_bytes_after"], after["total_bytes"]);
        assert_eq!(
            json["bytes_freed"].as_u64().unwrap(),
            before["total_bytes"].as_u64().unwrap() - after["total_bytes"].as_u64().unwrap()
        );
        // The deleted entry's use record went with it.
        let uses = use_records(&fx);
        assert_eq!(
            uses,
            ["npm-00000004@2026011610"],
            "{kind:?}: only npm-4's use record is left"
        );
    }
}

/// `<key>@<stamp>` of every use record in the store, sorted.
fn use_records(fx: &Fixture) -> Vec<String> {
    let rels: Vec<String> = match fx.kind {
        StoreKind::S3 => moto::moto().list(fx.bucket.as_ref().unwrap(), "v1-used/"),
        StoreKind::Local => walk_files(&Path::new(&fx.store).join("v1-used"))
            .into_iter()
            .map(|p| {
                let rel = p
                    .strip_prefix(&fx.store)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned();
                // Local names are escaped; these tests use keys that need no escaping.
                rel
            })
            .collect(),
    };
    let mut out: Vec<String> = rels
        .iter()
        .map(|rel| {
            let parts: Vec<&str> = rel.splitn(4, '/').collect();
            assert_eq!(parts.len(), 4, "use record name {rel}");
            assert_eq!(parts[0], "v1-used");
            format!("{}@{}", parts[3], parts[2])
        })
        .collect();
    out.sort();
    out
}

fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return out;
    };
    for e in rd {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn restore_records_last_use_at_most_once_an_hour() {
    for kind in BOTH {
        let fx = Fixture::new(kind, &format!("prune-lastuse-{}", tag(kind)));
        save_at(&fx, "npm-0000000a", 1000, "2026-03-01T00:00:00Z");
        assert_eq!(
            ls(&fx)["entries"][0]["last_used"],
            Value::Null,
            "{kind:?}: never restored"
        );
        assert!(use_records(&fx).is_empty());
        restore_at(&fx, "npm-0000000a", "2026-03-02T08:05:00Z");
        restore_at(&fx, "npm-0000000a", "2026-03-02T08:55:00Z");
        assert_eq!(
            use_records(&fx),
            ["npm-0000000a@2026030208"],
            "{kind:?}: the second restore in the hour writes nothing"
        );
        let listed = ls(&fx);
        assert_eq!(
            listed["entries"][0]["last_used"], "2026-03-02T09:00:00Z",
            "{kind:?}: a use counts until the end of its hour"
        );
        // A partial hit is a use of the entry it restores.
        let dst = fx.root().join("partial");
        fs::create_dir_all(&dst).unwrap();
        fx.restore("npm-0000000b", &dst)
            .args(["--restore-key", "npm-"])
            .paths(["deps"])
            .env("CACHECTL_NOW", "2026-03-05T12:00:00Z")
            .run()
            .expect(0, "partial");
        // --lookup-only is not a use.
        fx.restore("npm-0000000a", &dst)
            .args(["--lookup-only"])
            .paths(["deps"])
            .env("CACHECTL_NOW", "2026-03-06T12:00:00Z")
            .run()
            .expect(0, "hit");
        assert_eq!(
            use_records(&fx),
            ["npm-0000000a@2026030208", "npm-0000000a@2026030512"]
        );
        assert_eq!(ls(&fx)["entries"][0]["last_used"], "2026-03-05T13:00:00Z");
        // Prune keeps the newest record per entry and drops the older ones.
        let (code, json) = prune(
            &fx,
            &["--as-of", "2026-03-10T00:00:00Z", "--max-unused", "30d"],
        );
        assert_eq!(code, 0, "{json}");
        assert_eq!(json["deleted"], 0);
        assert_eq!(json["use_records_removed"], 1);
        assert_eq!(use_records(&fx), ["npm-0000000a@2026030512"]);
        // And max-unused judges by that use: unused 4d 11h at 03-10, so 4d deletes it.
        let (_, json) = prune(
            &fx,
            &[
                "--as-of",
                "2026-03-10T00:00:00Z",
                "--max-unused",
                "5d",
                "--dry-run",
            ],
        );
        assert_eq!(json["deleted"], 0, "{json}");
        let (_, json) = prune(
            &fx,
            &["--as-of", "2026-03-10T00:00:00Z", "--max-unused", "4d"],
        );
        assert_eq!(deleted_keys(&json), ["npm-0000000a"], "{json}");
        assert!(use_records(&fx).is_empty(), "{kind:?}");
    }
}

#[test]
fn a_use_record_that_cannot_be_written_never_fails_the_restore() {
    let fx = Fixture::new(StoreKind::Local, "prune-norecord");
    save_at(&fx, "npm-0000000f", 1000, "2026-03-01T00:00:00Z");
    // A file where the records' directory should be: every record write fails.
    write(&Path::new(&fx.store).join("v1-used"), b"not a directory");
    let dst = fx.root().join("dst");
    fs::create_dir_all(&dst).unwrap();
    let run = fx
        .restore("npm-0000000f", &dst)
        .paths(["deps"])
        .arg("--verbose")
        .run();
    run.expect(0, "hit");
    assert!(dst.join("deps/blob").is_file());
    // --verbose says why.
    run.assert_stderr_has("last use not recorded");
    let quiet = fx.restore("npm-0000000f", &dst).paths(["deps"]).run();
    quiet.expect(0, "hit");
    assert!(!quiet.stderr.contains("last use"), "{}", quiet.context());
}

/// Plants `n` entries `k<i>` with creation `2026-01-01 + i minutes`, families `f<i % 10>`
/// and a 64-byte body, straight into the store per docs/FORMAT.md.
fn plant(fx: &Fixture, n: usize) {
    let pathset = format::pathset(&["deps"]);
    let created = |i: usize| {
        let t = humantime::parse_rfc3339("2026-01-01T00:00:00Z").unwrap()
            + std::time::Duration::from_secs(60 * i as u64);
        humantime::format_rfc3339_seconds(t).to_string()
    };
    match fx.kind {
        StoreKind::Local => {
            let dir = Path::new(&fx.store).join("v1").join(&pathset);
            fs::create_dir_all(&dir).unwrap();
            for i in 0..n {
                let key = format!("k{i:05}");
                fs::write(dir.join(&key), [7u8; 64]).unwrap();
                let meta = serde_json::json!({
                    "format": 1, "key": key, "paths": ["deps"], "family": format!("f{}", i % 10),
                    "created": created(i), "cachectl": "planted",
                });
                fs::write(dir.join(format!("{key}%meta")), meta.to_string()).unwrap();
            }
        }
        StoreKind::S3 => {
            let objects = (0..n)
                .map(|i| {
                    let key = format!("k{i:05}");
                    let meta = vec![
                        ("cachectl-format".to_owned(), "1".to_owned()),
                        ("cachectl-key".to_owned(), key.clone()),
                        ("cachectl-paths".to_owned(), "%5B%22deps%22%5D".to_owned()),
                        ("cachectl-family".to_owned(), format!("f{}", i % 10)),
                        ("cachectl-created".to_owned(), created(i)),
                        ("cachectl-version".to_owned(), "planted".to_owned()),
                    ];
                    (format!("v1/{pathset}/{key}"), vec![7u8; 64], meta)
                })
                .collect();
            moto::moto().put_many(fx.bucket.as_ref().unwrap(), objects);
        }
    }
}

#[test]
fn prunes_2500_entries_across_pages_and_batches() {
    for kind in BOTH {
        let fx = Fixture::new(kind, &format!("prune-2500-{}", tag(kind)));
        plant(&fx, 2500);
        // At 2,700 minutes in, max-age 1000m takes k00000..k01699: three listing pages, two
        // DeleteObjects batches. keep-last 3 only spares entries that are young anyway.
        let (code, json) = prune(
            &fx,
            &[
                "--as-of",
                "2026-01-02T21:00:00Z",
                "--max-age",
                "1000m",
                "--keep-last",
                "3",
            ],
        );
        assert_eq!(code, 0, "{kind:?}: {}", json["outcome"]);
        assert_eq!(json["scanned"], 2500);
        assert_eq!(json["deleted"], 1700, "{kind:?}");
        assert_eq!(json["store_entries_after"], 800);
        assert_eq!(json["bytes_freed"], 1700 * 64);
        let left: BTreeSet<String> = keys_of(&ls(&fx)).into_iter().collect();
        let want: BTreeSet<String> = (1700..2500).map(|i| format!("k{i:05}")).collect();
        assert_eq!(left, want, "{kind:?}: exactly the 800 newest remain");
        // A second run finds nothing more to do.
        let (code, json) = prune(
            &fx,
            &["--as-of", "2026-01-02T21:00:00Z", "--max-age", "1000m"],
        );
        assert_eq!((code, &json["deleted"]), (0, &Value::from(0)));
    }
}

#[test]
fn keep_last_reads_families_from_metadata() {
    let fx = Fixture::new(StoreKind::S3, "prune-families");
    plant(&fx, 40);
    // Everything is old; keep-last 2 keeps the 2 newest of each of the 10 families.
    let (code, json) = prune(
        &fx,
        &[
            "--as-of",
            "2026-06-01T00:00:00Z",
            "--max-age",
            "1d",
            "--keep-last",
            "2",
        ],
    );
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["deleted"], 20);
    assert_eq!(json["protected"]["keep-last"], 20);
    let left: BTreeSet<String> = keys_of(&ls(&fx)).into_iter().collect();
    let want: BTreeSet<String> = (20..40).map(|i| format!("k{i:05}")).collect();
    assert_eq!(left, want);
    let listed = ls(&fx);
    assert_eq!(listed["entries"][0]["family"], "f0");
    assert_eq!(listed["entries"][0]["paths"], serde_json::json!(["deps"]));
}

#[test]
fn stale_multipart_uploads_are_aborted() {
    let fx = Fixture::new(StoreKind::S3, "prune-uploads");
    let bucket = fx.bucket.as_ref().unwrap();
    let pathset = format::pathset(&["deps"]);
    moto::moto().start_upload(bucket, &format!("v1/{pathset}/npm-killed"));
    assert_eq!(moto::moto().uploads(bucket).len(), 1);
    let (code, json) = prune(&fx, &["--max-age", "30d", "--dry-run"]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["leftovers_removed"], 1, "{json}");
    assert_eq!(
        moto::moto().uploads(bucket).len(),
        1,
        "dry run aborts nothing"
    );
    let (code, json) = prune(&fx, &["--max-age", "30d"]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["leftovers_removed"], 1);
    assert!(
        json["leftovers"][0]["what"]
            .as_str()
            .unwrap()
            .contains("npm-killed"),
        "{json}"
    );
    assert!(moto::moto().uploads(bucket).is_empty());
}

#[test]
fn local_temp_files_are_removed_once_older_than_min_age() {
    let fx = Fixture::new(StoreKind::Local, "prune-temp");
    save_at(&fx, "npm-0000000c", 100, "2026-01-01T00:00:00Z");
    let tmp = Path::new(&fx.store).join("tmp/4242-00000000-0.part");
    write(&tmp, b"half an upload");
    // A sidecar whose archive is gone (a delete interrupted between the two files).
    let orphan = Path::new(&fx.store)
        .join("v1")
        .join(format::pathset(&["deps"]))
        .join("npm-gone%meta");
    write(&orphan, b"{}");
    let (code, json) = prune(&fx, &["--max-age", "3650d"]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["leftovers_removed"], 0, "a save in flight is spared");
    assert!(tmp.exists() && orphan.exists());
    let later = humantime::format_rfc3339_seconds(
        std::time::SystemTime::now() + std::time::Duration::from_secs(2 * 3600),
    )
    .to_string();
    let (code, json) = prune(&fx, &["--max-age", "3650d", "--as-of", &later]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["leftovers_removed"], 2, "{json}");
    assert!(!tmp.exists() && !orphan.exists());
    assert_eq!(keys_of(&ls(&fx)), ["npm-0000000c"], "entries untouched");
}

#[test]
fn a_failed_delete_is_reported_and_the_rest_goes_on() {
    let fx = Fixture::new(StoreKind::Local, "prune-fail");
    save_at(&fx, "npm-0000000d", 100, "2026-01-01T00:00:00Z");
    save_at(&fx, "npm-0000000e", 100, "2026-01-02T00:00:00Z");
    // A directory where npm-d's sidecar should be: unlink fails with EISDIR even for root.
    let meta = fx
        .local_object_path("npm-0000000d")
        .with_file_name("npm-0000000d%meta");
    fs::remove_file(&meta).unwrap();
    fs::create_dir(&meta).unwrap();
    // Without readable metadata npm-d's creation is its file's mtime (now): look from later.
    let later = humantime::format_rfc3339_seconds(
        std::time::SystemTime::now() + std::time::Duration::from_secs(3 * 86400),
    )
    .to_string();
    let run = fx
        .cachectl()
        .args([
            "prune",
            "--store",
            &fx.store,
            "--max-age",
            "1d",
            "--as-of",
            &later,
        ])
        .run();
    run.assert_code(1);
    run.assert_stderr_has("error: delete npm-0000000d");
    run.assert_stderr_has("1 deletion failed");
    assert!(
        keys_of(&ls(&fx)) == Vec::<String>::new(),
        "npm-e was deleted, npm-d's archive too"
    );
}

#[test]
fn prune_reads_rules_from_cachectl_toml_and_flags_override() {
    let fx = Fixture::new(StoreKind::Local, "prune-config");
    january(&fx);
    let cfg = fx.root().join("cachectl.toml");
    write(
        &cfg,
        "[cache.npm]\npreset = \"npm\"\n\n[prune]\nmax-age = \"12d\"\nkeep-last = 1\nmin-age = \"2h\"\n",
    );
    let (code, json) = prune(&fx, &["--dry-run", "--as-of", AS_OF]);
    assert_eq!(code, 0, "{json}");
    assert_eq!(deleted_keys(&json), ["npm-00000001", "npm-00000002"]);
    assert_eq!(json["rules"]["min_age"], "2h");
    let (_, json) = prune(&fx, &["--dry-run", "--as-of", AS_OF, "--keep-last", "0"]);
    assert_eq!(
        deleted_keys(&json),
        ["npm-00000001", "npm-00000002", "pip-00000001"],
        "the flag overrides the file"
    );

    write(&cfg, "[prune]\nmax-agee = \"12d\"\n");
    let run = fx.cachectl().args(["prune", "--store", &fx.store]).run();
    run.assert_code(1);
    run.assert_stderr_has("unknown key `max-agee` in [prune]");
    fs::remove_file(&cfg).unwrap();
    let run = fx
        .cachectl()
        .args(["prune", "--store", &fx.store, "--keep-last", "3"])
        .run();
    run.assert_code(2);
    run.assert_stderr_has("prune has no rule that deletes anything");
    let run = fx
        .cachectl()
        .args(["prune", "--store", &fx.store, "--max-total-size", "10G"])
        .run();
    run.assert_code(2);
    run.assert_stderr_has("not a size like 500MiB");
    assert_eq!(
        ls(&fx)["total_entries"],
        5,
        "nothing deleted by failed runs"
    );
}

#[test]
fn ls_shows_entries_and_rm_drops_them() {
    for kind in BOTH {
        let fx = Fixture::new(kind, &format!("prune-rm-{}", tag(kind)));
        january(&fx);
        // The same key under a second path set.
        let src = fx.root().join("src-other");
        write(&src.join("other/x"), b"x");
        fx.save("npm-00000002", &src)
            .paths(["other"])
            .env("CACHECTL_NOW", "2026-01-06T00:00:00Z")
            .run()
            .expect(0, "saved");

        let run = fx
            .cachectl()
            .args(["ls", "--store", &fx.store, "npm-"])
            .env("CACHECTL_NOW", AS_OF)
            .run();
        run.assert_code(0);
        let lines: Vec<&str> = run.stdout.lines().collect();
        assert_eq!(lines.len(), 6, "header + 5 npm entries\n{}", run.context());
        assert!(lines[0].starts_with("KEY"), "{}", run.context());
        assert!(
            lines[1].starts_with("npm-00000001")
                && lines[1].contains("19d ago")
                && lines[1].contains("deps"),
            "{}",
            run.context()
        );
        assert!(lines[2].contains("never"), "{}", run.context());

        // Dry run first: nothing goes.
        let run = fx
            .cachectl()
            .args([
                "rm",
                "--json",
                "--store",
                &fx.store,
                "--prefix",
                "npm-0000000",
                "--dry-run",
            ])
            .run();
        run.assert_code(0);
        assert_eq!(run.json()["deleted"].as_array().unwrap().len(), 5);
        assert_eq!(ls(&fx)["total_entries"], 6);

        // rm KEY takes every path set of that key; an unknown key fails the command but not
        // the others.
        let run = fx
            .cachectl()
            .args([
                "rm",
                "--json",
                "--store",
                &fx.store,
                "npm-00000002",
                "npm-00000001",
                "npm-nope",
            ])
            .run();
        run.assert_code(1);
        let json = run.json();
        assert_eq!(json["deleted"].as_array().unwrap().len(), 3, "{json}");
        assert_eq!(json["not_found"], serde_json::json!(["npm-nope"]));
        run.assert_stderr_has("no entry with key `npm-nope`");
        assert_eq!(
            keys_of(&ls(&fx)),
            ["npm-00000003", "npm-00000004", "pip-00000001"]
        );
        assert_eq!(
            use_records(&fx),
            ["npm-00000004@2026011610"],
            "npm-1's record went too"
        );

        let run = fx
            .cachectl()
            .args(["rm", "--store", &fx.store, "--prefix", "npm-"])
            .run();
        run.assert_code(0);
        run.assert_stderr_has("deleted 2 entries");
        assert_eq!(keys_of(&ls(&fx)), ["pip-00000001"]);
        assert!(use_records(&fx).is_empty());
    }
}

#[test]
fn prune_publishes_store_metrics() {
    use crate::support::cloudwatch;
    let fx = Fixture::new(StoreKind::Local, "prune-metrics");
    january(&fx);
    let namespace = "CachectlPruneTest";
    let run = fx
        .cachectl()
        .args([
            "prune",
            "--store",
            &fx.store,
            "--as-of",
            AS_OF,
            "--max-age",
            "12d",
        ])
        .args(["--metrics-namespace", namespace])
        .env_remove("CACHECTL_NO_METRICS")
        .env("AWS_ENDPOINT_URL_CLOUDWATCH", cloudwatch::bridge())
        .run();
    run.assert_code(0);
    let client = cloudwatch::client();
    let listed = cloudwatch::RUNTIME
        .block_on(client.list_metrics().namespace(namespace).send())
        .expect("list metrics");
    let mut names: Vec<String> = listed
        .metrics()
        .iter()
        .filter(|m| {
            m.dimensions()
                .iter()
                .any(|d| d.name() == Some("Store") && d.value() == Some(fx.store.as_str()))
        })
        .filter_map(|m| m.metric_name().map(str::to_owned))
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["PrunedBytes", "PrunedEntries", "StoreBytes", "StoreEntries"],
        "{}",
        run.context()
    );
}

/// A loopback S3 look-alike with an empty bucket and no ListMultipartUploads, like s3s-fs:
/// answers ListObjectsV2 with an empty page and `?uploads` with 501 NotImplemented. Returns its
/// endpoint; the server lives until the test process ends.
fn server_without_upload_listing() -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut conn = conn;
                loop {
                    let mut request = String::new();
                    if reader.read_line(&mut request).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut body_len = 0usize;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some((k, v)) = line.split_once(':') {
                            if k.eq_ignore_ascii_case("content-length") {
                                body_len = v.trim().parse().unwrap_or(0);
                            }
                        }
                    }
                    let mut body = vec![0; body_len];
                    let _ = reader.read_exact(&mut body);
                    let target = request.split(' ').nth(1).unwrap_or_default();
                    let (status, xml) = if target.contains("?uploads") {
                        (
                            "501 Not Implemented",
                            "<Error><Code>NotImplemented</Code><Message>ListMultipartUploads is not implemented yet</Message></Error>".to_owned(),
                        )
                    } else {
                        (
                            "200 OK",
                            "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>b</Name><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>".to_owned(),
                        )
                    };
                    let xml = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>{xml}");
                    let answer = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{xml}",
                        xml.len()
                    );
                    if conn.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    endpoint
}

#[test]
fn a_server_without_upload_listing_gets_a_warning_not_a_failed_prune() {
    let fx = Fixture::s3_at(&server_without_upload_listing(), "plain-bucket");
    let run = fx
        .cachectl()
        .args(["prune", "--json", "--store", &fx.store, "--max-age", "30d"])
        .run();
    run.assert_code(0);
    let json = run.json();
    assert_eq!(json["outcome"], "ok", "{}", run.context());
    assert_eq!(json["scanned"], 0);
    let warnings = json["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{}", run.context());
    assert!(
        warnings[0]
            .as_str()
            .unwrap()
            .contains("does not implement ListMultipartUploads"),
        "{}",
        run.context()
    );
    let human = fx
        .cachectl()
        .args(["prune", "--store", &fx.store, "--max-age", "30d"])
        .run();
    human
        .assert_code(0)
        .assert_stderr_has("warning: prune:")
        .assert_stderr_has("ListMultipartUploads");
}
