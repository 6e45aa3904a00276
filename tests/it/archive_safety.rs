//! Restore of objects that are corrupt or hostile: outcome `error` (never a hit), exit 0 (1 with
//! `--strict`), nothing written outside the restore paths, and nothing moved into them either.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::store::{save_tagged, small_tree};
use crate::support::format::{RawTar, FOOTER_BYTES};
use crate::support::tree::Prng;
use crate::support::{find_named, for_each_store, list_dir, write, Fixture};

for_each_store!(
    corrupted_object_byte_flip_is_error_not_hit,
    truncated_object_is_error_not_hit,
    object_without_footer_is_error_not_hit,
    hostile_dotdot_entry_is_refused,
    hostile_absolute_entry_is_refused,
    hostile_entry_through_absolute_archive_symlink_is_refused,
    hostile_entry_through_relative_archive_symlink_is_refused,
    hostile_entry_through_symlink_to_a_sibling_path_is_refused,
    hostile_entry_through_root_symlink_is_refused,
    hostile_hardlink_to_absolute_path_is_refused,
    hostile_hardlink_climbing_out_is_refused,
    hostile_hardlink_to_a_name_not_in_the_archive_is_refused,
    hostile_unknown_path_index_is_refused,
);

/// Saves `key` for `deps`, then swaps its object for `mutate(object)`. Returns the cwd to
/// restore into: `<sandbox>/deep/a/b/work`, so `../..` stays inside the sandbox.
fn saved_then_replaced(f: &Fixture, key: &str, mutate: impl FnOnce(Vec<u8>) -> Vec<u8>) -> PathBuf {
    let src = f.dir("src");
    let deps = src.join("deps");
    small_tree(&deps, "legit");
    // Enough incompressible data that the middle of the object is inside the zstd frames.
    write(&deps.join("random.bin"), Prng::new(3).bytes(256 * 1024));
    f.save(key, &src).paths(["deps"]).run().expect(0, "saved");
    let object = f.read_object(key);
    f.replace_object(key, &mutate(object));
    f.dir("deep/a/b/work")
}

/// Restore of `key` must report an error, without and with `--strict`, and leave `cwd` empty.
fn assert_refused(f: &Fixture, key: &str, cwd: &Path) {
    let run = f.restore(key, cwd).paths(["deps"]).run();
    let json = run.expect(0, "error");
    assert!(json["matched_key"].is_null(), "{}", run.context());
    eprintln!("[refused] {key}: {}", json["message"]);
    assert!(
        !run.stderr.trim().is_empty(),
        "no warning on stderr\n{}",
        run.context()
    );
    assert_eq!(list_dir(cwd), Vec::<String>::new(), "{}", run.context());

    let strict = f.restore(key, cwd).paths(["deps"]).arg("--strict").run();
    strict.expect(1, "error");
    assert_eq!(list_dir(cwd), Vec::<String>::new(), "{}", strict.context());
}

fn assert_no_escape(f: &Fixture, name: &str) {
    let found = find_named(f.root(), name);
    assert!(found.is_empty(), "a hostile entry was written: {found:?}");
}

fn corrupted_object_byte_flip_is_error_not_hit(f: Fixture) {
    let cwd = saved_then_replaced(&f, "flip", |mut object| {
        let middle = object.len() / 2;
        object[middle] ^= 0xff;
        object
    });
    assert_refused(&f, "flip", &cwd);
}

fn truncated_object_is_error_not_hit(f: Fixture) {
    let cwd = saved_then_replaced(&f, "truncated", |mut object| {
        object.truncate(object.len() / 2);
        object
    });
    assert_refused(&f, "truncated", &cwd);
}

fn object_without_footer_is_error_not_hit(f: Fixture) {
    let cwd = saved_then_replaced(&f, "no-footer", |mut object| {
        object.truncate(object.len() - FOOTER_BYTES);
        object
    });
    assert_refused(&f, "no-footer", &cwd);
}

fn hostile_dotdot_entry_is_refused(f: Fixture) {
    let object = RawTar::new()
        .dir("0/")
        .file("0/ok.txt", b"ok\n")
        .file("0/../../escape.txt", b"escaped\n")
        .object();
    let cwd = saved_then_replaced(&f, "dotdot", |_| object);
    assert_refused(&f, "dotdot", &cwd);
    assert_no_escape(&f, "escape.txt");
    assert_no_escape(&f, "ok.txt");
}

fn hostile_absolute_entry_is_refused(f: Fixture) {
    let target = f.root().join("abs-escape.txt");
    let name = target.to_str().unwrap().to_owned();
    let object = RawTar::new()
        .dir("0/")
        .file("0/ok.txt", b"ok\n")
        .file(&name, b"escaped\n")
        .object();
    let cwd = saved_then_replaced(&f, "absolute", |_| object);
    assert_refused(&f, "absolute", &cwd);
    assert!(!target.exists());
    assert_no_escape(&f, "abs-escape.txt");
}

fn hostile_entry_through_absolute_archive_symlink_is_refused(f: Fixture) {
    let outside = f.dir("outside");
    let object = RawTar::new()
        .dir("0/")
        .symlink("0/abs", outside.to_str().unwrap())
        .file("0/abs/escape.txt", b"escaped\n")
        .object();
    let cwd = saved_then_replaced(&f, "through-abs-link", |_| object);
    assert_refused(&f, "through-abs-link", &cwd);
    assert_eq!(list_dir(&outside), Vec::<String>::new());
    assert_no_escape(&f, "escape.txt");
}

