//! `cachectl hash-files`: one blake3 digest over the matched files' relative paths and contents.

use std::fs;
use std::path::Path;

use crate::support::{write, Fixture, Run};

fn hash_files(f: &Fixture, dir: &Path, patterns: &[&str]) -> Run {
    f.cachectl().cwd(dir).arg("hash-files").args(patterns).run()
}

/// The digest: exit 0 and stdout exactly one line of 64 lowercase hex characters.
fn digest(f: &Fixture, dir: &Path, patterns: &[&str]) -> String {
    let run = hash_files(f, dir, patterns);
    run.assert_code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines.len() == 1
            && lines[0].len() == 64
            && lines[0]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "stdout is not one 64-char lowercase hex digest\n{}",
        run.context()
    );
    lines[0].to_owned()
}

/// A project with lockfiles at several depths and other files around them.
const FILES: [(&str, &str); 7] = [
    ("package-lock.json", "{\"lockfileVersion\": 3}\n"),
    ("Cargo.lock", "version = 4\n"),
    ("crates/a/Cargo.lock", "# crate a\n"),
    ("crates/a/deep/er/Cargo.lock", "# deep\n"),
    ("vendor/x/Cargo.lock", "# vendored\n"),
    ("src/main.rs", "fn main() {}\n"),
    ("README.md", "# readme\n"),
];

fn project(f: &Fixture, name: &str, order: &[usize]) -> std::path::PathBuf {
    let dir = f.dir(name);
    for &i in order {
        let (path, content) = FILES[i];
        write(&dir.join(path), content);
    }
    dir
}

const LOCKS: &[&str] = &["**/*.lock", "package-lock.json"];

#[test]
fn hash_files_prints_one_lowercase_hex_digest() {
    let f = Fixture::bare();
    let dir = project(&f, "p", &[0, 1, 2, 3, 4, 5, 6]);
    let run = hash_files(&f, &dir, LOCKS);
    run.assert_code(0);
    digest(&f, &dir, LOCKS);
    assert!(
        !run.stdout.contains(' '),
        "stdout must hold only the digest\n{}",
        run.context()
    );
}

#[test]
fn hash_files_json_is_one_object_with_the_same_digest() {
    let f = Fixture::bare();
    let dir = project(&f, "p", &[0, 1, 2, 3, 4, 5, 6]);
    let plain = digest(&f, &dir, LOCKS);
    let run = f
        .cachectl()
        .cwd(&dir)
        .args(["hash-files", "--json"])
        .args(LOCKS)
        .run();
    run.assert_code(0);
    assert_eq!(run.json(), serde_json::json!({ "digest": plain }));
}

#[test]
fn hash_files_is_deterministic_across_runs_locations_creation_order_and_mtimes() {
    let f = Fixture::bare();
    let first = project(&f, "first", &[0, 1, 2, 3, 4, 5, 6]);
    let second = project(&f, "elsewhere/second", &[6, 3, 0, 5, 2, 4, 1]);
    for (path, _) in FILES {
        filetime::set_file_mtime(second.join(path), filetime::FileTime::from_unix_time(7, 0))
            .unwrap();
    }
    let a = digest(&f, &first, LOCKS);
    assert_eq!(a, digest(&f, &first, LOCKS), "same tree twice");
    assert_eq!(
        a,
        digest(&f, &second, LOCKS),
        "shuffled creation order, other dir"
    );
    let reversed: Vec<&str> = LOCKS.iter().rev().copied().collect();
    assert_eq!(a, digest(&f, &first, &reversed), "pattern order");
}

#[test]
fn hash_files_changes_with_content_rename_and_new_matched_file() {
    let f = Fixture::bare();
    let dir = project(&f, "p", &[0, 1, 2, 3, 4, 5, 6]);
    let base = digest(&f, &dir, LOCKS);

    write(&dir.join("crates/a/Cargo.lock"), "# crate a, changed\n");
    let changed = digest(&f, &dir, LOCKS);
    assert_ne!(base, changed, "content change");
    write(&dir.join("crates/a/Cargo.lock"), "# crate a\n");
    assert_eq!(base, digest(&f, &dir, LOCKS), "content restored");

    fs::create_dir_all(dir.join("crates/b")).unwrap();
    fs::rename(
        dir.join("crates/a/Cargo.lock"),
        dir.join("crates/b/Cargo.lock"),
    )
    .unwrap();
    assert_ne!(base, digest(&f, &dir, LOCKS), "rename to another dir");
    fs::rename(
        dir.join("crates/b/Cargo.lock"),
        dir.join("crates/a/Cargo.lock"),
    )
    .unwrap();
    assert_eq!(base, digest(&f, &dir, LOCKS), "renamed back");

    write(&dir.join("new/Cargo.lock"), "# new\n");
    assert_ne!(base, digest(&f, &dir, LOCKS), "new matched file");
    fs::remove_file(dir.join("new/Cargo.lock")).unwrap();

    write(&dir.join("new/notes.txt"), "not matched\n");
    assert_eq!(
        base,
        digest(&f, &dir, LOCKS),
        "new file that no pattern matches"
    );

    write(&dir.join("empty.lock"), "");
    assert_ne!(base, digest(&f, &dir, LOCKS), "new empty matched file");
}

