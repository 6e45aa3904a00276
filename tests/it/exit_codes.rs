//! Every exit code of README's "Exit codes" table, produced by a real run with the reason it
//! stands for; and the quiet end of a command whose reader closed the pipe (`| head`).

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::store::small_tree;
use crate::support::{for_each_store, write, Fixture, Run, StoreKind};

/// `error: ...` as the first stderr line and a `hint: ...` line after it: the one format.
fn assert_error_with_hint(run: &Run, error: &str) {
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert!(
        lines
            .first()
            .is_some_and(|l| l.starts_with("error: ") && l.contains(error)),
        "first stderr line is not `error: ...{error}...`\n{}",
        run.context()
    );
    assert!(
        lines.get(1).is_some_and(|l| l.starts_with("hint: ")),
        "no `hint:` line after the error\n{}",
        run.context()
    );
}

#[test]
fn exit_0_on_a_miss() {
    let f = Fixture::new(StoreKind::Local, "exit-0");
    let cwd = f.dir("cwd");
    f.restore("never-saved", &cwd)
        .paths(["deps"])
        .run()
        .expect(0, "miss");
}

#[test]
fn empty_flag_variables_are_off_not_usage_errors() {
    // A buildspec passing unset variables through sets them empty.
    let f = Fixture::new(StoreKind::Local, "empty-flags");
    let cwd = f.dir("cwd");
    for var in ["CACHECTL_NO_METRICS", "CACHECTL_STRICT"] {
        f.restore("never-saved", &cwd)
            .paths(["deps"])
            .env(var, "")
            .run()
            .expect(0, "miss");
    }
    let run = f
        .cachectl()
        .env("CACHECTL_PRUNE_DRY_RUN", "")
        .args(["prune", "--store", &f.store, "--max-age", "1d"])
        .run();
    run.assert_code(0);
    let run = f
        .restore("never-saved", &cwd)
        .paths(["deps"])
        .env("CACHECTL_STRICT", "maybe")
        .run();
    run.assert_code(2);
}

#[test]
fn exit_1_on_fail_on_miss() {
    let f = Fixture::new(StoreKind::Local, "exit-1-miss");
    let cwd = f.dir("cwd");
    f.restore("never-saved", &cwd)
        .paths(["deps"])
        .arg("--fail-on-miss")
        .run()
        .expect(1, "miss");
}

#[test]
fn exit_1_when_hash_files_matches_nothing() {
    let f = Fixture::bare();
    let run = f.cachectl().args(["hash-files", "no-such.lock"]).run();
    run.assert_code(1);
    assert_error_with_hint(&run, "no file matches `no-such.lock`");
    assert_eq!(run.stdout, "", "{}", run.context());
}

#[test]
fn exit_1_when_the_store_cannot_be_read() {
    let f = Fixture::bare();
    let store = f.root().join("store-is-a-file");
    write(&store, "not a directory");
    let run = f
        .cachectl()
        .args(["ls", "--store", store.to_str().unwrap()])
        .run();
    run.assert_code(1);
    assert_error_with_hint(&run, "local store I/O");
}

#[test]
fn exit_2_for_an_unknown_flag() {
    let f = Fixture::bare();
    let run = f.cachectl().args(["restore", "--no-such-flag"]).run();
    run.assert_code(2);
    run.assert_stderr_has("unexpected argument '--no-such-flag'");
}

#[test]
fn exit_2_for_prune_without_a_deleting_rule() {
    let f = Fixture::new(StoreKind::Local, "exit-2-prune");
    let run = f
        .cachectl()
        .args(["prune", "--keep-last", "3", "--store", &f.store])
        .run();
    run.assert_code(2);
    assert_error_with_hint(&run, "prune has no rule that deletes anything");
}

/// Thread creation fails (a process limit, as a container's pids limit does): the runtime
/// cannot start, and cachectl says so in one report with exit 3 rather than a raw panic.
#[test]
fn exit_3_when_no_thread_can_start() {
    let f = Fixture::new(StoreKind::Local, "exit-3");
    let mut cmd = f.cachectl();
    // RLIMIT_NPROC does not bind root: run as nobody when the tests run as root.
    if is_root() {
        cmd.wrapped([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "prlimit",
            "--nproc=1",
            "--",
        ]);
    } else {
        cmd.wrapped(["prlimit", "--nproc=1", "--"]);
    }
    let run = cmd.args(["ls", "--store", &f.store]).run();
    run.assert_code(3);
    assert_error_with_hint(&run, "thread");
    assert!(!run.stderr.contains("panicked at"), "{}", run.context());
}