fn hostile_entry_through_relative_archive_symlink_is_refused(f: Fixture) {
    // From <cwd>/deps (or a staging dir beside it), five `..` reach the sandbox root.
    let outside = f.dir("outside");
    let object = RawTar::new()
        .dir("0/")
        .symlink("0/up", "../../../../../outside")
        .file("0/up/escape.txt", b"escaped\n")
        .object();
    let cwd = saved_then_replaced(&f, "through-rel-link", |_| object);
    assert_refused(&f, "through-rel-link", &cwd);
    assert_eq!(list_dir(&outside), Vec::<String>::new());
    assert_no_escape(&f, "escape.txt");
}

fn hostile_entry_through_symlink_to_a_sibling_path_is_refused(f: Fixture) {
    // The link stays inside the archive's own tree, but writing through it is still refused:
    // the rule is about symlinks, not only escapes.
    let object = RawTar::new()
        .dir("0/")
        .dir("0/real/")
        .symlink("0/alias", "real")
        .file("0/alias/escape.txt", b"through an inside link\n")
        .object();
    let cwd = saved_then_replaced(&f, "inside-link", |_| object);
    assert_refused(&f, "inside-link", &cwd);
    assert_no_escape(&f, "escape.txt");
}

fn hostile_entry_through_root_symlink_is_refused(f: Fixture) {
    let outside = f.dir("outside");
    let object = RawTar::new()
        .symlink("0", outside.to_str().unwrap())
        .file("0/escape.txt", b"escaped\n")
        .object();
    let cwd = saved_then_replaced(&f, "root-link", |_| object);
    assert_refused(&f, "root-link", &cwd);
    assert_eq!(list_dir(&outside), Vec::<String>::new());
    assert_no_escape(&f, "escape.txt");
}

/// A secret outside the restore paths, which hard links must not reach.
fn secret(f: &Fixture) -> PathBuf {
    let secret = f.root().join("secret.txt");
    write(&secret, "secret\n");
    secret
}

fn assert_secret_untouched(secret: &Path) {
    assert_eq!(
        fs::metadata(secret).unwrap().nlink(),
        1,
        "secret.txt got a hard link"
    );
    assert_eq!(fs::read_to_string(secret).unwrap(), "secret\n");
}

fn hostile_hardlink_to_absolute_path_is_refused(f: Fixture) {
    let secret = secret(&f);
    let object = RawTar::new()
        .dir("0/")
        .hardlink("0/link", secret.to_str().unwrap())
        .object();
    let cwd = saved_then_replaced(&f, "hardlink-abs", |_| object);
    assert_refused(&f, "hardlink-abs", &cwd);
    assert_secret_untouched(&secret);
}

fn hostile_hardlink_climbing_out_is_refused(f: Fixture) {
    let secret = secret(&f);
    let object = RawTar::new()
        .dir("0/")
        .hardlink("0/link", "0/../../../../../secret.txt")
        .object();
    let cwd = saved_then_replaced(&f, "hardlink-rel", |_| object);
    assert_refused(&f, "hardlink-rel", &cwd);
    assert_secret_untouched(&secret);
}

fn hostile_hardlink_to_a_name_not_in_the_archive_is_refused(f: Fixture) {
    // `0/existing.txt` is not in the archive, but a file of that name may exist at the
    // destination: linking to it would graft an outside inode into the cache.
    let object = RawTar::new()
        .dir("0/")
        .hardlink("0/link", "0/existing.txt")
        .object();
    let cwd = saved_then_replaced(&f, "hardlink-missing", |_| object);
    assert_refused(&f, "hardlink-missing", &cwd);
}

fn hostile_unknown_path_index_is_refused(f: Fixture) {
    let object = RawTar::new()
        .dir("0/")
        .file("0/ok.txt", b"ok\n")
        .dir("1/")
        .file("1/escape.txt", b"index 1 of a one-path set\n")
        .object();
    let cwd = saved_then_replaced(&f, "bad-index", |_| object);
    assert_refused(&f, "bad-index", &cwd);
    assert_no_escape(&f, "escape.txt");
}

#[test]
fn hostile_entry_keeps_an_existing_destination_untouched() {
    let f = Fixture::new(crate::support::StoreKind::Local, "hostile-existing-dest");
    let src = f.dir("src");
    save_tagged(&f, &src, "existing", "legit");
    let object = RawTar::new()
        .dir("0/")
        .file("0/a.txt", b"overwritten\n")
        .file("0/../escape.txt", b"escaped\n")
        .object();
    f.replace_object("existing", &object);

    // The destination already holds a tree: a refused archive must leave it as it was.
    let cwd = f.dir("deep/a/b/work");
    small_tree(&cwd.join("deps"), "before");
    let before = crate::support::tree::snapshot(&cwd.join("deps"));
    let run = f.restore("existing", &cwd).paths(["deps"]).run();
    run.expect(0, "error");
    crate::support::tree::assert_same_tree(&before, &cwd.join("deps"));
    assert_eq!(list_dir(&cwd), ["deps"], "{}", run.context());
    assert_no_escape(&f, "escape.txt");
}
