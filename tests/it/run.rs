//! `cachectl run`: the install step skipped after an exact hit and run otherwise, with the
//! command's stdio, exit status and signals kept, and its time recorded in the restore → save
//! state. Local store: what `run` decides comes from the state file, whatever the store.
//! Its metrics against moto are in `metrics.rs`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::cmd::Cachectl;
use crate::support::{write, Fixture, StoreKind};

/// A repository with one configured cache, `deps` (key from `deps.lock`, restore keys by
/// prefix), and the state directory its builds share.
struct Repo {
    f: Fixture,
    src: PathBuf,
    state: PathBuf,
}

impl Repo {
    fn new() -> Repo {
        let f = Fixture::new(StoreKind::Local, "run");
        let src = f.dir("src");
        let state = f.dir("state");
        write(&src.join("deps.lock"), "v1\n");
        write(
            &src.join("cachectl.toml"),
            "[cache.deps]\nkey = \"deps-{{ hashFiles 'deps.lock' }}\"\nrestore-keys = [\"deps-\"]\npaths = [\"deps\"]\n",
        );
        Repo { f, src, state }
    }

    /// `cachectl ARGS...` in build `build` (its own CODEBUILD_BUILD_ID, so its own state file).
    fn cachectl(&self, build: u32, args: &[&str]) -> Cachectl {
        let mut cmd = self.f.cachectl();
        cmd.cwd(&self.src)
            .env("CACHECTL_STORE", &self.f.store)
            .env("CACHECTL_STATE_DIR", &self.state)
            .env("CODEBUILD_BUILD_ID", format!("run-test:build-{build}"))
            .args(args);
        cmd
    }

    /// `cachectl run --json --cache deps -- sh -c SCRIPT` in build `build`.
    fn run_sh(&self, build: u32, extra: &[&str], script: &str) -> crate::support::Run {
        let mut args = vec!["run", "--json", "--cache", "deps"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "sh", "-c", script]);
        self.cachectl(build, &args).run()
    }

    /// Build `build`: restore, then `deps/` made by the install if it ran, then save.
    fn restore(&self, build: u32) -> Value {
        let run = self.cachectl(build, &["restore", "--json"]).run();
        run.assert_code(0);
        run.json()
    }

    fn save(&self, build: u32) {
        self.cachectl(build, &["save"]).run().assert_code(0);
    }

    /// The state file of build `build`.
    fn state(&self, build: u32) -> Value {
        let name = format!("cachectl-state-run-test_build-{build}.json");
        let text = std::fs::read_to_string(self.state.join(&name))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        serde_json::from_str(&text).unwrap()
    }

    /// Builds 1 and 2 on an empty store: 1 misses, installs and saves; 2 hits exactly.
    fn warm(&self) {
        assert_eq!(self.restore(1)["outcome"], "miss");
        self.run_sh(1, &[], "mkdir -p deps && echo 1 > deps/installed")
            .assert_code(0);
        self.save(1);
        std::fs::remove_dir_all(self.src.join("deps")).unwrap();
        assert_eq!(self.restore(2)["outcome"], "hit");
    }
}

/// The last stdout line of a `run --json`: its report.
fn report(run: &crate::support::Run) -> Value {
    let line = run
        .stdout
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no report\n{}", run.context()));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}\n{}", run.context()))
}

fn marker(src: &Path) -> PathBuf {
    src.join("command-ran")
}

/// The command ran (it touched the marker), and the report's reason starts with `why`.
fn assert_ran_because(repo: &Repo, run: &crate::support::Run, why: &str) {
    assert!(marker(&repo.src).exists(), "{}", run.context());
    let reason = report(run)["reason"].as_str().unwrap().to_owned();
    assert!(reason.starts_with(why), "{reason}\n{}", run.context());
}