fn is_root() -> bool {
    let out = std::process::Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

for_each_store!(
    exit_130_on_sigint_aborts_the_open_upload,
    exit_143_on_sigterm_aborts_the_open_upload,
);

fn exit_130_on_sigint_aborts_the_open_upload(f: Fixture) {
    interrupted_save(&f, "INT", 130, "SIGINT");
}

fn exit_143_on_sigterm_aborts_the_open_upload(f: Fixture) {
    interrupted_save(&f, "TERM", 143, "SIGTERM");
}

/// Starts a save slow enough to be caught mid-upload (incompressible data at zstd level 19,
/// 5 MiB parts), signals it once its upload is open, and checks the exit code, the one
/// report line, and that nothing is left: no entry, no open upload.
fn interrupted_save(f: &Fixture, signal: &str, code: i32, name: &str) {
    let src = f.dir("src");
    write(&src.join("deps/blob.bin"), Fixture::noise(40 << 20));
    small_tree(&src.join("deps"), "small");
    let mut save = f.save("interrupted", &src);
    save.paths(["deps"]).args([
        "--level",
        "19",
        "--part-size-mib",
        "5",
        "--concurrency",
        "1",
    ]);
    let mut running = save.spawn();
    let started = Instant::now();
    while !f.upload_has_a_part() {
        assert!(
            running.running(),
            "the save ended before its upload was seen: {}",
            running.wait().context()
        );
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no upload opened within 2 minutes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    running.signal(signal);
    let run = running.wait();
    run.assert_code(code);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert!(
        lines.contains(&format!("error: interrupted by {name}; aborted the open upload").as_str()),
        "{}",
        run.context()
    );
    assert!(
        !f.upload_open(),
        "the upload was left open\n{}",
        run.context()
    );
    let dst = f.dir("dst");
    f.restore("interrupted", &dst)
        .paths(["deps"])
        .run()
        .expect(0, "miss");
}

/// A local store with `n` entries (empty archives, no metadata: `ls` infers it), planted as
/// files: saving thousands of entries one by one would take minutes.
fn plant_local_entries(store: &Path, n: usize) {
    let dir = store.join("v1").join("0123456789abcdef");
    fs::create_dir_all(&dir).unwrap();
    for i in 0..n {
        fs::write(dir.join(format!("npm-linux-x64-{i:08x}")), b"").unwrap();
    }
}

/// No panic, no complaint: a reader that stopped reading got what it wanted.
fn assert_quiet_success(run: &Run) {
    run.assert_code(0);
    for noise in ["panicked", "failed printing", "Broken pipe", "error"] {
        assert!(
            !run.stderr.contains(noise),
            "stderr has {noise:?}\n{}",
            run.context()
        );
    }
}

#[test]
fn ls_into_a_closed_pipe_exits_0_quietly() {
    let f = Fixture::new(StoreKind::Local, "ls-pipe");
    plant_local_entries(Path::new(&f.store), 5000);
    let run = f
        .cachectl()
        .args(["ls", "--store", &f.store])
        .run_closing_stdout_after("KEY".len());
    assert_quiet_success(&run);
    assert_eq!(run.stdout, "KEY");
}

#[test]
fn ls_json_into_a_closed_pipe_exits_0_quietly() {
    let f = Fixture::new(StoreKind::Local, "ls-json-pipe");
    plant_local_entries(Path::new(&f.store), 5000);
    let run = f
        .cachectl()
        .args(["ls", "--json", "--store", &f.store])
        .run_closing_stdout_after(10);
    assert_quiet_success(&run);
    assert_eq!(run.stdout, "{\"entries\"");
}

#[test]
fn keys_into_a_closed_pipe_exits_0_quietly() {
    let f = Fixture::bare();
    let cwd = f.dir("repo");
    let mut toml = String::new();
    for i in 0..2000 {
        toml.push_str(&format!(
            "[cache.c{i:04}]\nkey = \"c{i:04}-linux-x64\"\npaths = [\"deps/{i}\"]\n\n"
        ));
    }
    write(&cwd.join("cachectl.toml"), toml);
    let run = f
        .cachectl()
        .cwd(&cwd)
        .arg("keys")
        .run_closing_stdout_after("[c0000]".len());
    assert_quiet_success(&run);
    assert_eq!(run.stdout, "[c0000]");
}

/// README's table lists exactly the codes cachectl has (`cachectl::error::code`), in order.
#[test]
fn readme_lists_every_exit_code() {
    use cachectl::error::code;
    let readme = include_str!("../../README.md");
    let section = readme
        .split("## Exit codes")
        .nth(1)
        .expect("README has an Exit codes section");
    let listed: Vec<u8> = section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| l.split('|').nth(1))
        .flat_map(|cell| {
            cell.split(',')
                .map(str::trim)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter_map(|c| c.parse().ok())
        .collect();
    assert_eq!(
        listed,
        [
            code::OK,
            code::FAILED,
            code::USAGE,
            code::BUG,
            code::SIGINT,
            code::SIGTERM
        ]
    );
}

/// A restore interrupted before any upload says so without claiming an abort.
#[test]
fn exit_130_on_sigint_while_nothing_uploads() {
    // Accepts connections (the kernel does) but never answers: the restore waits on it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let f = Fixture::s3_at(&endpoint, "silent");
    let cwd = f.dir("cwd");
    let mut restore = f.restore("k", &cwd);
    restore.paths(["deps"]);
    let running = restore.spawn();
    // Its first request has arrived: the command is waiting on the store, signals handled.
    silent.set_nonblocking(true).unwrap();
    let started = Instant::now();
    let _connection = loop {
        match silent.accept() {
            Ok((connection, _)) => break connection,
            Err(_) if started.elapsed() < Duration::from_secs(60) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("the restore never connected: {e}"),
        }
    };
    running.signal("INT");
    let run = running.wait();
    run.assert_code(130);
    assert_eq!(
        run.stderr.lines().last(),
        Some("error: interrupted by SIGINT"),
        "{}",
        run.context()
    );
    drop(silent);
}
