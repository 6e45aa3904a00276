//! Store conformance: every behaviour of save and restore, run once on a local directory store
//! and once on moto S3 (`<test>::local`, `<test>::s3`).

use std::fs;
use std::path::Path;
use std::thread;
use std::time::Duration;

use serde_json::Value;

use crate::support::tree::{self, TreeOptions};
use crate::support::{for_each_store, list_dir, write, Fixture, Run};

for_each_store!(
    round_trip_of_generated_tree_with_big_file_relative_path,
    round_trip_of_generated_tree_via_home_path,
    round_trip_of_absolute_path,
    round_trip_of_single_file_path,
    two_paths_restore_to_their_own_places,
    parent_relative_path_round_trip,
    partial_hit_takes_newest_matching_key,
    restore_keys_are_tried_in_order,
    exact_key_beats_restore_keys,
    miss_exits_zero_and_creates_nothing,
    fail_on_miss_exits_one,
    resave_is_skipped_and_overwrite_replaces,
    different_path_set_is_a_different_entry,
    equivalent_path_spellings_share_an_entry,
    lookup_only_reports_and_writes_nothing,
    save_of_missing_path_is_skipped,
    invalid_keys_are_usage_errors,
    valid_keys_at_the_limits_round_trip,
);

/// Two files in two dirs whose contents name `tag`.
pub fn small_tree(dir: &Path, tag: &str) {
    write(&dir.join("a.txt"), format!("{tag} a\n"));
    write(&dir.join("sub/b.txt"), format!("{tag} b\n"));
}

pub fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Replaces `<cwd>/deps` with a small tree tagged `tag` and saves it as `key`.
pub fn save_tagged(f: &Fixture, cwd: &Path, key: &str, tag: &str) {
    let deps = cwd.join("deps");
    if deps.exists() {
        fs::remove_dir_all(&deps).unwrap();
    }
    small_tree(&deps, tag);
    f.save(key, cwd).paths(["deps"]).run().expect(0, "saved");
}

/// Entry times (S3 LastModified, RFC 3339 `created`) may have one-second resolution.
pub fn wait_for_a_newer_timestamp() {
    thread::sleep(Duration::from_millis(1100));
}

fn count(run: &Run, json: &Value, field: &str) -> u64 {
    json[field]
        .as_u64()
        .unwrap_or_else(|| panic!("`{field}` missing\n{}", run.context()))
}

fn assert_counts_positive(run: &Run, json: &Value) {
    for field in ["bytes", "files"] {
        assert!(
            count(run, json, field) > 0,
            "`{field}` is 0\n{}",
            run.context()
        );
    }
}

pub fn assert_matched(run: &Run, json: &Value, key: &str) {
    assert_eq!(
        json["matched_key"].as_str(),
        Some(key),
        "matched_key\n{}",
        run.context()
    );
}

fn assert_empty(dir: &Path, why: &str) {
    let entries = list_dir(dir);
    assert!(
        entries.is_empty(),
        "{why}: {} holds {entries:?}",
        dir.display()
    );
}

fn timing(f: &Fixture, what: &str, run: &Run) {
    eprintln!("[timing] {:?} {what}: {:.2?}", f.kind, run.elapsed);
}

fn round_trip_of_generated_tree_with_big_file_relative_path(f: Fixture) {
    let src = f.dir("src");
    let options = TreeOptions {
        big_file: true,
        ..TreeOptions::default()
    };
    tree::generate(&src.join("node_modules"), options);
    let saved = tree::snapshot(&src.join("node_modules"));

    let save = f.save("rt-big", &src).paths(["node_modules"]).run();
    let json = save.expect(0, "saved");
    assert_counts_positive(&save, &json);
    assert_eq!(json["key"], "rt-big");
    timing(&f, "save of the 50 MB tree", &save);
    // Save reads; it must not change the tree (no following links, no touching).
    tree::assert_same_tree(&saved, &src.join("node_modules"));

    let dst = f.dir("dst");
    let restore = f.restore("rt-big", &dst).paths(["node_modules"]).run();
    let json = restore.expect(0, "hit");
    assert_matched(&restore, &json, "rt-big");
    assert_counts_positive(&restore, &json);
    timing(&f, "restore of the 50 MB tree", &restore);
    tree::assert_same_tree(
        &tree::expected_after_restore(&saved),
        &dst.join("node_modules"),
    );
    assert_eq!(
        list_dir(&dst),
        ["node_modules"],
        "leftovers next to the restore"
    );
}

