//! Restores as an unprivileged user, as CodeBuild images often run them (issue 11, items 6 and
//! 7). Run as root, the tests drop to `nobody` with `setpriv` and give it what it owns with
//! `chown`; run as another user, they run as that user (a scenario that needs a directory
//! owned by someone else is then skipped, saying so).

use std::fs::{self, Permissions};
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::Path;

use crate::support::{for_each_store, leftovers, list_dir, write, Cachectl, Fixture};

const NOBODY: u32 = 65534;

fn is_root() -> bool {
    let out = std::process::Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

fn mode(path: &Path, mode: u32) {
    fs::set_permissions(path, Permissions::from_mode(mode)).unwrap();
}

/// Makes `path` (recursively) the unprivileged user's.
fn own(path: &Path) {
    if !is_root() {
        return;
    }
    chown(path, Some(NOBODY), Some(NOBODY)).unwrap();
    if fs::symlink_metadata(path).unwrap().is_dir() {
        for e in fs::read_dir(path).unwrap() {
            own(&e.unwrap().path());
        }
    }
}

/// The sandbox opened up so the unprivileged user can reach its own parts: the sandbox and
/// the store readable, the temp dir (state file) and home writable.
fn open_sandbox(f: &Fixture) {
    mode(f.root(), 0o755);
    for dir in ["tmp", "home"] {
        let d = f.root().join(dir);
        fs::create_dir_all(&d).unwrap();
        mode(&d, 0o1777);
    }
}

/// `cmd` as the unprivileged user.
fn unprivileged(cmd: &mut Cachectl) -> &mut Cachectl {
    if is_root() {
        cmd.wrapped([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ]);
    }
    cmd
}

/// A cached tree whose directories are read-only (0555), as `node_modules` packages ship them.
fn read_only_tree(dir: &Path, tag: &str) {
    write(&dir.join("pkg/index.js"), format!("{tag}\n"));
    write(&dir.join("top.txt"), format!("{tag} top\n"));
    mode(&dir.join("pkg"), 0o555);
    mode(dir, 0o555);
}

fn assert_read_only_tree(dir: &Path, tag: &str) {
    let mode_of = |p: &Path| fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode_of(dir), 0o555, "{}", dir.display());
    assert_eq!(mode_of(&dir.join("pkg")), 0o555);
    assert_eq!(
        fs::read_to_string(dir.join("pkg/index.js")).unwrap(),
        format!("{tag}\n")
    );
    assert_eq!(list_dir(dir), ["pkg", "top.txt"]);
}

for_each_store!(
    read_only_directories_restore_for_a_non_root_user,
    a_destination_whose_parent_the_user_cannot_write_is_restored_in_place,
    a_read_only_destination_of_the_users_own_under_a_locked_parent_is_restored,
    a_contents_swap_that_fails_part_way_puts_every_entry_back,
    a_merge_into_read_only_directories_works_for_a_non_root_user,
    a_path_that_cannot_be_placed_leaves_every_path_as_it_was,
);

/// 0555 directories, restored where nothing was and over an older read-only tree: a hit, the
/// modes kept, and no staging or trash left (both hold read-only directories to remove).
fn read_only_directories_restore_for_a_non_root_user(f: Fixture) {
    let src = f.dir("src");
    read_only_tree(&src.join("deps"), "cached");
    f.save("ro", &src).paths(["deps"]).run().expect(0, "saved");
    mode(&src.join("deps"), 0o755);
    open_sandbox(&f);
    let dst = f.dir("dst");
    own(&dst);
    for round in ["into nothing", "over an older tree"] {
        unprivileged(f.restore("ro", &dst).paths(["deps"]))
            .run()
            .expect(0, "hit");
        assert_read_only_tree(&dst.join("deps"), "cached");
        assert_eq!(leftovers(&dst), Vec::<String>::new(), "{round}");
        if round == "into nothing" {
            // Make it the older tree for the next round.
            mode(&dst.join("deps"), 0o755);
            mode(&dst.join("deps/pkg"), 0o755);
            fs::write(dst.join("deps/pkg/index.js"), "old\n").unwrap();
            write(&dst.join("deps/stale.js"), "dropped");
            read_only_tree(&dst.join("deps"), "old");
            own(&dst);
        }
    }
}