#[test]
fn run_skips_the_command_after_an_exact_hit() {
    let repo = Repo::new();
    repo.warm();
    let run = repo.run_sh(2, &[], "touch command-ran; exit 9");
    run.assert_code(0);
    assert!(!marker(&repo.src).exists(), "{}", run.context());
    let key = repo.state(2)["caches"]["deps"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        run.stderr,
        format!("run: skipping `sh -c 'touch command-ran; exit 9'`: cache deps restored its exact key ({key})\n"),
        "one line saying why\n{}",
        run.context()
    );
    let r = report(&run);
    assert_eq!(
        (&r["ran"], &r["restore"], &r["exit_code"], &r["seconds"]),
        (
            &Value::Bool(false),
            &Value::from("hit"),
            &Value::Null,
            &Value::from(0.0)
        ),
        "{r}"
    );
    let recorded = &repo.state(2)["runs"]["deps"];
    assert_eq!(recorded["ran"], false, "{recorded}");
    assert_eq!(recorded["restore"], "hit", "{recorded}");
}

#[test]
fn run_runs_the_command_after_a_partial_hit_a_miss_or_no_restore() {
    let repo = Repo::new();
    repo.warm();
    // Build 3: the lockfile changed, so an older entry is restored (partial hit).
    write(&repo.src.join("deps.lock"), "v2\n");
    assert_eq!(repo.restore(3)["outcome"], "partial");
    // Build 4: restores into another store, which has nothing (miss).
    let empty = repo.f.dir("empty-store");
    let miss = repo
        .cachectl(
            4,
            &["restore", "--json", "--store", empty.to_str().unwrap()],
        )
        .run();
    assert_eq!(miss.json()["outcome"], "miss", "{}", miss.context());
    let cases = [
        (3, "partial", "partial hit on cache deps"),
        (4, "miss", "cache deps missed"),
        // Build 5 never restored.
        (5, "", "no restore of cache deps is recorded in this build"),
    ];
    for (build, restore, why) in cases {
        let _ = std::fs::remove_file(marker(&repo.src));
        let run = repo.run_sh(build, &[], "touch command-ran");
        run.assert_code(0);
        assert!(
            marker(&repo.src).exists(),
            "build {build}\n{}",
            run.context()
        );
        let r = report(&run);
        assert_eq!(r["ran"], true, "build {build}: {r}");
        let want = if restore.is_empty() {
            Value::Null
        } else {
            Value::from(restore)
        };
        assert_eq!(r["restore"], want, "build {build}: {r}");
        assert!(
            r["reason"].as_str().unwrap().starts_with(why),
            "build {build}: {r}"
        );
        assert!(
            run.stderr.contains(&format!("run: {why}")),
            "build {build}\n{}",
            run.context()
        );
    }
}

#[test]
fn run_runs_the_command_when_the_key_changed_after_the_restore() {
    let repo = Repo::new();
    repo.warm();
    // The build rewrote its lockfile after the exact hit: the restored tree is not this one's.
    write(&repo.src.join("deps.lock"), "v3\n");
    let run = repo.run_sh(2, &[], "touch command-ran");
    run.assert_code(0);
    assert_ran_because(&repo, &run, "cache deps's key changed since its restore");
}

#[test]
fn run_always_runs_after_an_exact_hit_and_times_it() {
    let repo = Repo::new();
    repo.warm();
    let run = repo.run_sh(2, &["--always"], "sleep 0.3; touch command-ran");
    run.assert_code(0);
    assert!(marker(&repo.src).exists(), "{}", run.context());
    let r = report(&run);
    assert_eq!(
        (&r["ran"], &r["restore"]),
        (&Value::Bool(true), &Value::from("hit"))
    );
    let seconds = r["seconds"].as_f64().unwrap();
    assert!((0.3..30.0).contains(&seconds), "{r}");
}

#[test]
fn run_returns_the_commands_exit_status() {
    let repo = Repo::new();
    for code in [0, 1, 42, 255] {
        let run = repo.run_sh(1, &[], &format!("exit {code}"));
        assert_eq!(run.code, Some(code), "{}", run.context());
        assert_eq!(report(&run)["exit_code"], code, "{}", run.context());
        assert_eq!(repo.state(1)["runs"]["deps"]["exit_code"], code);
    }
    // Killed by a signal: cachectl is killed by the same one, as the shell would report it.
    for (name, signal) in [("KILL", 9), ("TERM", 15), ("INT", 2)] {
        let run = repo.run_sh(1, &[], &format!("kill -{name} $$"));
        assert_eq!(
            (run.code, run.signal),
            (None, Some(signal)),
            "SIG{name}\n{}",
            run.context()
        );
        let recorded = &repo.state(1)["runs"]["deps"];
        assert_eq!(recorded["exit_code"], Value::Null, "{recorded}");
    }
}

