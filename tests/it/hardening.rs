//! Field failures from issue 11, each a kind of fault with its exact expected value, on both
//! stores where a store is involved.

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::store::{read, save_tagged, small_tree, wait_for_a_newer_timestamp};
use crate::support::format::{footer, RawTar};
use crate::support::{for_each_store, list_dir, Fixture};

for_each_store!(
    a_state_dir_that_does_not_exist_is_created,
    sockets_and_fifos_left_out_are_named,
    a_file_that_shrinks_while_saved_is_not_committed,
    a_file_that_grows_while_saved_is_not_committed,
    a_file_rewritten_in_place_while_saved_is_not_committed,
    a_file_replaced_while_saved_is_not_committed,
    a_file_removed_while_saved_is_not_committed,
    a_file_written_with_its_mtime_put_back_is_not_committed,
    a_corrupt_exact_entry_falls_back_to_the_restore_key,
    a_corrupt_newest_entry_falls_back_to_an_older_one_of_the_prefix,
    only_corrupt_candidates_is_an_error_naming_the_entry,
    a_damaged_frame_after_the_tar_end_is_refused,
    data_after_the_tar_end_is_refused,
    a_footer_length_that_disagrees_with_the_tar_stream_is_refused,
    a_footer_entry_count_that_disagrees_with_the_archive_is_refused,
    extended_header_values_that_do_not_parse_refuse_the_entry,
    times_before_1970_and_after_2242_round_trip,
    a_linked_directory_path_caches_what_it_points_to,
    a_linked_file_path_caches_what_it_points_to,
    cachectls_own_staging_and_state_files_are_never_cached,
    paths_longer_than_path_max_save_and_restore,
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
    let mut files: Vec<_> = std::fs::read_dir(&state_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    // The state file and the lock its updates hold, nothing else (no temp file left).
    let extensions: Vec<_> = files
        .iter()
        .map(|f| f.extension().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(extensions, ["json", "lock"], "{files:?}");
    assert_eq!(files[0].with_extension("lock"), files[1], "{files:?}");
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

/// 1 GiB, sparse: read at memory speed, so a save spends about a second in it.
const BIG: u64 = 1 << 30;

/// Where process `pid` is reading `path`: the offset of its open file, if it has it open.
fn read_offset(pid: u32, path: &Path) -> Option<u64> {
    for fd in fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
        if fs::read_link(fd.path()).ok().as_deref() == Some(path) {
            let info = fs::read_to_string(format!(
                "/proc/{pid}/fdinfo/{}",
                fd.file_name().to_string_lossy()
            ))
            .ok()?;
            return info
                .lines()
                .find_map(|l| l.strip_prefix("pos:"))
                .and_then(|v| v.trim().parse().ok());
        }
    }
    None
}

/// Saves `deps/` with a big file in it, stops the save (SIGSTOP) while it is half-way through
/// reading the file, runs `change` on the file, lets it go on, and checks that nothing was
/// committed, the reason names the file and `why`, no upload is left, and the next save, of a
/// file left alone, succeeds. A save that finished reading before it could be stopped is run
/// again.
fn changed_while_saved(f: &Fixture, change: fn(&Path), why: &str) {
    let src = f.dir("src");
    let big = src.join("deps/big.bin");
    small_tree(&src.join("deps"), "changing");
    let run = (0..5)
        .find_map(|_| {
            fs::File::create(&big).unwrap().set_len(BIG).unwrap();
            let mut save = f.save("changing", &src);
            save.paths(["deps"]);
            let mut running = save.spawn();
            let started = Instant::now();
            loop {
                let at = read_offset(running.pid(), &big);
                if at.is_some_and(|at| at > 1 << 20 && at < BIG - (64 << 20)) {
                    running.signal("STOP");
                    break;
                }
                assert!(started.elapsed() < Duration::from_secs(60), "never read");
                if !running.running() {
                    // Read too fast to catch: clean the store and try again.
                    f.cachectl()
                        .args(["rm", "changing", "--store", &f.store])
                        .run();
                    return None;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            change(&big);
            running.signal("CONT");
            Some(running.wait())
        })
        .expect("the save was caught half-way through the file in 5 tries");
    let json = run.expect(0, "error");
    let reason = json["reason"].as_str().unwrap();
    let want = format!("{} changed while it was saved ({why}", big.display());
    assert!(
        reason.starts_with(&want) && reason.ends_with("); nothing was cached"),
        "reason {reason:?} is not {want:?}...\n{}",
        run.context()
    );
    assert!(
        !f.upload_open(),
        "the upload was left open\n{}",
        run.context()
    );
    let dst = f.dir("dst");
    f.restore("changing", &dst)
        .paths(["deps"])
        .run()
        .expect(0, "miss");
    fs::File::create(&big).unwrap().set_len(1 << 20).unwrap();
    f.save("changing", &src)
        .paths(["deps"])
        .run()
        .expect(0, "saved");
}

fn a_file_that_shrinks_while_saved_is_not_committed(f: Fixture) {
    changed_while_saved(
        &f,
        |big| {
            let file = fs::OpenOptions::new().write(true).open(big).unwrap();
            file.set_len(1 << 20).unwrap();
        },
        &format!("it shrank: {BIG} bytes when listed, "),
    );
}

fn a_file_that_grows_while_saved_is_not_committed(f: Fixture) {
    changed_while_saved(
        &f,
        |big| {
            let mut file = fs::OpenOptions::new().append(true).open(big).unwrap();
            file.seek(SeekFrom::End(0)).unwrap();
            file.write_all(&[7; 4096]).unwrap();
        },
        &format!("it grew past the {BIG} bytes listed)"),
    );
}

/// Same size, new bytes at a place already read: only the modification time tells.
fn a_file_rewritten_in_place_while_saved_is_not_committed(f: Fixture) {
    changed_while_saved(
        &f,
        |big| {
            let file = fs::OpenOptions::new().write(true).open(big).unwrap();
            file.write_all_at(&[0; 4096], 0).unwrap();
        },
        "it was written to)",
    );
}

/// Another file renamed over it (what editors and package managers do): another inode.
fn a_file_replaced_while_saved_is_not_committed(f: Fixture) {
    changed_while_saved(
        &f,
        |big| {
            let new = big.with_extension("new");
            fs::File::create(&new).unwrap().set_len(BIG).unwrap();
            fs::rename(&new, big).unwrap();
        },
        "it was replaced)",
    );
}

/// New bytes where the save already read, and the modification time put back (`touch -d`,
/// tools that preserve times): only the change time, which the kernel alone sets, tells.
fn a_file_written_with_its_mtime_put_back_is_not_committed(f: Fixture) {
    changed_while_saved(
        &f,
        |big| {
            let before = fs::metadata(big).unwrap();
            let file = fs::OpenOptions::new().write(true).open(big).unwrap();
            file.write_all_at(&[9; 4096], 0).unwrap();
            drop(file);
            filetime::set_file_mtime(
                big,
                filetime::FileTime::from_last_modification_time(&before),
            )
            .unwrap();
        },
        "it was written to or its attributes changed (its change time moved))",
    );
}

fn a_file_removed_while_saved_is_not_committed(f: Fixture) {
    changed_while_saved(&f, |big| fs::remove_file(big).unwrap(), "it was removed)");
}

/// Flips one byte in the middle of `key`'s stored archive (its footer's digest then no longer
/// matches): damage in the store, which fetching again cannot mend.
fn corrupt(f: &Fixture, key: &str) {
    let mut bytes = f.read_object(key);
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    f.replace_object(key, &bytes);
}

/// `last_used` of each entry, by key, from `ls --json`.
fn last_used(f: &Fixture) -> Vec<(String, bool)> {
    let run = f
        .cachectl()
        .args(["ls", "--json", "--store", &f.store])
        .run();
    run.assert_code(0);
    run.json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["key"].as_str().unwrap().to_owned(),
                !e["last_used"].is_null(),
            )
        })
        .collect()
}

/// The warning that names a skipped entry, for `cache`.
fn skipped_line(cache: &str, key: &str) -> String {
    format!(
        "warning: restore {cache}: skipped a bad entry, trying the next one: entry `{key}`: \
         archive is corrupt: its blake3 digest does not match the footer in two downloads: \
         the stored object is damaged"
    )
}

fn a_corrupt_exact_entry_falls_back_to_the_restore_key(f: Fixture) {
    let src = f.dir("src");
    save_tagged(&f, &src, "fb-1111aaaa", "old");
    wait_for_a_newer_timestamp();
    save_tagged(&f, &src, "fb-2222bbbb", "new");
    corrupt(&f, "fb-2222bbbb");
    let dst = f.dir("dst");
    let run = f
        .restore("fb-2222bbbb", &dst)
        .paths(["deps"])
        .args(["--restore-key", "fb-"])
        .run();
    let json = run.expect(0, "partial");
    assert_eq!(json["matched_key"], "fb-1111aaaa");
    assert_eq!(read(&dst.join("deps/a.txt")), "old a\n");
    let skipped = skipped_line("fb", "fb-2222bbbb");
    assert!(
        run.stderr.lines().any(|l| l == skipped),
        "no {skipped:?}\n{}",
        run.context()
    );
    assert_eq!(
        last_used(&f),
        [("fb-1111aaaa".into(), true), ("fb-2222bbbb".into(), false)]
    );
}

fn a_corrupt_newest_entry_falls_back_to_an_older_one_of_the_prefix(f: Fixture) {
    let src = f.dir("src");
    save_tagged(&f, &src, "pf-1111aaaa", "old");
    wait_for_a_newer_timestamp();
    save_tagged(&f, &src, "pf-2222bbbb", "new");
    corrupt(&f, "pf-2222bbbb");
    let dst = f.dir("dst");
    let run = f
        .restore("pf-ffffffff", &dst)
        .paths(["deps"])
        .args(["--restore-key", "pf-"])
        .run();
    let json = run.expect(0, "partial");
    assert_eq!(json["matched_key"], "pf-1111aaaa");
    assert_eq!(read(&dst.join("deps/sub/b.txt")), "old b\n");
    let skipped = skipped_line("pf", "pf-2222bbbb");
    assert!(
        run.stderr.lines().any(|l| l == skipped),
        "no {skipped:?}\n{}",
        run.context()
    );
    assert_eq!(
        last_used(&f),
        [("pf-1111aaaa".into(), true), ("pf-2222bbbb".into(), false)]
    );
}

fn only_corrupt_candidates_is_an_error_naming_the_entry(f: Fixture) {
    let src = f.dir("src");
    save_tagged(&f, &src, "bad-33334444", "bad");
    corrupt(&f, "bad-33334444");
    let dst = f.dir("dst");
    let run = f.restore("bad-33334444", &dst).paths(["deps"]).run();
    let json = run.expect(0, "error");
    assert_eq!(
        json["message"],
        "entry `bad-33334444`: archive is corrupt: its blake3 digest does not match the footer \
         in two downloads: the stored object is damaged"
    );
    assert_eq!(json["matched_key"], serde_json::Value::Null);
    assert_eq!(list_dir(&dst), Vec::<String>::new(), "nothing restored");
    assert_eq!(last_used(&f), [("bad-33334444".into(), false)]);
}

/// A store that accepts connections and never answers (a black-holed endpoint): the lookup
/// gives up after `--lookup-timeout`, not after the SDK's two minutes of retries, and the
/// build goes on (fail-open).
#[test]
fn a_store_that_never_answers_is_given_up_after_the_lookup_timeout() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let f = Fixture::s3_at(&endpoint, "black-hole");
    let cwd = f.dir("cwd");
    small_tree(&cwd.join("deps"), "hole");
    for op in ["restore", "save"] {
        let mut cmd = if op == "restore" {
            f.restore("hole-k", &cwd)
        } else {
            f.save("hole-k", &cwd)
        };
        let run = cmd
            .paths(["deps"])
            .args(["--lookup-timeout", "1s"])
            .timeout(Duration::from_secs(60))
            .run();
        let json = run.expect(0, "error");
        let field = if op == "restore" { "message" } else { "reason" };
        assert_eq!(
            json[field],
            "look up `hole-k` in s3://black-hole/: no answer within 1 s",
            "{op}\n{}",
            run.context()
        );
        assert!(
            run.stderr
                .lines()
                .any(|l| l.starts_with("hint: check the network path")),
            "{}",
            run.context()
        );
    }
    drop(silent);
}