/// The user owns the destination but not its parent, so nothing can be staged beside it;
/// `tar -x -C dest` works there, and so does the restore: it stages inside the destination.
fn a_destination_whose_parent_the_user_cannot_write_is_restored_in_place(f: Fixture) {
    let src = f.dir("src");
    write(&src.join("deps/a.txt"), "cached a\n");
    write(&src.join("deps/sub/b.txt"), "cached b\n");
    f.save("inplace", &src)
        .paths(["deps"])
        .run()
        .expect(0, "saved");
    open_sandbox(&f);
    let dst = f.dir("dst");
    write(&dst.join("deps/a.txt"), "old a\n");
    write(&dst.join("deps/dropped.txt"), "not in the cache\n");
    own(&dst.join("deps"));
    // Not the user's to write: root's (as root), or read-only (as the user running the tests).
    mode(&dst, 0o555);
    let run = unprivileged(f.restore("inplace", &dst).paths(["deps"])).run();
    mode(&dst, 0o755);
    run.expect(0, "hit");
    assert_eq!(leftovers(&dst.join("deps")), Vec::<String>::new());
    assert_eq!(list_dir(&dst.join("deps")), ["a.txt", "sub"]);
    assert_eq!(
        fs::read_to_string(dst.join("deps/a.txt")).unwrap(),
        "cached a\n"
    );
    assert_eq!(
        fs::read_to_string(dst.join("deps/sub/b.txt")).unwrap(),
        "cached b\n"
    );
}

/// Two paths; the second cannot be placed (a read-only directory the user does not own). The
/// first, already swapped, gets its old tree back: every path new, or every path as before.
fn a_path_that_cannot_be_placed_leaves_every_path_as_it_was(f: Fixture) {
    if !is_root() {
        eprintln!("skipped: needs a directory owned by another user, which only root can make");
        return;
    }
    let src = f.dir("src");
    write(&src.join("a/x.txt"), "cached a\n");
    write(&src.join("b/y.txt"), "cached b\n");
    f.save("both", &src)
        .paths(["a", "b"])
        .run()
        .expect(0, "saved");
    open_sandbox(&f);
    let dst = f.dir("dst");
    write(&dst.join("a/x.txt"), "old a\n");
    write(&dst.join("b/y.txt"), "old b (root's)\n");
    own(&dst);
    chown(dst.join("b"), Some(0), Some(0)).unwrap();
    mode(&dst.join("b"), 0o555);
    let run = unprivileged(f.restore("both", &dst).paths(["a", "b"])).run();
    let json = run.expect(0, "error");
    assert_eq!(json["files"], 0);
    assert!(
        json["message"]
            .as_str()
            .unwrap()
            .contains(&format!("{}", dst.join("b").display())),
        "the message names the path that failed\n{}",
        run.context()
    );
    assert_eq!(fs::read_to_string(dst.join("a/x.txt")).unwrap(), "old a\n");
    assert_eq!(list_dir(&dst.join("a")), ["x.txt"]);
    assert_eq!(
        fs::read_to_string(dst.join("b/y.txt")).unwrap(),
        "old b (root's)\n"
    );
    assert_eq!(leftovers(&dst), Vec::<String>::new());
}

/// As above, and the destination itself is read-only (`0555`, a cached tree's mode) but the
/// user's own: `chmod u+w` then `tar -x` would work, so the restore does that, and the tree
/// ends with the cached mode.
fn a_read_only_destination_of_the_users_own_under_a_locked_parent_is_restored(f: Fixture) {
    let src = f.dir("src");
    write(&src.join("deps/a.txt"), "cached a\n");
    mode(&src.join("deps"), 0o555);
    f.save("readonly-dest", &src)
        .paths(["deps"])
        .run()
        .expect(0, "saved");
    mode(&src.join("deps"), 0o755);
    open_sandbox(&f);
    let dst = f.dir("dst");
    write(&dst.join("deps/a.txt"), "old a\n");
    own(&dst.join("deps"));
    mode(&dst.join("deps"), 0o555);
    mode(&dst, 0o555);
    let run = unprivileged(f.restore("readonly-dest", &dst).paths(["deps"])).run();
    mode(&dst, 0o755);
    run.expect(0, "hit");
    let deps_mode = fs::metadata(dst.join("deps")).unwrap().permissions().mode() & 0o777;
    mode(&dst.join("deps"), 0o755);
    assert_eq!(leftovers(&dst.join("deps")), Vec::<String>::new());
    assert_eq!(list_dir(&dst.join("deps")), ["a.txt"]);
    assert_eq!(
        fs::read_to_string(dst.join("deps/a.txt")).unwrap(),
        "cached a\n"
    );
    assert_eq!(deps_mode, 0o555, "the cached mode");
}

