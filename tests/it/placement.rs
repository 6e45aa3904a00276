//! What a restore does to a destination that already exists (issue 11, items 12, 15, 16):
//! by default it becomes exactly the cached tree, swapped in atomically, so a restore killed at
//! any instant leaves the old tree or the new one; `merge` keeps what the cache lacks, file by
//! file; and what killed restores leave behind is collected by the next one.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::store::small_tree;
use crate::support::tree::{self, TreeOptions};
use crate::support::{for_each_store, list_dir, write, Fixture};

for_each_store!(
    a_restore_onto_an_existing_tree_leaves_exactly_the_cached_tree,
    a_merge_restore_keeps_what_the_cache_lacks,
    configured_merge_paths_merge_and_the_others_are_replaced,
    a_restore_killed_at_any_instant_leaves_the_old_tree_or_the_new_one,
);

/// Names in `dir` that cachectl left there (staging, trash), once background removal is done.
fn leftovers(dir: &Path) -> Vec<String> {
    let started = Instant::now();
    loop {
        let left: Vec<String> = list_dir(dir)
            .into_iter()
            .filter(|n| n.starts_with(".cachectl-"))
            .collect();
        if left.is_empty() || started.elapsed() > Duration::from_secs(30) {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn a_restore_onto_an_existing_tree_leaves_exactly_the_cached_tree(f: Fixture) {
    let src = f.dir("src");
    tree::generate(&src.join("deps"), TreeOptions::default());
    let saved = tree::snapshot(&src.join("deps"));
    f.save("exact", &src)
        .paths(["deps"])
        .run()
        .expect(0, "saved");
    let dst = f.dir("dst");
    // What an older build left: a package the lockfile dropped, a changed file, a new one.
    tree::generate(
        &dst.join("deps"),
        TreeOptions {
            seed: 7,
            ..TreeOptions::default()
        },
    );
    write(
        &dst.join("deps/removed-pkg/index.js"),
        "gone from the lockfile",
    );
    f.restore("exact", &dst)
        .paths(["deps"])
        .run()
        .expect(0, "hit");
    tree::assert_same_tree(&tree::expected_after_restore(&saved), &dst.join("deps"));
    assert_eq!(
        leftovers(&dst),
        Vec::<String>::new(),
        "staging or trash left"
    );
}

fn a_merge_restore_keeps_what_the_cache_lacks(f: Fixture) {
    let src = f.dir("src");
    small_tree(&src.join("deps"), "cached");
    f.save("merge", &src)
        .paths(["deps"])
        .run()
        .expect(0, "saved");
    let dst = f.dir("dst");
    small_tree(&dst.join("deps"), "old");
    write(&dst.join("deps/settings.xml"), "the image's own");
    f.restore("merge", &dst)
        .paths(["deps"])
        .arg("--merge")
        .run()
        .expect(0, "hit");
    assert_eq!(
        fs::read_to_string(dst.join("deps/a.txt")).unwrap(),
        "cached a\n"
    );
    assert_eq!(
        fs::read_to_string(dst.join("deps/sub/b.txt")).unwrap(),
        "cached b\n"
    );
    assert_eq!(
        fs::read_to_string(dst.join("deps/settings.xml")).unwrap(),
        "the image's own"
    );
    assert_eq!(
        leftovers(&dst),
        Vec::<String>::new(),
        "staging or trash left"
    );
}

fn configured_merge_paths_merge_and_the_others_are_replaced(f: Fixture) {
    let config =
        "[cache.tools]\nkey = \"tools-1\"\npaths = [\"cache\", \"tree\"]\nmerge = [\"cache\"]\n";
    let src = f.dir("src");
    write(&src.join("cachectl.toml"), config);
    small_tree(&src.join("cache"), "cached");
    small_tree(&src.join("tree"), "cached");
    let mut save = f.cachectl();
    save.cwd(&src).args(["save", "--json", "--store", &f.store]);
    save.run().expect(0, "saved");
    let dst = f.dir("dst");
    write(&dst.join("cachectl.toml"), config);
    small_tree(&dst.join("cache"), "old");
    small_tree(&dst.join("tree"), "old");
    write(&dst.join("cache/extra"), "kept: merged");
    write(&dst.join("tree/extra"), "dropped: replaced");
    let mut restore = f.cachectl();
    restore
        .cwd(&dst)
        .args(["restore", "--json", "--store", &f.store]);
    restore.run().expect(0, "hit");
    assert_eq!(list_dir(&dst.join("cache")), ["a.txt", "extra", "sub"]);
    assert_eq!(list_dir(&dst.join("tree")), ["a.txt", "sub"]);
    assert_eq!(
        fs::read_to_string(dst.join("tree/a.txt")).unwrap(),
        "cached a\n"
    );
}

/// The restore is killed (SIGKILL) once its staging directory exists, at a later instant on
/// each try; after every kill the destination is exactly the old tree or exactly the new one.
/// The next restore collects what the killed ones left and places the new tree.
fn a_restore_killed_at_any_instant_leaves_the_old_tree_or_the_new_one(f: Fixture) {
    let src = f.dir("src");
    tree::generate(&src.join("deps"), TreeOptions::default());
    let new = tree::expected_after_restore(&tree::snapshot(&src.join("deps")));
    f.save("killed", &src)
        .paths(["deps"])
        .run()
        .expect(0, "saved");
    let dst = f.dir("dst");
    tree::generate(
        &dst.join("deps"),
        TreeOptions {
            seed: 9,
            fifo: false,
            ..TreeOptions::default()
        },
    );
    let old = tree::snapshot(&dst.join("deps"));
    let mut saw_old = false;
    for delay_ms in [0u64, 5, 10, 20, 40, 80] {
        let mut restore = f.restore("killed", &dst);
        restore.paths(["deps"]);
        let running = restore.spawn();
        let started = Instant::now();
        while !list_dir(&dst)
            .iter()
            .any(|n| n.starts_with(".cachectl-staging-"))
        {
            if started.elapsed() > Duration::from_secs(30) {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        std::thread::sleep(Duration::from_millis(delay_ms));
        running.signal("KILL");
        running.wait();
        let now = tree::snapshot(&dst.join("deps"));
        let is_old = tree::diff(&old, &now).is_empty();
        let is_new = tree::diff(&new, &now).is_empty();
        assert!(
            is_old || is_new,
            "killed {delay_ms} ms in: neither the old tree nor the new one:\n{}",
            tree::diff(&new, &now).join("\n")
        );
        saw_old |= is_old;
        if is_new {
            break;
        }
    }
    assert!(
        saw_old,
        "no kill landed before the swap: the test proved nothing"
    );
    f.restore("killed", &dst)
        .paths(["deps"])
        .run()
        .expect(0, "hit");
    tree::assert_same_tree(&new, &dst.join("deps"));
    assert_eq!(
        leftovers(&dst),
        Vec::<String>::new(),
        "staging or trash left"
    );
}