fn round_trip_of_generated_tree_via_home_path(f: Fixture) {
    let home1 = f.dir("home1");
    tree::generate(&home1.join("deps"), TreeOptions::default());
    let saved = tree::snapshot(&home1.join("deps"));
    let save = f
        .save("rt-home", &f.dir("cwd1"))
        .home(&home1)
        .paths(["~/deps"])
        .run();
    assert_counts_positive(&save, &save.expect(0, "saved"));

    // Another machine: another HOME, another cwd.
    let home2 = f.dir("home2");
    let cwd2 = f.dir("cwd2");
    let restore = f
        .restore("rt-home", &cwd2)
        .home(&home2)
        .paths(["~/deps"])
        .run();
    let json = restore.expect(0, "hit");
    assert_matched(&restore, &json, "rt-home");
    assert_counts_positive(&restore, &json);
    tree::assert_same_tree(&tree::expected_after_restore(&saved), &home2.join("deps"));
    assert_empty(&cwd2, "a ~ path restored into the cwd");
}

fn round_trip_of_absolute_path(f: Fixture) {
    let target = f.root().join("abs/tree");
    tree::generate(&target, TreeOptions::default());
    let saved = tree::snapshot(&target);
    let path = target.to_str().unwrap();
    f.save("rt-abs", &f.dir("cwd1"))
        .paths([path])
        .run()
        .expect(0, "saved");
    fs::remove_dir_all(&target).unwrap();

    let cwd2 = f.dir("cwd2");
    let restore = f.restore("rt-abs", &cwd2).paths([path]).run();
    assert_matched(&restore, &restore.expect(0, "hit"), "rt-abs");
    tree::assert_same_tree(&tree::expected_after_restore(&saved), &target);
    assert_empty(&cwd2, "an absolute path restored into the cwd");
}

fn round_trip_of_single_file_path(f: Fixture) {
    use std::os::unix::fs::PermissionsExt;
    let src = f.dir("src");
    let lock = src.join("Cargo.lock");
    write(&lock, "# a lockfile\n");
    fs::set_permissions(&lock, fs::Permissions::from_mode(0o640)).unwrap();
    filetime::set_file_mtime(&lock, filetime::FileTime::from_unix_time(1_234_567_890, 0)).unwrap();
    let saved = tree::snapshot(&lock);
    f.save("rt-file", &src)
        .paths(["Cargo.lock"])
        .run()
        .expect(0, "saved");

    let dst = f.dir("dst");
    let restore = f.restore("rt-file", &dst).paths(["Cargo.lock"]).run();
    restore.expect(0, "hit");
    tree::assert_same_tree(&saved, &dst.join("Cargo.lock"));
    assert_eq!(list_dir(&dst), ["Cargo.lock"]);
}

fn two_paths_restore_to_their_own_places(f: Fixture) {
    let (cwd1, home1) = (f.dir("cwd1"), f.dir("home1"));
    small_tree(&cwd1.join("node_modules"), "node_modules");
    small_tree(&home1.join(".npm"), "npm");
    let nm = tree::snapshot(&cwd1.join("node_modules"));
    let npm = tree::snapshot(&home1.join(".npm"));
    f.save("two-paths", &cwd1)
        .home(&home1)
        .paths(["node_modules", "~/.npm"])
        .run()
        .expect(0, "saved");

    let (cwd2, home2) = (f.dir("cwd2"), f.dir("home2"));
    let restore = f
        .restore("two-paths", &cwd2)
        .home(&home2)
        .paths(["node_modules", "~/.npm"])
        .run();
    restore.expect(0, "hit");
    tree::assert_same_tree(&nm, &cwd2.join("node_modules"));
    tree::assert_same_tree(&npm, &home2.join(".npm"));
    assert_eq!(list_dir(&cwd2), ["node_modules"]);
    assert!(!home2.join("node_modules").exists());
}

