//! What a restore does to a destination that already exists (issue 11, items 12, 15, 16):
//! by default it becomes exactly the cached tree, swapped in atomically, so a restore killed at
//! any instant leaves the old tree or the new one; `merge` keeps what the cache lacks, file by
//! file; and what killed restores leave behind is collected by the next one.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::store::small_tree;
use crate::support::tree::{self, TreeOptions};
use crate::support::{for_each_store, leftovers, list_dir, write, Fixture};

for_each_store!(
    a_restore_onto_an_existing_tree_leaves_exactly_the_cached_tree,
    a_merge_restore_keeps_what_the_cache_lacks,
    configured_merge_paths_merge_and_the_others_are_replaced,
    a_restore_killed_at_any_instant_leaves_the_old_tree_or_the_new_one,
);

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
    // The big file keeps the restore busy for a while after staging appears, so the first
    // kills land before the swap even on a fast, idle machine.
    tree::generate(
        &src.join("deps"),
        TreeOptions {
            big_file: true,
            ..TreeOptions::default()
        },
    );
    let new = tree::expected_after_restore(&tree::snapshot(&src.join("deps")));
    f.save("killed", &src)
        .paths(["deps"])
        .run()
        .expect(0, "saved");
    let dst = f.dir("dst");
    let old_tree = || {
        tree::generate(
            &dst.join("deps"),
            TreeOptions {
                seed: 9,
                fifo: false,
                ..TreeOptions::default()
            },
        )
    };
    old_tree();
    let old = tree::snapshot(&dst.join("deps"));
    let mut saw_old = false;
    // Should a restore still finish before its first kill, put the old tree back and try
    // again from the start (a few rounds), rather than prove nothing.
    for _round in 0..3 {
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
        if saw_old {
            break;
        }
        // The restore finished before its first kill: put the old tree back, try again.
        fs::remove_dir_all(dst.join("deps")).unwrap();
        old_tree();
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

// --- Found by trying the hardened restores (issue 11, second round) ---

for_each_store!(
    nested_caches_restore_the_inner_tree_over_the_outer_one,
    nested_caches_spelled_differently_are_ordered_too,
    the_working_directory_restores_in_place,
    a_path_holding_the_working_directory_is_refused_for_replace,
);

/// Two caches of one cachectl.toml whose paths nest (`node_modules` and `node_modules/.cache`):
/// the outer tree is placed first and the inner one over it, every time, so the inner cache's
/// hit is what lands; neither restore trips over the other's staging.
fn nested_caches_restore_the_inner_tree_over_the_outer_one(f: Fixture) {
    let config = "[cache.nm]\nkey = \"nm-{{ hashFiles 'package-lock.json' }}\"\npaths = [\"node_modules\"]\n\
                  [cache.nmcache]\nkey = \"nmc-{{ hashFiles 'cachever' }}\"\npaths = [\"node_modules/.cache\"]\n";
    let src = f.dir("src");
    write(&src.join("cachectl.toml"), config);
    write(&src.join("package-lock.json"), "lock");
    write(&src.join("cachever"), "v1");
    write(&src.join("node_modules/pkg/a.js"), "a");
    write(&src.join("node_modules/.cache/c.bin"), "OLD");
    let save = || {
        let mut c = f.cachectl();
        c.cwd(&src).args(["save", "--json", "--store", &f.store]);
        let run = c.run();
        run.assert_code(0);
        let nmcache = run.json()["caches"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["cache"] == "nmcache")
            .cloned()
            .unwrap();
        assert_eq!(nmcache["outcome"], "saved", "{}", run.context());
    };
    save();
    write(&src.join("cachever"), "v2");
    write(&src.join("node_modules/.cache/c.bin"), "NEW");
    save();
    for round in 0..6 {
        fs::remove_dir_all(src.join("node_modules")).unwrap();
        let mut c = f.cachectl();
        c.cwd(&src).args(["restore", "--json", "--store", &f.store]);
        let run = c.run();
        run.assert_code(0);
        let outcomes: Vec<_> = run.json()["caches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["cache"].clone(), c["outcome"].clone()))
            .collect();
        assert_eq!(
            outcomes,
            [
                ("nm".into(), "hit".into()),
                ("nmcache".into(), "hit".into())
            ],
            "round {round}\n{}",
            run.context()
        );
        assert!(
            !run.stderr.contains("warning"),
            "round {round}\n{}",
            run.context()
        );
        assert_eq!(
            fs::read_to_string(src.join("node_modules/.cache/c.bin")).unwrap(),
            "NEW",
            "round {round}: the outer tree was placed over the inner cache's hit"
        );
        assert_eq!(
            fs::read_to_string(src.join("node_modules/pkg/a.js")).unwrap(),
            "a"
        );
    }
}

/// The same nesting written through `..` and through a symlink: ordered by where the paths
/// really are, not by how they are spelled.
fn nested_caches_spelled_differently_are_ordered_too(f: Fixture) {
    let src = f.dir("w");
    fs::create_dir_all(src.join("node_modules/.cache")).unwrap();
    std::os::unix::fs::symlink("node_modules", src.join("nm")).unwrap();
    for (i, inner) in ["../w/node_modules/.cache", "nm/.cache"].iter().enumerate() {
        let config = format!(
            "[cache.outer]\nkey = \"o{i}\"\npaths = [\"node_modules\"]\n\
             [cache.inner]\nkey = \"i{i}\"\npaths = [\"{inner}\"]\n"
        );
        write(&src.join("cachectl.toml"), &config);
        write(&src.join("node_modules/.cache/f"), "OUTER");
        let save = |cache: &str| {
            let mut c = f.cachectl();
            c.cwd(&src)
                .args(["save", "--json", "--store", &f.store, "--cache", cache]);
            c.run().expect(0, "saved");
        };
        // A new build: the last one's restore state (its keys win in a save) is gone.
        let _ = fs::remove_dir_all(f.root().join("tmp"));
        save("outer");
        write(&src.join("node_modules/.cache/f"), "INNER");
        save("inner");
        for round in 0..4 {
            fs::remove_dir_all(src.join("node_modules")).unwrap();
            let mut c = f.cachectl();
            c.cwd(&src).args(["restore", "--json", "--store", &f.store]);
            let run = c.run();
            run.assert_code(0);
            assert_eq!(
                run.json()["outcome"],
                "hit",
                "{inner} round {round}\n{}",
                run.context()
            );
            assert_eq!(
                fs::read_to_string(src.join("node_modules/.cache/f")).unwrap(),
                "INNER",
                "{inner} round {round}"
            );
        }
    }
}

/// `--path .`: the working directory cannot be renamed away (the build runs in it), so its
/// contents are swapped; the result is exactly the cached tree.
fn the_working_directory_restores_in_place(f: Fixture) {
    let src = f.dir("src");
    small_tree(&src, "cached");
    f.save("dot", &src).paths(["."]).run().expect(0, "saved");
    write(&src.join("stale.txt"), "not in the cache");
    write(&src.join("a.txt"), "changed");
    f.restore("dot", &src).paths(["."]).run().expect(0, "hit");
    assert_eq!(leftovers(&src), Vec::<String>::new());
    assert_eq!(list_dir(&src), ["a.txt", "sub"]);
    assert_eq!(fs::read_to_string(src.join("a.txt")).unwrap(), "cached a\n");
}

/// `--path ..` (or `~` for a build under home) holds the build's own tree: a replace would move
/// it away. Refused, saying to merge; nothing is touched.
fn a_path_holding_the_working_directory_is_refused_for_replace(f: Fixture) {
    let top = f.dir("top");
    let work = top.join("work");
    small_tree(&work, "mine");
    f.save("dotdot", &work)
        .paths([".."])
        .run()
        .expect(0, "saved");
    write(&top.join("sibling.txt"), "stays");
    let run = f.restore("dotdot", &work).paths([".."]).run();
    let json = run.expect(0, "error");
    assert_eq!(
        json["message"].as_str().unwrap(),
        format!(
            "{} holds the working directory; it is only restored with merge",
            top.display()
        ),
        "{}",
        run.context()
    );
    assert_eq!(
        fs::read_to_string(top.join("sibling.txt")).unwrap(),
        "stays"
    );
    assert_eq!(list_dir(&work), ["a.txt", "sub"]);
    f.restore("dotdot", &work)
        .paths([".."])
        .arg("--merge")
        .run()
        .expect(0, "hit");
    assert_eq!(
        fs::read_to_string(top.join("sibling.txt")).unwrap(),
        "stays"
    );
}

/// `~/.cache` restored with the default store inside it (`~/.cache/cachectl`): the store is not
/// in the entry (a save leaves it out), and a replace must not take it away with the old tree.
#[test]
fn a_restore_of_a_path_holding_the_local_store_keeps_the_store() {
    let f = Fixture::bare();
    let home = f.root().join("home");
    write(&home.join(".cache/pip/x/f"), "p");
    let run = |args: &[&str]| {
        let mut c = f.cachectl();
        c.cwd(&home)
            .home(&home)
            .env_remove("CACHECTL_STORE")
            .env_remove("XDG_CACHE_HOME")
            .args(args);
        c.run()
    };
    run(&["save", "--json", "--key", "home", "--path", "~/.cache"]).expect(0, "saved");
    write(&home.join(".cache/pip/x/f"), "edited");
    for round in 0..2 {
        run(&["restore", "--json", "--key", "home", "--path", "~/.cache"]).expect(0, "hit");
        assert_eq!(
            fs::read_to_string(home.join(".cache/pip/x/f")).unwrap(),
            "p"
        );
        assert_eq!(
            list_dir(&home.join(".cache")),
            ["cachectl", "pip"],
            "round {round}"
        );
    }
    let ls = run(&["ls", "--json"]);
    assert!(ls.stdout.contains("\"home\""), "{}", ls.context());
}

/// Forty caches restored at once in one process, each staging beside the others: none may
/// mistake another's live staging (locked a moment later) for a killed restore's.
#[test]
fn sibling_restores_never_take_each_others_staging() {
    let f = Fixture::new(crate::support::StoreKind::Local, "sibling_restores");
    let src = f.dir("src");
    let mut config = String::new();
    for i in 0..40 {
        write(&src.join(format!("p{i}/f")), i.to_string());
        config += &format!("[cache.c{i}]\nkey = \"c{i}\"\npaths = [\"p{i}\"]\n");
    }
    write(&src.join("cachectl.toml"), &config);
    let mut save = f.cachectl();
    save.cwd(&src).args(["save", "--json", "--store", &f.store]);
    save.run().assert_code(0);
    for round in 0..15 {
        let mut c = f.cachectl();
        c.cwd(&src).args(["restore", "--json", "--store", &f.store]);
        let run = c.run();
        run.assert_code(0);
        assert_eq!(
            run.json()["outcome"],
            "hit",
            "round {round}\n{}",
            run.context()
        );
        assert!(
            !run.stderr.contains("warning"),
            "round {round}\n{}",
            run.context()
        );
    }
}

/// A filesystem mounted at `at` for the life of the value (root only); unmounted (lazily, it
/// may have moved) on drop.
struct Mount(std::path::PathBuf);

impl Mount {
    /// None where this process may not mount (not root, or no CAP_SYS_ADMIN): the caller skips.
    fn new(args: &[&str], at: &Path) -> Option<Mount> {
        fs::create_dir_all(at).unwrap();
        let ok = std::process::Command::new("mount")
            .args(args)
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: cannot mount here (needs root with CAP_SYS_ADMIN)");
        }
        ok.then(|| Mount(at.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Mount points under `dir`, from /proc/self/mountinfo.
fn mounts_under(dir: &Path) -> Vec<std::path::PathBuf> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(std::path::PathBuf::from)
        .filter(|m| m.starts_with(dir))
        .collect()
}

/// A destination that is a mount point (a volume at `~/.m2`): staging beside it would be on
/// another filesystem, so staging goes inside it; replace and merge both work there.
#[test]
fn a_mount_point_destination_restores_on_its_own_filesystem() {
    let f = Fixture::bare();
    let src = f.dir("src");
    small_tree(&src.join("deps"), "cached");
    f.save("mnt", &src).paths(["deps"]).run().expect(0, "saved");
    let dst = f.dir("dst");
    let Some(_mount) = Mount::new(&["-t", "tmpfs", "tmpfs"], &dst.join("deps")) else {
        return;
    };
    small_tree(&dst.join("deps"), "old");
    write(&dst.join("deps/extra"), "the volume's own");
    f.restore("mnt", &dst)
        .paths(["deps"])
        .arg("--merge")
        .run()
        .expect(0, "hit");
    assert_eq!(list_dir(&dst.join("deps")), ["a.txt", "extra", "sub"]);
    assert_eq!(
        fs::read_to_string(dst.join("deps/a.txt")).unwrap(),
        "cached a\n"
    );
    f.restore("mnt", &dst)
        .paths(["deps"])
        .run()
        .expect(0, "hit");
    assert_eq!(leftovers(&dst.join("deps")), Vec::<String>::new());
    assert_eq!(list_dir(&dst.join("deps")), ["a.txt", "sub"]);
    assert_eq!(
        mounts_under(&dst),
        [dst.join("deps")],
        "the mount stays where it was"
    );
}

/// A build bind-mounted something inside a cached tree: replacing the tree moves the mount to
/// the trash with it, and removing the trash must not enter it (`rm --one-file-system`).
#[test]
fn removing_a_replaced_tree_never_enters_a_mount_inside_it() {
    let f = Fixture::bare();
    let src = f.dir("src");
    small_tree(&src.join("d"), "cached");
    f.save("bind", &src).paths(["d"]).run().expect(0, "saved");
    let dst = f.dir("dst");
    let outside = f.dir("outside");
    write(&outside.join("precious"), "not the cache's");
    small_tree(&dst.join("d"), "old");
    let Some(_bind) = Mount::new(&["--bind", outside.to_str().unwrap()], &dst.join("d/m")) else {
        return;
    };
    f.restore("bind", &dst).paths(["d"]).run().expect(0, "hit");
    assert_eq!(list_dir(&dst.join("d")), ["a.txt", "sub"]);
    // The background removal has had its chance: the trash keeps only the way to the mount.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        let trash_files = crate::support::find_named(&dst, "a.txt").len();
        if trash_files == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        fs::read_to_string(outside.join("precious")).unwrap(),
        "not the cache's",
        "removing the trash deleted a mounted filesystem's files"
    );
    for m in mounts_under(&dst).into_iter().rev() {
        if m != dst {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&m)
                .status();
        }
    }
}

/// `--path .` with a bind mount inside (a build mounted something into its tree): the contents
/// swap leaves the mount point where it is, like `rm --one-file-system`, and the mounted files
/// are untouched.
#[test]
fn a_contents_swap_leaves_mount_points_inside_alone() {
    let f = Fixture::bare();
    let work = f.dir("work");
    small_tree(&work, "cached");
    f.save("dot-mount", &work)
        .paths(["."])
        .run()
        .expect(0, "saved");
    let outside = f.dir("outside");
    write(&outside.join("precious"), "not the cache's");
    write(&work.join("notes.txt"), "not in the cache");
    let Some(_bind) = Mount::new(&["--bind", outside.to_str().unwrap()], &work.join("bm")) else {
        return;
    };
    f.restore("dot-mount", &work)
        .paths(["."])
        .run()
        .expect(0, "hit");
    // The old contents go in the background: wait for that before listing.
    assert_eq!(leftovers(&work), Vec::<String>::new());
    assert_eq!(list_dir(&work), ["a.txt", "bm", "sub"]);
    assert_eq!(
        fs::read_to_string(work.join("bm/precious")).unwrap(),
        "not the cache's"
    );
}
