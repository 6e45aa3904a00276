//! Field failures from issue 11, each a kind of fault with its exact expected value, on both
//! stores where a store is involved.

use crate::store::small_tree;
use crate::support::{for_each_store, Fixture};

for_each_store!(a_state_dir_that_does_not_exist_is_created,);

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