fn parent_relative_path_round_trip(f: Fixture) {
    let work1 = f.dir("one/work");
    small_tree(&f.root().join("one/shared"), "shared");
    let saved = tree::snapshot(&f.root().join("one/shared"));
    f.save("parent-rel", &work1)
        .paths(["../shared"])
        .run()
        .expect(0, "saved");

    let work2 = f.dir("two/work");
    f.restore("parent-rel", &work2)
        .paths(["../shared"])
        .run()
        .expect(0, "hit");
    tree::assert_same_tree(&saved, &f.root().join("two/shared"));
    assert_empty(&work2, "../shared restored into the cwd");
}

fn partial_hit_takes_newest_matching_key(f: Fixture) {
    let src = f.dir("src");
    save_tagged(&f, &src, "k-aaa", "older");
    wait_for_a_newer_timestamp();
    save_tagged(&f, &src, "k-bbb", "newer");

    let dst = f.dir("dst");
    let restore = f
        .restore("k-zzz", &dst)
        .paths(["deps"])
        .args(["--restore-key", "k-"])
        .run();
    let json = restore.expect(0, "partial");
    assert_matched(&restore, &json, "k-bbb");
    assert_eq!(json["key"], "k-zzz");
    assert_counts_positive(&restore, &json);
    assert_eq!(read(&dst.join("deps/a.txt")), "newer a\n");

    // Newest, not greatest: here the newer entry sorts first.
    save_tagged(&f, &src, "n-bbb", "n-older");
    wait_for_a_newer_timestamp();
    save_tagged(&f, &src, "n-aaa", "n-newer");
    let dst = f.dir("dst2");
    let restore = f
        .restore("n-zzz", &dst)
        .paths(["deps"])
        .args(["--restore-key", "n-"])
        .run();
    assert_matched(&restore, &restore.expect(0, "partial"), "n-aaa");
    assert_eq!(read(&dst.join("deps/a.txt")), "n-newer a\n");
}

fn restore_keys_are_tried_in_order(f: Fixture) {
    let src = f.dir("src");
    save_tagged(&f, &src, "first-1", "first");
    wait_for_a_newer_timestamp();
    save_tagged(&f, &src, "second-1", "second");

    let dst = f.dir("dst");
    let restore = f
        .restore("zzz", &dst)
        .paths(["deps"])
        .args(["--restore-key", "nomatch-"])
        .args(["--restore-key", "first-"])
        .args(["--restore-key", "second-"])
        .run();
    assert_matched(&restore, &restore.expect(0, "partial"), "first-1");
    assert_eq!(read(&dst.join("deps/a.txt")), "first a\n");

    let dst = f.dir("dst2");
    let restore = f
        .restore("zzz", &dst)
        .paths(["deps"])
        .args(["--restore-key", "second-", "--restore-key", "first-"])
        .run();
    assert_matched(&restore, &restore.expect(0, "partial"), "second-1");
    assert_eq!(read(&dst.join("deps/a.txt")), "second a\n");
}

fn exact_key_beats_restore_keys(f: Fixture) {
    let src = f.dir("src");
    save_tagged(&f, &src, "k-aaa", "exact");
    wait_for_a_newer_timestamp();
    save_tagged(&f, &src, "k-bbb", "newer");

    let dst = f.dir("dst");
    let restore = f
        .restore("k-aaa", &dst)
        .paths(["deps"])
        .args(["--restore-key", "k-"])
        .run();
    assert_matched(&restore, &restore.expect(0, "hit"), "k-aaa");
    assert_eq!(read(&dst.join("deps/a.txt")), "exact a\n");
}

fn miss_exits_zero_and_creates_nothing(f: Fixture) {
    let src = f.dir("src");
    save_tagged(&f, &src, "present", "present");

    let dst = f.dir("dst");
    let restore = f.restore("absent", &dst).paths(["deps"]).run();
    let json = restore.expect(0, "miss");
    assert_eq!(json["key"], "absent");
    assert_empty(&dst, "a miss");

    let restore = f
        .restore("absent", &dst)
        .paths(["deps"])
        .args(["--restore-key", "abs", "--restore-key", "pres-"])
        .run();
    restore.expect(0, "miss");
    assert_empty(&dst, "a miss with restore keys");
}

