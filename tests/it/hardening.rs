//! Field failures from issue 11, each a kind of fault with its exact expected value, on both
//! stores where a store is involved.

use std::fs;
use std::os::unix::net::UnixListener;
use std::process::Command;

use crate::store::small_tree;
use crate::support::{for_each_store, list_dir, Fixture};

for_each_store!(
    a_state_dir_that_does_not_exist_is_created,
    sockets_and_fifos_left_out_are_named,
);

/// `CACHECTL_STATE_DIR` naming a missing directory: restore creates it, says nothing about
/// it, and records what it did there for the save of a later phase.
fn a_state_dir_that_does_not_exist_is_created(f: Fixture) {
    let src = f.dir("src");
    small_tree(&src.join("deps"), "state");
    f.save("state-k", &src)
        .paths(["deps"])
        .run()
        .expect(0, "saved");
    let state_dir = f.root().join("not/yet/there");
    let restore = f
        .restore("state-k", &src)
        .paths(["deps"])
        .env("CACHECTL_STATE_DIR", &state_dir)
        .run();
    restore.expect(0, "hit");
    assert!(!restore.stderr.contains("warning"), "{}", restore.context());
    let files: Vec<_> = std::fs::read_dir(&state_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "one state file: {files:?}");
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
    assert_eq!(state["caches"]["state-k"]["outcome"], "hit");
    assert_eq!(state["caches"]["state-k"]["matched_key"], "state-k");
}

/// Sockets and FIFOs cannot be cached: the warning names the first five by the path the user
/// gave, in archive order, and counts the rest; the rest of the tree is saved.
fn sockets_and_fifos_left_out_are_named(f: Fixture) {
    let src = f.dir("src");
    let deps = src.join("deps");
    small_tree(&deps, "special");
    let _socket = UnixListener::bind(deps.join("a1.sock")).unwrap();
    for i in 1..=6 {
        let status = Command::new("mkfifo")
            .arg(deps.join(format!("f{i}")))
            .status();
        assert!(status.unwrap().success(), "mkfifo");
    }
    let save = f.save("special", &src).paths(["deps"]).run();
    save.expect(0, "saved");
    let warning = "warning: save: left out 7 sockets, FIFOs or devices: deps/a1.sock (socket), \
                   deps/f1 (FIFO), deps/f2 (FIFO), deps/f3 (FIFO), deps/f4 (FIFO) and 2 more";
    assert!(
        save.stderr.lines().any(|l| l == warning),
        "no line {warning:?}\n{}",
        save.context()
    );
    let dst = f.dir("dst");
    f.restore("special", &dst)
        .paths(["deps"])
        .run()
        .expect(0, "hit");
    assert_eq!(list_dir(&dst.join("deps")), ["a.txt", "sub"]);
    assert_eq!(
        fs::read_to_string(dst.join("deps/sub/b.txt")).unwrap(),
        "special b\n"
    );
}
