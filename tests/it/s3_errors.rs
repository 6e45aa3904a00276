//! S3 trouble is a warning and outcome `error` (exit 0), or exit 1 with `--strict`; never a
//! miss. Three real failures: nothing listening, a 403 from moto enforcing auth, a missing bucket.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::store::small_tree;
use crate::support::{list_dir, moto, Fixture, Run};

/// Generous: the point is that cachectl gives up by itself; the report gives the real time.
const GIVE_UP_TIMEOUT: Duration = Duration::from_secs(180);

#[derive(Clone, Copy, Debug)]
enum Op {
    Save,
    Restore,
}

/// Runs `op` against the fixture's store, with `--strict` or not.
fn run(f: &Fixture, op: Op, strict: bool) -> Run {
    let cwd = f.dir(&format!("{op:?}-{strict}"));
    let mut cmd = match op {
        Op::Save => {
            small_tree(&cwd.join("deps"), "trouble");
            f.save("trouble-key", &cwd)
        }
        Op::Restore => {
            let mut cmd = f.restore("trouble-key", &cwd);
            cmd.args(["--restore-key", "trouble-"]);
            cmd
        }
    };
    cmd.paths(["deps"]).timeout(GIVE_UP_TIMEOUT);
    if strict {
        cmd.arg("--strict");
    }
    let run = cmd.run();
    eprintln!(
        "[timing] {op:?} strict={strict} {} at {}: {:.2?}",
        f.store,
        f.endpoint.as_deref().unwrap_or("-"),
        run.elapsed
    );
    if let Op::Restore = op {
        assert_eq!(list_dir(&cwd), Vec::<String>::new(), "{}", run.context());
    }
    run
}

/// Outcome error with a message, a warning on stderr, exit 0; exit 1 with `--strict`.
fn assert_fails_open_or_strict(f: &Fixture, op: Op) -> Vec<String> {
    let mut messages = Vec::new();
    for strict in [false, true] {
        let run = run(f, op, strict);
        let json = run.expect(if strict { 1 } else { 0 }, "error");
        assert!(
            !run.stderr.trim().is_empty(),
            "no warning on stderr\n{}",
            run.context()
        );
        let message = message(&run, &json);
        eprintln!("[message] {op:?} {}: {message}", f.store);
        messages.push(message);
    }
    messages
}

/// `message` of the JSON (save may call it `reason`).
fn message(run: &Run, json: &Value) -> String {
    json.get("message")
        .or_else(|| json.get("reason"))
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no message\n{}", run.context()))
        .to_owned()
}

fn dead_endpoint() -> String {
    // Nothing listens once the listener is dropped: connection refused.
    format!("http://127.0.0.1:{}", moto::free_port())
}

#[test]
fn dead_endpoint_restore_fails_open_and_strict_exits_1() {
    let f = Fixture::s3_at(&dead_endpoint(), "dead-endpoint");
    assert_fails_open_or_strict(&f, Op::Restore);
}

#[test]
fn dead_endpoint_save_fails_open_and_strict_exits_1() {
    let f = Fixture::s3_at(&dead_endpoint(), "dead-endpoint");
    assert_fails_open_or_strict(&f, Op::Save);
}

fn assert_mentions_denied(messages: &[String]) {
    for message in messages {
        let lower = message.to_lowercase();
        assert!(
            [
                "denied",
                "403",
                "forbidden",
                "invalidaccesskeyid",
                "access key"
            ]
            .iter()
            .any(|word| lower.contains(word)),
            "the message does not say access was denied: {message:?}"
        );
    }
}

fn denied_fixture(test: &str) -> Fixture {
    let server = moto::moto_enforcing_auth();
    let bucket = moto::bucket_name(test);
    // The premise: this moto really answers 403 to these credentials.
    assert_eq!(server.list_status(&bucket), Err(403));
    Fixture::s3_at(&server.endpoint, &bucket)
}

#[test]
fn denied_restore_is_error_not_miss() {
    let f = denied_fixture("denied-restore");
    assert_mentions_denied(&assert_fails_open_or_strict(&f, Op::Restore));
}

#[test]
fn denied_save_is_error() {
    let f = denied_fixture("denied-save");
    assert_mentions_denied(&assert_fails_open_or_strict(&f, Op::Save));
}

fn missing_bucket_fixture(test: &str) -> Fixture {
    let server = moto::moto();
    let bucket = moto::bucket_name(test);
    assert_eq!(server.list_status(&bucket), Err(404));
    Fixture::s3_at(&server.endpoint, &bucket)
}

/// A missing bucket is a setup problem: the message must say so.
fn assert_mentions_bucket(messages: &[String]) {
    for message in messages {
        assert!(
            message.to_lowercase().contains("bucket"),
            "the message does not point at the bucket: {message:?}"
        );
    }
}

#[test]
fn missing_bucket_restore_is_error_not_miss() {
    let f = missing_bucket_fixture("missing-bucket-restore");
    assert_mentions_bucket(&assert_fails_open_or_strict(&f, Op::Restore));
}

#[test]
fn missing_bucket_save_is_error() {
    let f = missing_bucket_fixture("missing-bucket-save");
    let bucket = f.bucket.clone().unwrap();
    assert_mentions_bucket(&assert_fails_open_or_strict(&f, Op::Save));
    assert_eq!(
        moto::moto().list_status(&bucket),
        Err(404),
        "save created the bucket"
    );
}

#[test]
fn lookup_only_against_dead_endpoint_is_error_not_miss() {
    let f = Fixture::s3_at(&dead_endpoint(), "dead-lookup");
    let cwd = f.dir("cwd");
    let run = f
        .restore("k", &cwd)
        .paths(["deps"])
        .arg("--lookup-only")
        .timeout(GIVE_UP_TIMEOUT)
        .run();
    run.expect(0, "error");
    assert_eq!(list_dir(Path::new(&cwd)), Vec::<String>::new());
}