#[test]
fn run_passes_stdin_and_stdout_through() {
    let repo = Repo::new();
    // stdin from a pipe, the command's stdout and stderr untouched (no --json: stdout is
    // exactly the command's).
    let mut cmd = repo.cachectl(
        1,
        &[
            "run",
            "--cache",
            "deps",
            "--",
            "sh",
            "-c",
            "cat; echo to-stderr >&2",
        ],
    );
    cmd.wrapped([
        "sh",
        "-c",
        "printf 'line 1\\nline 2\\n\\001binary' | \"$0\" \"$@\"",
    ]);
    let run = cmd.run();
    run.assert_code(0);
    assert_eq!(
        run.stdout,
        "line 1\nline 2\n\u{1}binary",
        "{}",
        run.context()
    );
    assert!(run.stderr.contains("to-stderr\n"), "{}", run.context());
}

#[test]
fn run_records_the_commands_time() {
    let repo = Repo::new();
    let started = Instant::now();
    let run = repo.run_sh(1, &[], "sleep 0.4");
    let wall = started.elapsed();
    run.assert_code(0);
    let recorded = &repo.state(1)["runs"]["deps"];
    let seconds = recorded["seconds"].as_f64().unwrap();
    assert!(
        seconds >= 0.4 && seconds <= wall.as_secs_f64(),
        "{seconds} s recorded for a 0.4 s command, {wall:?} wall\n{recorded}"
    );
    assert_eq!(report(&run)["seconds"].as_f64(), Some(seconds));
    assert_eq!(
        (
            &recorded["ran"],
            &recorded["exit_code"],
            &recorded["restore"]
        ),
        (&Value::Bool(true), &Value::from(0), &Value::Null)
    );
    // Metrics are off in the harness: nothing is left for save to publish.
    assert_eq!(recorded["published"], true, "{recorded}");
}