fn fail_on_miss_exits_one(f: Fixture) {
    let src = f.dir("src");
    save_tagged(&f, &src, "present", "present");

    let dst = f.dir("dst");
    let restore = f
        .restore("absent", &dst)
        .paths(["deps"])
        .arg("--fail-on-miss")
        .run();
    restore.expect(1, "miss");
    assert_empty(&dst, "a miss");

    let restore = f
        .restore("present", &dst)
        .paths(["deps"])
        .arg("--fail-on-miss")
        .run();
    restore.expect(0, "hit");
    let restore = f
        .restore("absent", &f.dir("dst2"))
        .paths(["deps"])
        .args(["--fail-on-miss", "--restore-key", "pres"])
        .run();
    restore.expect(0, "partial");
}

fn resave_is_skipped_and_overwrite_replaces(f: Fixture) {
    let src = f.dir("src");
    save_tagged(&f, &src, "resave", "first");
    let object = f.read_object("resave");

    small_tree(&src.join("deps"), "second");
    let save = f.save("resave", &src).paths(["deps"]).run();
    let json = save.expect(0, "skipped");
    let reason = json["reason"].as_str().unwrap_or_default().to_lowercase();
    assert!(
        reason.contains("exist"),
        "reason {reason:?}\n{}",
        save.context()
    );
    assert_eq!(
        f.read_object("resave"),
        object,
        "a skipped save changed the object"
    );

    let dst = f.dir("dst1");
    f.restore("resave", &dst)
        .paths(["deps"])
        .run()
        .expect(0, "hit");
    assert_eq!(read(&dst.join("deps/a.txt")), "first a\n");

    let save = f
        .save("resave", &src)
        .paths(["deps"])
        .arg("--overwrite")
        .run();
    assert_counts_positive(&save, &save.expect(0, "saved"));
    let dst = f.dir("dst2");
    f.restore("resave", &dst)
        .paths(["deps"])
        .run()
        .expect(0, "hit");
    assert_eq!(read(&dst.join("deps/a.txt")), "second a\n");
    assert_eq!(read(&dst.join("deps/sub/b.txt")), "second b\n");
}

fn different_path_set_is_a_different_entry(f: Fixture) {
    let src = f.dir("src");
    small_tree(&src.join("a"), "tree a");
    small_tree(&src.join("b"), "tree b");
    f.save("paths", &src).paths(["a"]).run().expect(0, "saved");

    let dst = f.dir("dst");
    f.restore("paths", &dst)
        .paths(["b"])
        .run()
        .expect(0, "miss");
    f.restore("paths", &dst)
        .paths(["a", "b"])
        .run()
        .expect(0, "miss");
    f.restore("paths", &dst)
        .paths(["b"])
        .args(["--restore-key", "pa"])
        .run()
        .expect(0, "miss");
    assert_empty(&dst, "a miss");

    // The same key with another path set is another entry: saved, not skipped.
    f.save("paths", &src).paths(["b"]).run().expect(0, "saved");
    f.restore("paths", &dst).paths(["a"]).run().expect(0, "hit");
    f.restore("paths", &dst).paths(["b"]).run().expect(0, "hit");
    assert_eq!(read(&dst.join("a/a.txt")), "tree a a\n");
    assert_eq!(read(&dst.join("b/a.txt")), "tree b a\n");
}

fn equivalent_path_spellings_share_an_entry(f: Fixture) {
    let (cwd1, home1) = (f.dir("cwd1"), f.dir("home1"));
    small_tree(&cwd1.join("deps"), "deps");
    small_tree(&home1.join(".npm"), "npm");
    f.save("spellings", &cwd1)
        .home(&home1)
        .paths(["deps", "~/.npm"])
        .run()
        .expect(0, "saved");
    let save = f
        .save("spellings", &cwd1)
        .home(&home1)
        .paths(["./deps/", "~//.npm/.", "deps"])
        .run();
    save.expect(0, "skipped");

    let (cwd2, home2) = (f.dir("cwd2"), f.dir("home2"));
    let restore = f
        .restore("spellings", &cwd2)
        .home(&home2)
        .paths(["~/.npm/", "x/../deps"])
        .run();
    restore.expect(0, "hit");
    assert_eq!(read(&cwd2.join("deps/a.txt")), "deps a\n");
    assert_eq!(read(&home2.join(".npm/a.txt")), "npm a\n");
}