/// zstd frame of `data` with its content checksum, as cachectl writes them.
fn frame(data: &[u8]) -> Vec<u8> {
    let mut enc = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
    enc.include_checksum(true).unwrap();
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// A valid tar stream for the path `deps` (`0/`, `0/a.txt`) and its entry count.
fn deps_tar() -> (Vec<u8>, u64) {
    RawTar::new()
        .dir("0/")
        .file("0/a.txt", b"planted a\n")
        .finish()
}

/// Saves `deps` as `key`, then replaces its object with `body` and a footer whose digest is
/// right (so only what the body decompresses to can be wrong) and whose lengths are given.
fn plant(f: &Fixture, key: &str, body: Vec<u8>, tar_len: u64, entries: u64) -> std::path::PathBuf {
    let src = f.dir("src");
    small_tree(&src.join("deps"), "saved");
    f.save(key, &src).paths(["deps"]).run().expect(0, "saved");
    let mut object = body;
    let footer = footer(&object, tar_len, entries);
    object.extend_from_slice(&footer);
    f.replace_object(key, &object);
    f.dir("dst")
}

/// The restore refuses the entry with exactly `why`, and writes nothing.
fn assert_refused_with(f: &Fixture, key: &str, dst: &Path, why: &str) {
    let run = f.restore(key, dst).paths(["deps"]).run();
    let json = run.expect(0, "error");
    assert_eq!(
        json["message"],
        format!("entry `{key}`: archive is corrupt: {why}")
    );
    assert_eq!(list_dir(dst), Vec::<String>::new());
}

/// The tar is whole in the first frame; a second frame of padding has a damaged last block
/// (its checksum no longer matches). Only reading every frame to its end finds it.
fn a_damaged_frame_after_the_tar_end_is_refused(f: Fixture) {
    let (tar, entries) = deps_tar();
    let padding = vec![0u8; 10240];
    let mut second = frame(&padding);
    let last = second.len() - 1;
    second[last] ^= 0x55; // the frame's content checksum
    let body = [frame(&tar), second].concat();
    let dst = plant(
        &f,
        "late-damage",
        body,
        (tar.len() + padding.len()) as u64,
        entries,
    );
    let run = f.restore("late-damage", &dst).paths(["deps"]).run();
    let json = run.expect(0, "error");
    let message = json["message"].as_str().unwrap();
    assert!(
        message.starts_with("entry `late-damage`: archive is corrupt: the archive does not decode"),
        "{}",
        run.context()
    );
    assert_eq!(list_dir(&dst), Vec::<String>::new());
}

fn data_after_the_tar_end_is_refused(f: Fixture) {
    let (mut tar, entries) = deps_tar();
    tar.extend_from_slice(b"hidden after the end-of-archive blocks");
    let dst = plant(&f, "trailing", frame(&tar), tar.len() as u64, entries);
    assert_refused_with(
        &f,
        "trailing",
        &dst,
        "it holds data after the end of the tar stream",
    );
}

fn a_footer_length_that_disagrees_with_the_tar_stream_is_refused(f: Fixture) {
    let (tar, entries) = deps_tar();
    let claimed = tar.len() as u64 + 512;
    let dst = plant(&f, "length", frame(&tar), claimed, entries);
    let why = format!(
        "footer promises a tar stream of {claimed} bytes, the archive holds {}",
        tar.len()
    );
    assert_refused_with(&f, "length", &dst, &why);
}

fn a_footer_entry_count_that_disagrees_with_the_archive_is_refused(f: Fixture) {
    let (tar, entries) = deps_tar();
    let dst = plant(&f, "count", frame(&tar), tar.len() as u64, entries + 1);
    let why = format!(
        "footer promises {} entries, the archive holds {entries}",
        entries + 1
    );
    assert_refused_with(&f, "count", &dst, &why);
}

/// Every honoured PAX value is parsed or the entry refused: a lenient reader falls back to the
/// plain header and restores what GNU tar and Python's tarfile refuse.
fn extended_header_values_that_do_not_parse_refuse_the_entry(f: Fixture) {
    // (key, records, in a global header, why the entry is refused)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a [u8])>, bool, &'a str);
    let cases: [Case; 6] = [
        (
            "pax-size-65-bits",
            vec![("size", b"99999999999999999999999")],
            false,
            "its extended (PAX) `size` is not a number of bytes below 2^64",
        ),
        (
            "pax-size-words",
            vec![("size", b"12 bytes")],
            false,
            "its extended (PAX) `size` is not a number of bytes below 2^64",
        ),
        (
            "pax-mtime-words",
            vec![("mtime", b"yesterday")],
            false,
            "its extended (PAX) `mtime` is not a time in seconds",
        ),
        (
            "pax-sparse",
            vec![("GNU.sparse.major", b"1"), ("GNU.sparse.minor", b"0")],
            false,
            "it is a GNU sparse file, which cachectl does not restore",
        ),
        (
            "pax-global-path",
            vec![("path", b"0/elsewhere")],
            true,
            "a global extended header sets path, linkpath, size or mtime for every entry",
        ),
        (
            "pax-global-size",
            vec![("size", b"1")],
            true,
            "a global extended header sets path, linkpath, size or mtime for every entry",
        ),
    ];
    for (key, records, global, why) in cases {
        let mut tar = RawTar::new();
        tar.dir("0/");
        if global {
            tar.global(&records);
        } else {
            tar.pax(&records);
        }
        tar.file("0/a.txt", b"planted a\n");
        let (tar, entries) = tar.finish();
        let dst = plant(&f, key, frame(&tar), tar.len() as u64, entries);
        let name = if global {
            "pax_global_header"
        } else {
            "0/a.txt"
        };
        let run = f.restore(key, &dst).paths(["deps"]).run();
        let json = run.expect(0, "error");
        assert_eq!(
            json["message"],
            format!("entry `{key}`: archive entry `{name}` refused: {why}"),
            "{}",
            run.context()
        );
        assert_eq!(list_dir(&dst), Vec::<String>::new());
        fs::remove_dir_all(f.root().join("src")).unwrap();
        fs::remove_dir_all(&dst).unwrap();
    }
}

/// ustar holds times from 1970 to 2242; the others travel in PAX and come back exact.
fn times_before_1970_and_after_2242_round_trip(f: Fixture) {
    use filetime::{set_file_mtime, set_symlink_file_times, FileTime};
    let src = f.dir("src");
    small_tree(&src.join("deps"), "times");
    std::os::unix::fs::symlink("a.txt", src.join("deps/link")).unwrap();
    let times = [
        ("deps/a.txt", -86_400 * 365),
        ("deps/sub/b.txt", 9_000_000_000),
        ("deps/sub", -1),
        ("deps", 0),
    ];
    for (path, secs) in times {
        set_file_mtime(src.join(path), FileTime::from_unix_time(secs, 0)).unwrap();
    }
    let old = FileTime::from_unix_time(-5_000_000, 0);
    set_symlink_file_times(src.join("deps/link"), old, old).unwrap();
    f.save("times", &src)
        .paths(["deps"])
        .run()
        .expect(0, "saved");
    let dst = f.dir("dst");
    f.restore("times", &dst)
        .paths(["deps"])
        .run()
        .expect(0, "hit");
    let mtime = |p: &Path| FileTime::from_last_modification_time(&fs::symlink_metadata(p).unwrap());
    for (path, secs) in times {
        assert_eq!(mtime(&dst.join(path)).unix_seconds(), secs, "{path}");
    }
    assert_eq!(
        mtime(&dst.join("deps/link")).unix_seconds(),
        -5_000_000,
        "the link"
    );
}

/// `save --path link` where `link -> real/`: the entry holds the directory's content (not the
/// link), and restores where the link points, or as a directory where no link is.
fn a_linked_directory_path_caches_what_it_points_to(f: Fixture) {
    let src = f.dir("src");
    small_tree(&src.join("real"), "linked");
    std::os::unix::fs::symlink("real", src.join("link")).unwrap();
    std::os::unix::fs::symlink("a.txt", src.join("real/inner-link")).unwrap();
    let save = f.save("linkdir", &src).paths(["link"]).run();
    save.expect(0, "saved");
    // With the link at the restore: the content lands where it points, the link stays.
    let with = f.dir("with");
    fs::create_dir(with.join("elsewhere")).unwrap();
    std::os::unix::fs::symlink("elsewhere", with.join("link")).unwrap();
    f.restore("linkdir", &with)
        .paths(["link"])
        .run()
        .expect(0, "hit");
    assert_eq!(
        fs::read_link(with.join("link")).unwrap(),
        Path::new("elsewhere")
    );
    assert_eq!(
        list_dir(&with.join("elsewhere")),
        ["a.txt", "inner-link", "sub"]
    );
    assert_eq!(read(&with.join("elsewhere/sub/b.txt")), "linked b\n");
    assert_eq!(
        fs::read_link(with.join("elsewhere/inner-link")).unwrap(),
        Path::new("a.txt"),
        "links inside the tree stay links"
    );
    // Without it: the path is made, a real directory.
    let without = f.dir("without");
    f.restore("linkdir", &without)
        .paths(["link"])
        .run()
        .expect(0, "hit");
    assert!(fs::symlink_metadata(without.join("link")).unwrap().is_dir());
    assert_eq!(read(&without.join("link/a.txt")), "linked a\n");
}

fn a_linked_file_path_caches_what_it_points_to(f: Fixture) {
    let src = f.dir("src");
    fs::write(src.join("real.lock"), "the file's content\n").unwrap();
    std::os::unix::fs::symlink("real.lock", src.join("cached.lock")).unwrap();
    f.save("linkfile", &src)
        .paths(["cached.lock"])
        .run()
        .expect(0, "saved");
    let with = f.dir("with");
    fs::write(with.join("target.lock"), "old\n").unwrap();
    std::os::unix::fs::symlink("target.lock", with.join("cached.lock")).unwrap();
    f.restore("linkfile", &with)
        .paths(["cached.lock"])
        .run()
        .expect(0, "hit");
    assert_eq!(
        fs::read_link(with.join("cached.lock")).unwrap(),
        Path::new("target.lock")
    );
    assert_eq!(read(&with.join("target.lock")), "the file's content\n");
    let without = f.dir("without");
    f.restore("linkfile", &without)
        .paths(["cached.lock"])
        .run()
        .expect(0, "hit");
    assert!(fs::symlink_metadata(without.join("cached.lock"))
        .unwrap()
        .is_file());
    assert_eq!(read(&without.join("cached.lock")), "the file's content\n");
}

/// cachectl's own files in a cached tree are left out, said once: staging and trash of other
/// restores, state files, and (local store) the store itself, whatever path reaches it.
fn cachectls_own_staging_and_state_files_are_never_cached(f: Fixture) {
    let home = f.root().join("home");
    let cache = home.join(".cache");
    small_tree(&cache.join("tool"), "own");
    write_file(&cache.join(".cachectl-staging-1-0/root/x"), "staging");
    write_file(&cache.join(".cachectl-trash-1-0/root/x"), "trash");
    write_file(&cache.join("cachectl-state-abc.json"), "{}");
    let mut files = Vec::new();
    for (i, store) in [
        f.store.clone(),
        cache.join("cachectl").display().to_string(),
    ]
    .iter()
    .enumerate()
    {
        if i == 1 && f.kind == crate::support::StoreKind::S3 {
            continue;
        }
        for round in 0..3 {
            let run = f
                .cachectl()
                .cwd(&home)
                .args(["save", "--json", "--store", store, "--key"])
                .arg(format!("own-{i}-{round}"))
                .paths(["~/.cache"])
                .run();
            let json = run.expect(0, "saved");
            files.push(json["files"].as_u64().unwrap());
            let line = run
                .stderr
                .lines()
                .find(|l| l.starts_with("warning: save: left out cachectl's own files: "))
                .unwrap_or_else(|| panic!("no warning\n{}", run.context()));
            assert!(line.contains(".cachectl-staging-1-0"), "{line}");
            assert!(line.contains("cachectl-state-abc.json"), "{line}");
        }
    }
    // ~/.cache, tool/, a.txt, sub/, sub/b.txt: the same five every time, store or not.
    assert!(files.iter().all(|&n| n == 5), "entries per save: {files:?}");
}

fn write_file(path: &Path, contents: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, contents).unwrap();
}