#[test]
fn run_forwards_sigterm_to_the_command() {
    let repo = Repo::new();
    let started_file = repo.src.join("started");
    let script = "trap 'echo got-term; exit 7' TERM; touch started; while :; do sleep 0.05; done";
    let mut running = repo
        .cachectl(1, &["run", "--cache", "deps", "--", "sh", "-c", script])
        .spawn();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !started_file.exists() {
        assert!(Instant::now() < deadline, "the command never started");
        assert!(
            running.running(),
            "cachectl ended before its command started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    running.signal("TERM");
    let run = running.wait();
    assert_eq!(
        run.code,
        Some(7),
        "the command's trap ran and set the status\n{}",
        run.context()
    );
    assert_eq!(run.stdout, "got-term\n", "{}", run.context());
}

#[test]
fn run_of_a_missing_command_exits_as_a_shell_would() {
    let repo = Repo::new();
    let run = repo
        .cachectl(1, &["run", "--cache", "deps", "--", "no-such-command-here"])
        .run();
    run.assert_code(127);
    assert!(
        run.stderr
            .contains("error: run: cannot run `no-such-command-here`"),
        "{}",
        run.context()
    );
    let not_executable = repo.src.join("not-executable");
    write(&not_executable, "#!/bin/sh\n");
    let run = repo
        .cachectl(
            1,
            &[
                "run",
                "--cache",
                "deps",
                "--",
                not_executable.to_str().unwrap(),
            ],
        )
        .run();
    run.assert_code(126);
}

#[test]
fn run_of_an_unknown_cache_warns_and_runs() {
    let repo = Repo::new();
    let run = repo
        .cachectl(
            1,
            &[
                "run",
                "--cache",
                "dpes",
                "--",
                "sh",
                "-c",
                "touch command-ran",
            ],
        )
        .run();
    run.assert_code(0);
    assert!(marker(&repo.src).exists(), "{}", run.context());
    assert!(
        run.stderr
            .contains("warning: run dpes: no cache `dpes` in ")
            && run.stderr.contains("hint: configured caches: deps"),
        "{}",
        run.context()
    );
}

#[test]
fn run_needs_the_command_after_a_double_dash() {
    let repo = Repo::new();
    let run = repo.cachectl(1, &["run", "--cache", "deps"]).run();
    run.assert_code(2);
    let run = repo
        .cachectl(1, &["run", "--cache", "deps", "npm", "ci"])
        .run();
    run.assert_code(2);
}

#[test]
fn run_from_a_subdirectory_still_checks_the_key() {
    let repo = Repo::new();
    repo.warm();
    // The lockfile changed after the exact hit; `run` runs in a subdirectory with no
    // cachectl.toml of its own: the restore's file and directory decide the key.
    write(&repo.src.join("deps.lock"), "v9\n");
    let sub = repo.src.join("frontend");
    std::fs::create_dir_all(&sub).unwrap();
    let mut cmd = repo.cachectl(
        2,
        &[
            "run",
            "--json",
            "--cache",
            "deps",
            "--",
            "touch",
            "ran-in-sub",
        ],
    );
    cmd.cwd(&sub);
    let run = cmd.run();
    run.assert_code(0);
    assert!(sub.join("ran-in-sub").exists(), "{}", run.context());
    assert!(
        report(&run)["reason"]
            .as_str()
            .unwrap()
            .starts_with("cache deps's key changed since its restore"),
        "{}",
        run.context()
    );
    // The same check, from a subdirectory, with the lockfile as it was: skipped.
    write(&repo.src.join("deps.lock"), "v1\n");
    let mut cmd = repo.cachectl(
        2,
        &["run", "--cache", "deps", "--", "touch", "skipped-in-sub"],
    );
    cmd.cwd(&sub);
    cmd.run().assert_code(0);
    assert!(!sub.join("skipped-in-sub").exists());
}

#[test]
fn run_runs_the_command_when_the_hit_cannot_be_checked_or_its_tree_is_gone() {
    let repo = Repo::new();
    repo.warm();
    // The lockfile the key hashes is gone: the key cannot be resolved, so install.
    std::fs::rename(repo.src.join("deps.lock"), repo.src.join("deps.lock.bak")).unwrap();
    let run = repo.run_sh(2, &[], "touch command-ran");
    run.assert_code(0);
    assert_ran_because(&repo, &run, "cache deps's key cannot be checked now (");
    std::fs::rename(repo.src.join("deps.lock.bak"), repo.src.join("deps.lock")).unwrap();
    // The restored tree was deleted after the hit.
    std::fs::remove_file(marker(&repo.src)).unwrap();
    std::fs::remove_dir_all(repo.src.join("deps")).unwrap();
    let run = repo.run_sh(2, &[], "touch command-ran");
    run.assert_code(0);
    assert!(marker(&repo.src).exists(), "{}", run.context());
    assert_eq!(
        report(&run)["reason"],
        "deps of cache deps is gone or changed since its restore",
        "{}",
        run.context()
    );
    // What the install started from, for InstallSeconds: nothing.
    assert_eq!(repo.state(2)["runs"]["deps"]["restore"], "miss");
}

#[test]
fn run_after_a_changed_key_counts_as_a_warm_install() {
    let repo = Repo::new();
    repo.warm();
    write(&repo.src.join("deps.lock"), "v3\n");
    repo.run_sh(2, &[], "true").assert_code(0);
    assert_eq!(repo.state(2)["runs"]["deps"]["restore"], "partial");
}

#[test]
fn run_after_two_plain_restores_of_one_key_family_runs_the_command() {
    let repo = Repo::new();
    let f = &repo.f;
    // Two trees, two keys of the family `web-npm`: one hits, one misses.
    let fe = repo.src.join("fe");
    std::fs::create_dir_all(fe.join("node_modules")).unwrap();
    write(&fe.join("node_modules/x"), "fe");
    let mut save = f.save("web-npm-aaaa1111", &repo.src);
    save.paths(["fe/node_modules"]);
    save.run().assert_code(0);
    // The miss first: the hit recorded last must not make `run` skip (`be/` got nothing).
    for (key, path, outcome) in [
        ("web-npm-bbbb2222", "be/node_modules", "miss"),
        ("web-npm-aaaa1111", "fe/node_modules", "hit"),
    ] {
        let mut restore = f.restore(key, &repo.src);
        restore
            .env("CACHECTL_STATE_DIR", &repo.state)
            .env("CODEBUILD_BUILD_ID", "run-test:build-1")
            .paths([path]);
        let run = restore.run();
        assert_eq!(run.json()["outcome"], outcome, "{}", run.context());
    }
    let state = repo.state(1);
    assert_eq!(state["caches"]["web-npm"]["ambiguous"], true, "{state:#}");
    let run = repo
        .cachectl(
            1,
            &[
                "run",
                "--json",
                "--cache",
                "web-npm",
                "--",
                "touch",
                "command-ran",
            ],
        )
        .run();
    run.assert_code(0);
    assert!(marker(&repo.src).exists(), "{}", run.context());
}

#[test]
fn run_json_report_is_a_line_of_its_own() {
    let repo = Repo::new();
    let run = repo
        .cachectl(
            1,
            &[
                "run",
                "--json",
                "--cache",
                "deps",
                "--",
                "printf",
                "no-newline",
            ],
        )
        .run();
    run.assert_code(0);
    let mut lines = run.stdout.lines();
    assert_eq!(lines.next(), Some("no-newline"), "{}", run.context());
    assert_eq!(report(&run)["ran"], true);
    // A command that cannot start still gets its report.
    let run = repo
        .cachectl(
            1,
            &[
                "run",
                "--json",
                "--cache",
                "deps",
                "--",
                "no-such-command-here",
            ],
        )
        .run();
    run.assert_code(127);
    let r = report(&run);
    assert_eq!(
        (&r["ran"], &r["exit_code"]),
        (&Value::Bool(false), &Value::from(127)),
        "{r}"
    );
}

#[test]
fn run_skips_when_a_path_the_entry_never_held_is_absent() {
    let repo = Repo::new();
    // `extra` never exists: entries hold `deps` only, and an exact hit still skips.
    write(
        &repo.src.join("cachectl.toml"),
        "[cache.deps]\nkey = \"deps-{{ hashFiles 'deps.lock' }}\"\npaths = [\"deps\", \"extra\"]\n",
    );
    repo.warm();
    let run = repo.run_sh(2, &[], "touch command-ran");
    run.assert_code(0);
    assert!(!marker(&repo.src).exists(), "{}", run.context());
    assert_eq!(report(&run)["ran"], false, "{}", run.context());
    let placed = &repo.state(2)["caches"]["deps"]["placed"];
    let paths: Vec<&str> = placed
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["deps"], "{placed}");
}

#[test]
fn run_runs_the_command_when_the_restored_tree_was_replaced() {
    // Wiped and made again empty, replaced by a file, by a dangling link: each is still "there"
    // but is not the tree the restore placed.
    type Replace = fn(&Path);
    let cases: [(&str, Replace); 3] = [
        ("made again, empty", |d| std::fs::create_dir(d).unwrap()),
        ("a file", |d| write(d, "not a tree")),
        ("a dangling link", |d| {
            std::os::unix::fs::symlink("/nonexistent", d).unwrap()
        }),
    ];
    for (name, replace) in cases {
        let repo = Repo::new();
        repo.warm();
        let deps = repo.src.join("deps");
        std::fs::remove_dir_all(&deps).unwrap();
        replace(&deps);
        let run = repo.run_sh(2, &[], "touch command-ran");
        run.assert_code(0);
        assert!(marker(&repo.src).exists(), "case {name}\n{}", run.context());
    }
    // Emptied at its top (an entry removed): changed too.
    let repo = Repo::new();
    repo.warm();
    std::fs::remove_file(repo.src.join("deps/installed")).unwrap();
    let run = repo.run_sh(2, &[], "touch command-ran");
    assert_ran_because(
        &repo,
        &run,
        "deps of cache deps is gone or changed since its restore",
    );
}

#[test]
fn packages_sharing_one_cachectl_toml_never_take_each_others_restore() {
    // A monorepo: one cachectl.toml, each package restores and installs in its own directory.
    let repo = Repo::new();
    let toml = repo.src.join("cachectl.toml");
    let (fe, be) = (repo.src.join("fe"), repo.src.join("be"));
    for (dir, lock) in [(&fe, "fe\n"), (&be, "be\n")] {
        std::fs::create_dir_all(dir).unwrap();
        write(&dir.join("deps.lock"), lock);
    }
    let in_dir = |dir: &Path, build: u32, args: &[&str]| {
        let mut cmd = repo.cachectl(build, &["--config", toml.to_str().unwrap()]);
        cmd.cwd(dir).args(args);
        cmd.run()
    };
    // Build 1 saves fe's tree.
    std::fs::create_dir_all(fe.join("deps")).unwrap();
    write(&fe.join("deps/fe-tree"), "fe");
    in_dir(&fe, 1, &["save"]).assert_code(0);
    // Build 2: be misses, then fe hits (the last restore recorded is fe's).
    in_dir(&be, 2, &["restore"]).assert_code(0);
    in_dir(&fe, 2, &["restore"]).assert_code(0);
    let run = in_dir(
        &be,
        2,
        &["run", "--json", "--cache", "deps", "--", "touch", "be-ran"],
    );
    run.assert_code(0);
    assert!(
        be.join("be-ran").exists(),
        "be's install must run\n{}",
        run.context()
    );
    // And be's save uploads be's tree under be's key, not under fe's.
    std::fs::create_dir_all(be.join("deps")).unwrap();
    write(&be.join("deps/be-tree"), "be");
    let save = in_dir(&be, 2, &["save", "--json"]);
    save.assert_code(0);
    let saved = save.json();
    let be_key = {
        let mut keys = repo.cachectl(2, &["--config", toml.to_str().unwrap(), "keys"]);
        keys.cwd(&be);
        let out = keys.run();
        out.stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("key").map(|k| k.trim().to_owned()))
            .unwrap()
    };
    assert_eq!(saved["key"], be_key.as_str(), "{saved}");
    assert_eq!(saved["outcome"], "saved", "{saved}");
    // Build 3: only fe restores (a hit); be's install, in a sibling directory, still runs.
    std::fs::remove_file(be.join("be-ran")).unwrap();
    in_dir(&fe, 3, &["restore"]).assert_code(0);
    let run = in_dir(
        &be,
        3,
        &["run", "--json", "--cache", "deps", "--", "touch", "be-ran"],
    );
    run.assert_code(0);
    assert!(be.join("be-ran").exists(), "{}", run.context());
    let reason = report(&run)["reason"].as_str().unwrap().to_owned();
    assert!(
        reason.starts_with("cache deps was restored in "),
        "{reason}"
    );
}

#[test]
fn parallel_runs_keep_each_others_unsent_install_times() {
    let repo = Repo::new();
    // Metrics on, CloudWatch unreachable: both install times wait in the state file.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let start = |cache: &str, sleep: &str| {
        let mut cmd = repo.cachectl(1, &["run", "--cache", cache, "--", "sleep", sleep]);
        cmd.env_remove("CACHECTL_NO_METRICS")
            .env("AWS_ENDPOINT_URL_CLOUDWATCH", &dead);
        cmd.spawn()
    };
    let (a, b) = (start("deps", "0.5"), start("other", "0.5"));
    a.wait().assert_code(0);
    b.wait().assert_code(0);
    let mut pending: Vec<String> = repo.state(1)["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["cache"].as_str().unwrap().to_owned())
        .collect();
    pending.sort();
    assert_eq!(pending, ["deps", "other"]);
}