/// Staging inside the destination (the user's own, under a root-owned parent) and an entry in
/// it the user cannot move (a root-owned directory): the swap fails part-way. Every entry that
/// had moved goes back; nothing of the user's waits in a trash directory for a later restore
/// to delete.
fn a_contents_swap_that_fails_part_way_puts_every_entry_back(f: Fixture) {
    if !is_root() {
        eprintln!("skipped: needs a directory owned by another user, which only root can make");
        return;
    }
    let src = f.dir("src");
    write(&src.join("deps/a.txt"), "cached a\n");
    f.save("partway", &src)
        .paths(["deps"])
        .run()
        .expect(0, "saved");
    open_sandbox(&f);
    let dst = f.dir("dst");
    for name in ["notes.txt", "b.txt", "m.txt", "z.txt"] {
        write(&dst.join("deps").join(name), "the user's own\n");
    }
    write(&dst.join("deps/rootdir/x"), "root's\n");
    own(&dst.join("deps"));
    chown(dst.join("deps/rootdir"), Some(0), Some(0)).unwrap();
    mode(&dst.join("deps/rootdir"), 0o755);
    mode(&dst, 0o555);
    for round in 0..2 {
        let run = unprivileged(f.restore("partway", &dst).paths(["deps"])).run();
        run.expect(0, "error");
        let mut names = list_dir(&dst.join("deps"));
        names.retain(|n| !n.starts_with(".cachectl-staging-"));
        assert_eq!(
            names,
            ["b.txt", "m.txt", "notes.txt", "rootdir", "z.txt"],
            "round {round}\n{}",
            run.context()
        );
        assert_eq!(
            fs::read_to_string(dst.join("deps/notes.txt")).unwrap(),
            "the user's own\n"
        );
    }
    mode(&dst, 0o755);
}

/// Merging into read-only directories (`0555`, the user's own) as the user: `tar -x` over them
/// needs `chmod u+w` first, and so does the restore; they end with the cached mode.
fn a_merge_into_read_only_directories_works_for_a_non_root_user(f: Fixture) {
    let src = f.dir("src");
    write(&src.join("ro/a"), "cached a\n");
    write(&src.join("ro/sub/new"), "cached new\n");
    mode(&src.join("ro/sub"), 0o555);
    mode(&src.join("ro"), 0o555);
    f.save("ro-merge", &src)
        .paths(["ro"])
        .run()
        .expect(0, "saved");
    mode(&src.join("ro"), 0o755);
    mode(&src.join("ro/sub"), 0o755);
    open_sandbox(&f);
    let dst = f.dir("dst");
    write(&dst.join("ro/a"), "old a\n");
    write(&dst.join("ro/sub/kept"), "kept\n");
    write(&dst.join("ro/mine"), "kept too\n");
    own(&dst);
    mode(&dst.join("ro/sub"), 0o555);
    mode(&dst.join("ro"), 0o555);
    let run = unprivileged(f.restore("ro-merge", &dst).paths(["ro"]).arg("--merge")).run();
    let modes = (
        fs::metadata(dst.join("ro")).unwrap().permissions().mode() & 0o777,
        fs::metadata(dst.join("ro/sub"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
    );
    mode(&dst.join("ro"), 0o755);
    mode(&dst.join("ro/sub"), 0o755);
    run.expect(0, "hit");
    assert_eq!(modes, (0o555, 0o555), "the cached modes");
    assert_eq!(list_dir(&dst.join("ro")), ["a", "mine", "sub"]);
    assert_eq!(list_dir(&dst.join("ro/sub")), ["kept", "new"]);
    assert_eq!(fs::read_to_string(dst.join("ro/a")).unwrap(), "cached a\n");
}