/// Runs `find ROOT ARGS...` (find walks and opens relative to directory handles, so it reaches
/// paths the kernel refuses in one call) and returns its output.
fn find(root: &Path, args: &[&str]) -> String {
    let out = Command::new("find").arg(root).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A file under 21 nested 200-byte directories (~4.2 KB of path, past PATH_MAX, as GNU tar
/// archives it) saves and restores exactly: into nothing, over the old tree, and merged.
fn paths_longer_than_path_max_save_and_restore(f: Fixture) {
    let src = f.dir("src");
    let deep: PathBuf = (0..21)
        .map(|i| format!("{i:02}{}", "d".repeat(198)))
        .collect();
    assert!(src.join("deps").join(&deep).as_os_str().len() > 4096);
    // Made level by level, each relative to the handle of the one above, as a package manager
    // would (no single path to it fits in a system call).
    {
        use rustix::fs::{mkdirat, openat, Mode, OFlags, CWD};
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        fs::create_dir(src.join("deps")).unwrap();
        let mut dir = openat(CWD, src.join("deps"), flags, Mode::empty()).unwrap();
        for name in deep.iter() {
            mkdirat(&dir, name, Mode::from_raw_mode(0o755)).unwrap();
            dir = openat(&dir, name, flags, Mode::empty()).unwrap();
        }
        let leaf = openat(
            &dir,
            "leaf.txt",
            OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .unwrap();
        std::io::Write::write_all(&mut fs::File::from(leaf), b"deep content").unwrap();
    }
    let save = f.save("deep", &src).paths(["deps"]).run();
    let json = save.expect(0, "saved");
    assert_eq!(json["files"], 23, "deps, 21 directories, the file");
    let dst = f.dir("dst");
    for round in ["into nothing", "over the old tree", "merged"] {
        let mut restore = f.restore("deep", &dst);
        restore.paths(["deps"]);
        if round == "merged" {
            restore.arg("--merge");
        }
        restore.run().expect(0, "hit");
        assert_eq!(
            find(
                &dst.join("deps"),
                &["-name", "leaf.txt", "-execdir", "cat", "{}", ";"]
            ),
            "deep content",
            "{round}"
        );
        assert_eq!(
            find(&dst.join("deps"), &["-type", "d"]).lines().count(),
            22,
            "{round}"
        );
    }
}