#[test]
fn hash_files_binds_each_content_to_its_path() {
    let f = Fixture::bare();
    let one = f.dir("one");
    write(&one.join("a.lock"), "1");
    write(&one.join("b.lock"), "2");
    let two = f.dir("two");
    write(&two.join("a.lock"), "2");
    write(&two.join("b.lock"), "1");
    let three = f.dir("three");
    write(&three.join("a.lock"), "12");
    write(&three.join("b.lock"), "");
    let patterns = &["*.lock"];
    let d1 = digest(&f, &one, patterns);
    assert_ne!(
        d1,
        digest(&f, &two, patterns),
        "contents swapped between files"
    );
    assert_ne!(
        d1,
        digest(&f, &three, patterns),
        "content moved across the file boundary"
    );
}

#[test]
fn hash_files_exclusion_drops_matches() {
    let f = Fixture::bare();
    let dir = project(&f, "p", &[0, 1, 2, 3, 4, 5, 6]);
    let patterns = &["**/*.lock", "!vendor/**"];
    let base = digest(&f, &dir, patterns);
    assert_ne!(
        base,
        digest(&f, &dir, &["**/*.lock"]),
        "the exclusion removed nothing"
    );

    write(&dir.join("vendor/x/Cargo.lock"), "# vendored, changed\n");
    write(&dir.join("vendor/y/Cargo.lock"), "# vendored, new\n");
    assert_eq!(
        base,
        digest(&f, &dir, patterns),
        "excluded files changed the digest"
    );

    write(&dir.join("Cargo.lock"), "version = 5\n");
    assert_ne!(base, digest(&f, &dir, patterns), "included file ignored");
}

#[test]
fn hash_files_double_star_recurses() {
    let f = Fixture::bare();
    let dir = project(&f, "p", &[0, 1, 2, 3, 4, 5, 6]);
    let base = digest(&f, &dir, &["**/Cargo.lock"]);
    write(
        &dir.join("crates/a/deep/er/Cargo.lock"),
        "# deep, changed\n",
    );
    assert_ne!(base, digest(&f, &dir, &["**/Cargo.lock"]), "4 levels down");
    let base = digest(&f, &dir, &["crates/**/Cargo.lock"]);
    write(&dir.join("crates/a/deep/er/Cargo.lock"), "# deep\n");
    assert_ne!(base, digest(&f, &dir, &["crates/**/Cargo.lock"]));
}

#[test]
fn hash_files_star_and_question_mark_match_within_a_name() {
    let f = Fixture::bare();
    let dir = f.dir("p");
    write(&dir.join("file1.txt"), "one");
    write(&dir.join("file10.txt"), "ten");
    let base = digest(&f, &dir, &["file?.txt"]);
    write(&dir.join("file10.txt"), "ten, changed");
    assert_eq!(
        base,
        digest(&f, &dir, &["file?.txt"]),
        "? matched two characters"
    );
    write(&dir.join("file1.txt"), "one, changed");
    assert_ne!(
        base,
        digest(&f, &dir, &["file?.txt"]),
        "? did not match one"
    );

    let star = digest(&f, &dir, &["file*.txt"]);
    write(&dir.join("file10.txt"), "ten, changed again");
    assert_ne!(
        star,
        digest(&f, &dir, &["file*.txt"]),
        "* did not match file10.txt"
    );
}

#[test]
fn hash_files_overlapping_patterns_count_a_file_once() {
    let f = Fixture::bare();
    let dir = project(&f, "p", &[0, 1, 2, 3, 4, 5, 6]);
    assert_eq!(
        digest(&f, &dir, &["**/*.lock"]),
        digest(&f, &dir, &["**/*.lock", "Cargo.lock", "crates/**/*.lock"])
    );
}

#[test]
fn hash_files_without_a_match_fails_naming_the_patterns() {
    let f = Fixture::bare();
    let dir = project(&f, "p", &[0, 1, 2, 3, 4, 5, 6]);
    for patterns in [
        &["**/*.nomatch", "missing-file.txt"][..],
        &["*.lock", "!*.lock"][..],
    ] {
        let run = hash_files(&f, &dir, patterns);
        assert!(
            run.code.is_some_and(|c| c != 0),
            "no file matched, yet exit 0\n{}",
            run.context()
        );
        assert!(
            run.stdout.trim().is_empty(),
            "a digest for no files\n{}",
            run.context()
        );
        let named = patterns[0];
        assert!(
            run.stderr.contains(named),
            "stderr does not name {named:?}\n{}",
            run.context()
        );
    }
}