fn lookup_only_reports_and_writes_nothing(f: Fixture) {
    let src = f.dir("src");
    save_tagged(&f, &src, "look-1", "look");
    let dst = f.dir("dst");

    let run = f
        .restore("look-1", &dst)
        .paths(["deps"])
        .arg("--lookup-only")
        .run();
    assert_matched(&run, &run.expect(0, "hit"), "look-1");
    assert_empty(&dst, "--lookup-only on a hit");

    let run = f
        .restore("look-2", &dst)
        .paths(["deps"])
        .args(["--lookup-only", "--restore-key", "look-"])
        .run();
    assert_matched(&run, &run.expect(0, "partial"), "look-1");
    assert_empty(&dst, "--lookup-only on a partial hit");

    let run = f
        .restore("nope", &dst)
        .paths(["deps"])
        .arg("--lookup-only")
        .run();
    run.expect(0, "miss");
    assert_empty(&dst, "--lookup-only on a miss");
}

fn save_of_missing_path_is_skipped(f: Fixture) {
    let src = f.dir("src");
    let save = f.save("missing", &src).paths(["does-not-exist"]).run();
    let json = save.expect(0, "skipped");
    let reason = json["reason"].as_str().unwrap_or_default();
    assert!(!reason.trim().is_empty(), "no reason\n{}", save.context());
    assert_empty(&src, "a save of a missing path");

    let dst = f.dir("dst");
    f.restore("missing", &dst)
        .paths(["does-not-exist"])
        .run()
        .expect(0, "miss");
    assert_empty(&dst, "a miss");
}

fn invalid_keys_are_usage_errors(f: Fixture) {
    let src = f.dir("src");
    small_tree(&src.join("deps"), "deps");
    let too_long = "k".repeat(251);
    let too_long_utf8 = "é".repeat(126); // 126 characters, 252 bytes
    let cases: [(&str, &str, &[&str]); 6] = [
        ("empty", "", &["empty", "required"]),
        ("251 bytes", &too_long, &["250", "long"]),
        ("252 bytes in 126 chars", &too_long_utf8, &["250", "long"]),
        ("U+0001", "a\u{1}b", &["control"]),
        ("newline", "a\nb", &["control"]),
        ("DEL", "a\u{7f}b", &["control"]),
    ];
    for (case, key, hints) in cases {
        for command in ["save", "restore"] {
            let run = match command {
                "save" => f.save(key, &src).paths(["deps"]).run(),
                _ => f.restore(key, &src).paths(["deps"]).run(),
            };
            let stderr = run.stderr.to_lowercase();
            assert!(
                run.code == Some(2)
                    && stderr.contains("key")
                    && hints.iter().any(|h| stderr.contains(h)),
                "{command} with an invalid key ({case}) must exit 2 and say why \
                 (stderr mentioning `key` and one of {hints:?})\n{}",
                run.context()
            );
        }
    }
    let dst = f.dir("dst");
    assert_empty(&dst, "invalid keys");
}

fn valid_keys_at_the_limits_round_trip(f: Fixture) {
    let src = f.dir("src");
    small_tree(&src.join("deps"), "limits");
    for key in [
        "k".repeat(250),
        "é".repeat(125),
        "npm-linux/x64 ünï %2F.lock".to_owned(),
        ".leading-dot".to_owned(),
    ] {
        let save = f.save(&key, &src).paths(["deps"]).run();
        assert_eq!(save.expect(0, "saved")["key"].as_str(), Some(key.as_str()));
        let dst = f.dir(&format!("dst-{}", blake3::hash(key.as_bytes()).to_hex()));
        let restore = f.restore(&key, &dst).paths(["deps"]).run();
        assert_matched(&restore, &restore.expect(0, "hit"), &key);
        assert_eq!(read(&dst.join("deps/a.txt")), "limits a\n");
    }
}
