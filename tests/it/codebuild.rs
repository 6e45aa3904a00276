//! End to end: buildspecs/node-npm.yml run the way CodeBuild runs it, against moto.
//!
//! Four builds of one project, each in a "fresh container" (its own source dir, HOME and
//! TMPDIR), run the buildspec's pre_build, build and post_build commands, each command in its
//! own `sh -c` with the CODEBUILD_* variables set. The project is a real npm project with a
//! committed lockfile (tests/fixtures/npm-small*) and the build phase runs the real `npm ci`
//! and `npm test`. The real cachectl restores and saves in a moto bucket (every S3 request
//! passes through a recorder, so "uploads nothing" is checked request by request) and publishes
//! its metrics to moto's CloudWatch through the bridge in `support::cloudwatch`.
//!
//! 1. lockfile v1: restore misses, `cachectl run` runs `npm ci`, save uploads
//!    `v1/<pathset>/<key 1>`;
//! 2. lockfile v1: exact hit, `cachectl run` skips `npm ci` (tests pass on the restored
//!    node_modules), save is skipped as unchanged and sends no write request; the bucket is
//!    untouched;
//! 3. lockfile v2 (a dependency added): partial hit on key 1, `npm ci` runs, a new key is saved;
//! 4. lockfile v3 (another dependency), `npm test` fails: partial hit on key 3, `npm ci` runs
//!    (and succeeds), then CodeBuild ends the build phase and runs post_build with
//!    CODEBUILD_BUILD_SUCCEEDING=0; save is skipped by the default policy, the bucket untouched.
//!
//! Then CloudWatch must hold exactly that: 4 restores (1 hit, 2 partial, 1 miss), 2 saves, the
//! bytes moved, and 3 `npm ci` times (`InstallSeconds`: RestoreOutcome miss once, partial
//! twice, hit never), under ProjectName = the project and CacheName = the buildspec's cache.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use serde_json::{json, Value};

use crate::support::buildspec::{self, commands, repo};
use crate::support::cloudwatch::{self, RUNTIME};
use crate::support::{moto, tempdir, write, Fixture, Run};

/// The CodeBuild project: the ProjectName dimension. moto's GetMetricData ignores the
/// namespace once dimensions are given, so it must be unique among the tests too.
const PROJECT: &str = "it-codebuild-node-npm";
const NAMESPACE: &str = "it-codebuild-e2e";
const BUILDSPEC: &str = "node-npm.yml";
/// What `cachectl run` prints instead of running `npm ci` after an exact hit, up to the key.
const SKIPPED_NPM_CI: &str = "run: skipping `npm ci`: cache npm restored its exact key (";
/// The install step of the build phase.
const NPM_CI: &str = "cachectl run --cache npm -- npm ci";
/// Per command; `npm ci` of three tiny packages takes seconds.
const TIMEOUT: Duration = Duration::from_secs(120);

/// The project's tests: every dependency in package.json loads, at the version the lockfile
/// pins (after an exact hit node_modules comes only from the cache), and works.
const TEST_JS: &str = r#"const assert = require("assert");
const pkg = require("./package.json");
const lock = require("./package-lock.json");
for (const name of Object.keys(pkg.dependencies)) {
  const installed = require(name + "/package.json").version;
  const locked = lock.packages["node_modules/" + name].version;
  assert.strictEqual(installed, locked, name + ": installed " + installed + ", locked " + locked);
  require(name);
  console.log("ok " + name + "@" + installed);
}
assert.strictEqual(require("is-number")(7), true);
if (pkg.dependencies.ms) assert.strictEqual(require("ms")("2s"), 2000);
if (pkg.dependencies.isarray) assert.strictEqual(require("isarray")([]), true);
console.log("all tests passed");
"#;

/// A test that fails, as a broken commit's would.
const FAILING_TEST_JS: &str = r#"console.error("1 failing: isarray is not wired in yet");
process.exit(1);
"#;

/// `name` on PATH, or a clear failure: this test needs the real tool.
fn require_tool(name: &str, why: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not on PATH: tests/it/codebuild.rs {why}. Install Node.js (18 or \
                 later, with npm) and put it on PATH; this test does not skip itself."
            )
        })
}

fn pathset_digest(paths: &[String]) -> String {
    let mut sorted: Vec<&str> = paths.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    let input = format!("cachectl-paths-v1\n{}", sorted.join("\n"));
    blake3::hash(input.as_bytes()).to_hex()[..16].to_owned()
}

/// A CodeBuild-style build id, `<project>:<uuid>`, distinct per build.
fn build_id(n: u32) -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let seed = format!("{}-{n}-{nanos}", std::process::id());
    let h = blake3::hash(seed.as_bytes()).to_hex();
    format!(
        "{PROJECT}:{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

// --- S3 request recorder ------------------------------------------------------------------------

/// A loopback TCP proxy in front of moto's S3 that records the request line (`METHOD /path?query`)
/// of every HTTP request passing through, bodies skipped by their `Content-Length`. Bytes are
/// forwarded untouched; a request is recorded before any of it reaches moto, so it is in the log
/// by the time the command that sent it has exited.
struct S3Recorder {
    endpoint: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl S3Recorder {
    fn start(upstream: &str) -> S3Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the S3 recorder");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream
            .strip_prefix("http://")
            .expect("moto on http")
            .to_owned();
        let log = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::clone(&log);
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (upstream, log) = (upstream.clone(), Arc::clone(&shared));
                thread::spawn(move || relay(client, &upstream, &log));
            }
        });
        S3Recorder { endpoint, log }
    }

    fn mark(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    fn since(&self, mark: usize) -> Vec<String> {
        self.log.lock().unwrap()[mark..].to_vec()
    }
}

fn relay(mut client: TcpStream, upstream: &str, log: &Mutex<Vec<String>>) {
    let Ok(mut server) = TcpStream::connect(upstream) else {
        log.lock().unwrap().push("CONNECT-FAILED".into());
        return;
    };
    let (Ok(mut server_out), Ok(mut client_in)) = (server.try_clone(), client.try_clone()) else {
        return;
    };
    let answers = thread::spawn(move || {
        let _ = std::io::copy(&mut server_out, &mut client_in);
        let _ = client_in.shutdown(Shutdown::Write);
    });
    let mut parser = RequestParser::default();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        let n = match client.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let lines = parser.feed(&chunk[..n]);
        log.lock().unwrap().extend(lines);
        if server.write_all(&chunk[..n]).is_err() {
            break;
        }
    }
    let _ = server.shutdown(Shutdown::Write);
    let _ = answers.join();
}

/// Splits a client's byte stream into HTTP/1.1 requests.
#[derive(Default)]
struct RequestParser {
    head: Vec<u8>,
    /// Body bytes of the current request still to come.
    body_left: u64,
    /// A body we cannot delimit (chunked): stop parsing this connection.
    lost: bool,
}

impl RequestParser {
    /// The request lines that start in `bytes`.
    fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        let mut i = 0;
        while i < bytes.len() && !self.lost {
            if self.body_left > 0 {
                let skip = self.body_left.min((bytes.len() - i) as u64);
                self.body_left -= skip;
                i += skip as usize;
                continue;
            }
            // Heads are small: byte by byte up to the blank line.
            self.head.push(bytes[i]);
            i += 1;
            if self.head.ends_with(b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.head).into_owned();
                self.head.clear();
                lines.push(self.parse_head(&head));
                if self.lost {
                    lines.push("(chunked body: the rest of this connection is not parsed)".into());
                }
            }
        }
        lines
    }

    /// `METHOD /target`; sets how much body follows.
    fn parse_head(&mut self, head: &str) -> String {
        let mut parts = head.split(' ');
        let method = parts.next().unwrap_or_default();
        let target = parts.next().unwrap_or_default();
        let header = |name: &str| {
            head.split("\r\n").skip(1).find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
        };
        self.lost = header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
        self.body_left = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        format!("{method} {target}")
    }
}

/// Requests that write: anything but GET and HEAD (PutObject, UploadPart, multipart POSTs,
/// DELETE).
fn writes(requests: &[String]) -> Vec<&String> {
    requests
        .iter()
        .filter(|r| !(r.starts_with("GET ") || r.starts_with("HEAD ")))
        .collect()
}

// --- the bucket, straight from moto -------------------------------------------------------------

fn s3() -> aws_sdk_s3::Client {
    let http = aws_smithy_http_client::Builder::new().build_http();
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "it"))
        .endpoint_url(&moto::moto().endpoint)
        .force_path_style(true)
        .http_client(http)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// One object as listed: name -> (size, ETag, LastModified).
type Listing = BTreeMap<String, (i64, String, String)>;

/// The cache entries of a listing (`v1/`), without last-use records (`v1-used/`).
fn entries(listing: Listing) -> Listing {
    listing
        .into_iter()
        .filter(|(name, _)| name.starts_with("v1/"))
        .collect()
}

fn snapshot(client: &aws_sdk_s3::Client, bucket: &str) -> Listing {
    RUNTIME.block_on(async {
        let mut out = Listing::new();
        let mut pages = client
            .list_objects_v2()
            .bucket(bucket)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.unwrap_or_else(|e| panic!("list {bucket}: {e:?}"));
            for o in page.contents() {
                out.insert(
                    o.key().unwrap_or_default().to_owned(),
                    (
                        o.size().unwrap_or(-1),
                        o.e_tag().unwrap_or_default().to_owned(),
                        o.last_modified()
                            .map(|t| format!("{t:?}"))
                            .unwrap_or_default(),
                    ),
                );
            }
        }
        out
    })
}

fn multipart_uploads_in_progress(client: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let out = RUNTIME
        .block_on(client.list_multipart_uploads().bucket(bucket).send())
        .unwrap_or_else(|e| panic!("list multipart uploads in {bucket}: {e:?}"));
    out.uploads()
        .iter()
        .map(|u| u.key().unwrap_or_default().to_owned())
        .collect()
}

// --- CodeBuild, emulated ------------------------------------------------------------------------

/// Everything the builds share: the buildspec, the bucket, the recorder, a bin dir with the
/// cachectl under test.
struct World {
    sandbox: tempfile::TempDir,
    spec: Value,
    bucket: String,
    recorder: S3Recorder,
    bridge: &'static str,
    /// `<sandbox>/bin`, first on PATH: `cachectl` -> the binary under test.
    bin: PathBuf,
}

/// One command of one phase, as it ran.
struct Step {
    phase: &'static str,
    run: Run,
    /// S3 requests sent while it ran.
    s3: Vec<String>,
}

struct Build {
    n: u32,
    id: String,
    src: PathBuf,
    steps: Vec<Step>,
    /// CODEBUILD_BUILD_SUCCEEDING after the build phase.
    succeeded: bool,
    /// What restore recorded for the cache in the build's restore -> save state file
    /// (`key`, `matched_key`, `outcome`, `paths`).
    restore: Value,
    /// What `cachectl run` recorded there (`restore`, `ran`, `seconds`, `exit_code`,
    /// `published`).
    run: Value,
    seconds: f64,
}

impl Build {
    fn phase(&self, phase: &str) -> Vec<&Step> {
        self.steps.iter().filter(|s| s.phase == phase).collect()
    }

    /// Every command's output, for failure messages.
    fn transcript(&self) -> String {
        transcript(self.n, &self.id, &self.src, &self.steps)
    }

    /// The post_build `cachectl save` step: exactly one (it exited 0: `World::build` fails the
    /// test when a post_build command fails).
    fn save_step(&self) -> &Step {
        let saves: Vec<&Step> = self
            .phase("post_build")
            .into_iter()
            .filter(|s| s.run.cmdline.trim_start().starts_with("cachectl save"))
            .collect();
        assert_eq!(saves.len(), 1, "{}", self.transcript());
        saves[0]
    }

    /// `save <cache>: ...` from save's stderr: its one summary line for the cache.
    fn save_line(&self, cache: &str) -> String {
        let step = self.save_step();
        let prefix = format!("save {cache}: ");
        let lines: Vec<&str> = step
            .run
            .stderr
            .lines()
            .filter(|l| l.starts_with(&prefix))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "build {}: expected one `{prefix}…` summary line\n{}",
            self.n,
            self.transcript()
        );
        lines[0][prefix.len()..].to_owned()
    }

    /// Warnings any cachectl command printed (metrics not published, store trouble, …).
    fn cachectl_warnings(&self) -> Vec<String> {
        self.steps
            .iter()
            .filter(|s| s.run.cmdline.contains("cachectl "))
            .flat_map(|s| s.run.stderr.lines().map(str::to_owned))
            .filter(|l| l.to_lowercase().contains("warning") || l.contains("error:"))
            .collect()
    }

    /// The `run: …` lines `cachectl run` printed in the build phase's install step (its other
    /// stderr lines are npm's).
    fn run_lines(&self) -> Vec<String> {
        let steps: Vec<&Step> = self
            .phase("build")
            .into_iter()
            .filter(|s| s.run.cmdline == NPM_CI)
            .collect();
        assert_eq!(steps.len(), 1, "{}", self.transcript());
        steps[0]
            .run
            .stderr
            .lines()
            .filter(|l| l.starts_with("run: "))
            .map(str::to_owned)
            .collect()
    }

    fn output_of_phase(&self, phase: &str) -> String {
        self.phase(phase)
            .iter()
            .map(|s| format!("{}{}", s.run.stdout, s.run.stderr))
            .collect()
    }
}

fn transcript(n: u32, id: &str, src: &Path, steps: &[Step]) -> String {
    let mut out = format!("=== build {n} ({id}), src {} ===\n", src.display());
    for step in steps {
        out.push_str(&format!(
            "--- [{}]\n{}\nS3 requests: {:?}\n",
            step.phase,
            step.run.context(),
            step.s3
        ));
    }
    out
}

impl World {
    fn new() -> World {
        let sandbox = tempdir("cachectl-it-codebuild-");
        let spec = buildspec::get(BUILDSPEC).clone();
        let moto = moto::moto();
        let bucket = moto::bucket_name("codebuild-node-npm");
        moto.create_bucket(&bucket);
        let recorder = S3Recorder::start(&moto.endpoint);
        let bin = sandbox.path().join("bin");
        fs::create_dir_all(&bin).unwrap();
        symlink(env!("CARGO_BIN_EXE_cachectl"), bin.join("cachectl")).unwrap();
        World {
            sandbox,
            spec,
            bucket,
            recorder,
            bridge: cloudwatch::bridge(),
            bin,
        }
    }

    /// The one cache of the embedded cachectl.toml: (name, its table).
    fn cache(&self) -> (String, Value) {
        let caches = self.spec["toml"]["cache"].as_object().unwrap();
        assert_eq!(caches.len(), 1, "{BUILDSPEC}: one cache expected");
        let (name, table) = caches.iter().next().unwrap();
        (name.clone(), table.clone())
    }

    /// The environment CodeBuild would give the build's commands, aimed at moto.
    fn env(&self, id: &str, n: u32, src: &Path, home: &Path, tmp: &Path) -> Vec<(String, String)> {
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut env: Vec<(String, String)> = Vec::new();
        // The buildspec's env.variables first; the test's store replaces the example bucket.
        if let Some(vars) = self.spec["yaml"]["env"]["variables"].as_object() {
            for (k, v) in vars {
                env.push((k.clone(), v.as_str().unwrap_or_default().to_owned()));
            }
        }
        let store = format!("s3://{}", self.bucket);
        let s = |v: &Path| v.display().to_string();
        env.extend(
            [
                ("PATH", path),
                ("HOME", s(home)),
                ("TMPDIR", s(tmp)),
                ("CODEBUILD_CI", "true".into()),
                ("CODEBUILD_BUILD_ID", id.to_owned()),
                ("CODEBUILD_BUILD_NUMBER", n.to_string()),
                (
                    "CODEBUILD_BUILD_ARN",
                    format!("arn:aws:codebuild:us-east-1:123456789012:build/{id}"),
                ),
                ("CODEBUILD_SRC_DIR", s(src)),
                ("CACHE_BUCKET", self.bucket.clone()),
                ("CACHECTL_STORE", store),
                ("CACHECTL_METRICS_NAMESPACE", NAMESPACE.into()),
                ("AWS_ENDPOINT_URL_S3", self.recorder.endpoint.clone()),
                ("AWS_ENDPOINT_URL_CLOUDWATCH", self.bridge.to_owned()),
                ("AWS_ACCESS_KEY_ID", "testing".into()),
                ("AWS_SECRET_ACCESS_KEY", "testing".into()),
                ("AWS_REGION", "us-east-1".into()),
                ("AWS_DEFAULT_REGION", "us-east-1".into()),
                ("AWS_EC2_METADATA_DISABLED", "true".into()),
                (
                    "AWS_CONFIG_FILE",
                    "/nonexistent/cachectl-it/aws-config".into(),
                ),
                (
                    "AWS_SHARED_CREDENTIALS_FILE",
                    "/nonexistent/cachectl-it/aws-credentials".into(),
                ),
                ("RUST_BACKTRACE", "1".into()),
                // Quieter, faster npm; nothing here changes what is installed or cached.
                ("NPM_CONFIG_AUDIT", "false".into()),
                ("NPM_CONFIG_FUND", "false".into()),
                ("NPM_CONFIG_UPDATE_NOTIFIER", "false".into()),
            ]
            .map(|(k, v)| (k.to_owned(), v)),
        );
        // npm must reach its registry the way it does here (proxy, mirror, CA), loopback direct.
        for name in [
            "http_proxy",
            "https_proxy",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "NPM_CONFIG_REGISTRY",
            "npm_config_registry",
            "NODE_EXTRA_CA_CERTS",
            "SSL_CERT_FILE",
        ] {
            if let Ok(value) = std::env::var(name) {
                env.push((name.to_owned(), value));
            }
        }
        for name in ["no_proxy", "NO_PROXY"] {
            let value = std::env::var(name).unwrap_or_default();
            let sep = if value.is_empty() { "" } else { "," };
            env.push((name.to_owned(), format!("{value}{sep}127.0.0.1,localhost")));
        }
        env
    }

    /// One build in a fresh "container": the fixture project `fixture` as the source, `test_js`
    /// as its tests; pre_build, build, post_build as CodeBuild runs them.
    fn build(&self, n: u32, fixture: &str, test_js: &str) -> Build {
        let started = Instant::now();
        let root = self.sandbox.path().join(format!("build{n}"));
        let (src, home, tmp) = (root.join("src"), root.join("home"), root.join("tmp"));
        for dir in [&src, &home, &tmp] {
            fs::create_dir_all(dir).unwrap();
        }
        let fixture_dir = repo().join("tests/fixtures").join(fixture);
        for file in ["package.json", "package-lock.json"] {
            fs::copy(fixture_dir.join(file), src.join(file))
                .unwrap_or_else(|e| panic!("{}/{file}: {e}", fixture_dir.display()));
        }
        write(&src.join("test.js"), test_js);
        write(
            &src.join("cachectl.toml"),
            self.spec["toml_text"].as_str().unwrap(),
        );
        let id = build_id(n);
        let env = self.env(&id, n, &src, &home, &tmp);

        let mut steps = Vec::new();
        let mut succeeding = true;
        for phase in ["pre_build", "build", "post_build"] {
            for command in commands(&self.spec, phase) {
                // Builds run one after another here, not in separate containers: /tmp is the
                // build's own TMPDIR.
                let command = command.replace("/tmp/", &format!("{}/", tmp.display()));
                let mut cmd = Command::new("/bin/sh");
                cmd.arg("-c")
                    .arg(&command)
                    .current_dir(&src)
                    .env_clear()
                    .envs(env.iter().map(|(k, v)| (k, v)))
                    .env(
                        "CODEBUILD_BUILD_SUCCEEDING",
                        if succeeding { "1" } else { "0" },
                    );
                let mark = self.recorder.mark();
                let run = exec(&mut cmd, command.trim().to_owned());
                let ok = run.code == Some(0);
                steps.push(Step {
                    phase,
                    run,
                    s3: self.recorder.since(mark),
                });
                if ok {
                    continue;
                }
                // A failed command ends its phase. After pre_build that ends the build (no
                // post_build): the buildspec's restore must never do that. After build,
                // CodeBuild goes on to post_build with CODEBUILD_BUILD_SUCCEEDING=0.
                assert_eq!(
                    phase,
                    "build",
                    "build {n}: a {phase} command failed\n{}",
                    transcript(n, &id, &src, &steps)
                );
                succeeding = false;
                break;
            }
        }
        // The state file is in the build's temp dir (no CACHECTL_STATE_DIR), named by its id.
        let state_name: String = id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let state_path = tmp.join(format!("cachectl-state-{state_name}.json"));
        let text = fs::read_to_string(&state_path).unwrap_or_default();
        let mut build = Build {
            n,
            id,
            src,
            steps,
            succeeded: succeeding,
            restore: Value::Null,
            run: Value::Null,
            seconds: started.elapsed().as_secs_f64(),
        };
        let state: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!(
                "build {n}: {} holds {text:?}, not the restore -> save state ({e}); {} holds {:?}\n{}",
                state_path.display(),
                tmp.display(),
                crate::support::list_dir(&tmp),
                build.transcript()
            )
        });
        let (cache, _) = self.cache();
        build.restore = state["caches"][&cache].clone();
        build.run = state["runs"][&cache].clone();
        assert!(
            build.restore.is_object() && build.run.is_object(),
            "build {n}: no restore or no run of {cache} in {}: {state:#}\n{}",
            state_path.display(),
            build.transcript()
        );
        eprintln!(
            "[codebuild] build {n} ({fixture}): restore {}, {}, {:.1} s",
            build.restore["outcome"],
            if build.succeeded {
                "succeeded"
            } else {
                "FAILED"
            },
            build.seconds
        );
        build
    }
}

/// Runs `cmd` to completion (killed after TIMEOUT, which fails the test).
fn exec(cmd: &mut Command, cmdline: String) -> Run {
    crate::support::cmd::exec_with_timeout(cmd, cmdline, TIMEOUT)
}

/// `cachectl run` ran `npm ci` after a restore with outcome `outcome`: it printed why
/// (`reason`) and how long `npm ci` took, and recorded that in the state file, published.
fn assert_ran_npm_ci(b: &Build, outcome: &str, reason: &str) {
    let ctx = b.transcript();
    let seconds = b.run["seconds"].as_f64().unwrap_or(-1.0);
    assert!(
        seconds > 0.0,
        "build {}: npm ci took {seconds} s\n{ctx}",
        b.n
    );
    assert_eq!(
        b.run_lines(),
        [
            format!("run: {reason}: running `npm ci`"),
            format!("run: `npm ci` took {seconds:.1} s (exit 0)"),
        ],
        "build {}: what `cachectl run` printed\n{ctx}",
        b.n
    );
    assert_eq!(
        b.run,
        json!({"restore": outcome, "ran": true, "seconds": seconds, "exit_code": 0, "published": true}),
        "build {}: the run, as the state file records it\n{ctx}",
        b.n
    );
}

// --- CloudWatch, read back ----------------------------------------------------------------------

/// Every metric of the namespace: (name, dimensions as sorted (name, value) pairs).
fn list_metrics(client: &aws_sdk_cloudwatch::Client) -> Vec<(String, Vec<(String, String)>)> {
    let metrics: Vec<Metric> = RUNTIME.block_on(async {
        let mut all = Vec::new();
        let mut pages = client
            .list_metrics()
            .namespace(NAMESPACE)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.unwrap_or_else(|e| {
                panic!(
                    "ListMetrics: {}",
                    aws_sdk_cloudwatch::error::DisplayErrorContext(&e)
                )
            });
            all.extend(page.metrics().iter().cloned());
        }
        all
    });
    let mut out: Vec<(String, Vec<(String, String)>)> = metrics
        .iter()
        .map(|m| {
            let mut dims: Vec<(String, String)> = m
                .dimensions()
                .iter()
                .map(|d| {
                    (
                        d.name().unwrap_or_default().to_owned(),
                        d.value().unwrap_or_default().to_owned(),
                    )
                })
                .collect();
            dims.sort();
            (m.metric_name().unwrap_or_default().to_owned(), dims)
        })
        .collect();
    out.sort();
    out
}

/// GetMetricData over the whole test: `stat` of each metric for (cache, PROJECT), one period.
fn metric_data(
    client: &aws_sdk_cloudwatch::Client,
    cache: &str,
    since: SystemTime,
    queries: &[(&str, &str)],
) -> BTreeMap<String, f64> {
    let dims = [("CacheName", cache), ("ProjectName", PROJECT)];
    metric_values(client, &dims, since, queries)
        .into_iter()
        .map(|(k, values)| (k, values.iter().sum::<f64>()))
        .collect()
}

/// GetMetricData over the whole test in one period: the values of `stat` of each metric with
/// exactly the dimensions `dims` (moto matches all of them), none when no datum has them.
fn metric_values(
    client: &aws_sdk_cloudwatch::Client,
    dims: &[(&str, &str)],
    since: SystemTime,
    queries: &[(&str, &str)],
) -> BTreeMap<String, Vec<f64>> {
    let start = since - Duration::from_secs(120);
    let end = SystemTime::now() + Duration::from_secs(120);
    let span = end.duration_since(start).unwrap().as_secs();
    let period = i32::try_from(span.div_ceil(60) * 60).unwrap();
    let dims: Vec<Dimension> = dims
        .iter()
        .map(|(n, v)| Dimension::builder().name(*n).value(*v).build())
        .collect();
    let mut request = client
        .get_metric_data()
        .start_time(start.into())
        .end_time(end.into());
    for (i, (metric, stat)) in queries.iter().enumerate() {
        request = request.metric_data_queries(
            MetricDataQuery::builder()
                .id(format!("q{i}"))
                .metric_stat(
                    MetricStat::builder()
                        .metric(
                            Metric::builder()
                                .namespace(NAMESPACE)
                                .metric_name(*metric)
                                .set_dimensions(Some(dims.clone()))
                                .build(),
                        )
                        .period(period)
                        .stat(*stat)
                        .build(),
                )
                .build(),
        );
    }
    let out = RUNTIME.block_on(request.send()).unwrap_or_else(|e| {
        panic!(
            "GetMetricData: {}",
            aws_sdk_cloudwatch::error::DisplayErrorContext(&e)
        )
    });
    let mut values = BTreeMap::new();
    for result in out.metric_data_results() {
        let i: usize = result.id().unwrap()[1..].parse().unwrap();
        let (metric, stat) = queries[i];
        values.insert(format!("{metric} {stat}"), result.values().to_vec());
    }
    values
}

// --- the test -----------------------------------------------------------------------------------

#[test]
fn node_npm_buildspec_four_builds_against_moto() {
    let test_started = Instant::now();
    let since = SystemTime::now();
    require_tool("npm", "runs the buildspec's real `npm ci` and `npm test`");
    require_tool(
        "node",
        "runs the buildspec's `node --version` and the project's tests",
    );

    let world = World::new();
    let s3 = s3();
    let (cache, table) = world.cache();
    let paths: Vec<String> = table["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect();
    let pathset = pathset_digest(&paths);
    assert!(
        commands(&world.spec, "pre_build")
            .iter()
            .any(|c| c.starts_with("cachectl restore")),
        "pre_build restores"
    );
    assert_eq!(
        commands(&world.spec, "build")
            .iter()
            .filter(|c| c.as_str() == NPM_CI)
            .count(),
        1,
        "the build phase's install step is `{NPM_CI}`"
    );
    assert_eq!(cache, "npm", "the cache NPM_CI and SKIPPED_NPM_CI name");
    assert!(snapshot(&s3, &world.bucket).is_empty());
    let object = |key: &str| format!("v1/{pathset}/{key}");

    // --- build 1: cold. Miss, npm ci, save uploads the entry. ---
    let b1 = world.build(1, "npm-small", TEST_JS);
    let ctx = b1.transcript();
    assert!(b1.succeeded, "build 1 failed\n{ctx}");
    assert_eq!(b1.restore["outcome"], "miss", "{ctx}");
    assert!(b1.restore["matched_key"].is_null(), "{ctx}");
    let key1 = b1.restore["key"].as_str().unwrap().to_owned();
    assert!(key1.starts_with(&format!("{cache}-")), "{key1}");
    let build_out = b1.output_of_phase("build");
    assert!(
        !build_out.contains(SKIPPED_NPM_CI) && build_out.contains("added 1 package"),
        "build 1 must run npm ci\n{ctx}"
    );
    assert!(build_out.contains("all tests passed"), "{ctx}");
    assert_ran_npm_ci(&b1, "miss", &format!("cache npm missed ({key1})"));
    let line = b1.save_line(&cache);
    assert!(
        line.starts_with(&format!("saved {key1} ")),
        "build 1: {line}\n{ctx}"
    );
    let uploads = writes(&b1.save_step().s3);
    assert!(
        uploads
            .iter()
            .any(|r| r.contains(&format!("/{}/{}", world.bucket, object(&key1)))),
        "build 1's save sent no upload of {}: {:?}\n(the recorder must see uploads for its \
         silence to mean anything)",
        object(&key1),
        b1.save_step().s3
    );
    let after1 = snapshot(&s3, &world.bucket);
    assert_eq!(
        after1.keys().collect::<Vec<_>>(),
        [&object(&key1)],
        "the bucket after build 1\n{ctx}"
    );

    // --- build 2: same lockfile. Exact hit, npm ci skipped, nothing uploaded. ---
    let b2 = world.build(2, "npm-small", TEST_JS);
    let ctx = b2.transcript();
    assert!(b2.succeeded, "build 2 failed\n{ctx}");
    assert_eq!(b2.restore["outcome"], "hit", "{ctx}");
    assert_eq!(b2.restore["key"], key1.as_str(), "{ctx}");
    assert_eq!(b2.restore["matched_key"], key1.as_str(), "{ctx}");
    let build_out = b2.output_of_phase("build");
    assert!(
        build_out.contains(SKIPPED_NPM_CI) && !build_out.contains("added "),
        "build 2 must skip npm ci after an exact hit\n{ctx}"
    );
    assert_eq!(
        b2.run_lines(),
        [format!("{SKIPPED_NPM_CI}{key1})")],
        "build 2: `cachectl run` prints only why it skipped npm ci\n{ctx}"
    );
    assert_eq!(
        b2.run,
        json!({"restore": "hit", "ran": false, "seconds": 0.0, "exit_code": null, "published": true}),
        "build 2: the skipped run, as the state file records it\n{ctx}"
    );
    assert!(
        build_out.contains("ok is-number@7.0.0") && build_out.contains("all tests passed"),
        "build 2's tests must pass on the restored node_modules\n{ctx}"
    );
    let line = b2.save_line(&cache);
    assert!(
        line.starts_with(&format!("skipped {key1}, ")) && line.contains("unchanged"),
        "build 2: {line}\n{ctx}"
    );
    assert_eq!(
        writes(&b2.save_step().s3),
        Vec::<&String>::new(),
        "build 2's save wrote to S3 after an exact hit\n{ctx}"
    );
    assert_eq!(
        entries(snapshot(&s3, &world.bucket)),
        entries(after1.clone()),
        "build 2 changed the cache entries\n{ctx}"
    );

    // --- build 3: a dependency added. Partial hit on key 1, npm ci, a new key saved. ---
    let b3 = world.build(3, "npm-small-v2", TEST_JS);
    let ctx = b3.transcript();
    assert!(b3.succeeded, "build 3 failed\n{ctx}");
    assert_eq!(b3.restore["outcome"], "partial", "{ctx}");
    assert_eq!(b3.restore["matched_key"], key1.as_str(), "{ctx}");
    let key3 = b3.restore["key"].as_str().unwrap().to_owned();
    assert_ne!(key3, key1, "a changed lockfile must change the key");
    let build_out = b3.output_of_phase("build");
    assert!(
        !build_out.contains(SKIPPED_NPM_CI) && build_out.contains("added "),
        "build 3 must run npm ci after a partial hit\n{ctx}"
    );
    assert!(
        build_out.contains("ok ms@2.1.3") && build_out.contains("all tests passed"),
        "{ctx}"
    );
    assert_ran_npm_ci(
        &b3,
        "partial",
        &format!("partial hit on cache npm (restored {key1}, not {key3})"),
    );
    let line = b3.save_line(&cache);
    assert!(
        line.starts_with(&format!("saved {key3} ")),
        "build 3: {line}\n{ctx}"
    );
    let after3 = entries(snapshot(&s3, &world.bucket));
    assert_eq!(
        after3.keys().collect::<BTreeSet<_>>(),
        BTreeSet::from([&object(&key1), &object(&key3)]),
        "the bucket after build 3\n{ctx}"
    );
    assert_eq!(
        after3[&object(&key1)],
        after1[&object(&key1)],
        "build 3 touched key 1's object"
    );

    // --- build 4: another dependency, and a failing test. No save. ---
    let b4 = world.build(4, "npm-small-v3", FAILING_TEST_JS);
    let ctx = b4.transcript();
    assert!(
        !b4.succeeded,
        "build 4's tests fail: the build must fail\n{ctx}"
    );
    assert_eq!(b4.restore["outcome"], "partial", "{ctx}");
    assert_eq!(
        b4.restore["matched_key"],
        key3.as_str(),
        "the newest entry under the restore key wins\n{ctx}"
    );
    let key4 = b4.restore["key"].as_str().unwrap().to_owned();
    assert!(key4 != key1 && key4 != key3, "{key4}");
    assert!(
        b4.output_of_phase("build").contains("added "),
        "build 4 runs npm ci\n{ctx}"
    );
    // npm ci succeeded (the tests failed after it), so its time counts.
    assert_ran_npm_ci(
        &b4,
        "partial",
        &format!("partial hit on cache npm (restored {key3}, not {key4})"),
    );
    let line = b4.save_line(&cache);
    assert!(
        line.starts_with(&format!("skipped {key4}, "))
            && line.contains("CODEBUILD_BUILD_SUCCEEDING=0"),
        "build 4: {line}\n{ctx}"
    );
    assert_eq!(
        writes(&b4.save_step().s3),
        Vec::<&String>::new(),
        "build 4's save wrote to S3 after a failed build\n{ctx}"
    );
    assert_eq!(
        entries(snapshot(&s3, &world.bucket)),
        after3.clone(),
        "build 4 changed the cache entries\n{ctx}"
    );

    // Across all builds: a restore writes nothing but its one last-use record (builds 2-4
    // restored something, build 1 missed), nothing is left half-uploaded, no cachectl command
    // warned (a metrics warning would mean CloudWatch missed a datum).
    let builds = [&b1, &b2, &b3, &b4];
    for b in builds {
        let restore_writes: Vec<&String> = b
            .phase("pre_build")
            .iter()
            .flat_map(|step| writes(&step.s3))
            .collect();
        let want = if b.n == 1 { 0 } else { 1 };
        assert_eq!(
            restore_writes.len(),
            want,
            "build {}: restore writes {restore_writes:?}\n{}",
            b.n,
            b.transcript()
        );
        assert!(
            restore_writes
                .iter()
                .all(|w| w.starts_with("PUT ") && w.contains("/v1-used/")),
            "build {}: a restore wrote something other than a use record: {restore_writes:?}",
            b.n
        );
        assert_eq!(
            b.cachectl_warnings(),
            Vec::<String>::new(),
            "build {}\n{}",
            b.n,
            b.transcript()
        );
    }
    assert_eq!(
        multipart_uploads_in_progress(&s3, &world.bucket),
        Vec::<String>::new()
    );

    // --- CloudWatch ---
    // A restore downloads the whole object it matched (key 1 in builds 2-3, key 3 in build 4).
    let size = |key: &str| u64::try_from(after3[&object(key)].0).unwrap();
    let restored_bytes: u64 = builds
        .iter()
        .filter_map(|b| b.restore["matched_key"].as_str())
        .map(size)
        .sum();
    assert_eq!(restored_bytes, 2 * size(&key1) + size(&key3));
    let uploaded_bytes = size(&key1) + size(&key3);

    let client = cloudwatch::client();
    let listed = list_metrics(&client);
    let dims = vec![
        ("CacheName".to_owned(), cache.clone()),
        ("ProjectName".to_owned(), PROJECT.to_owned()),
    ];
    let names: BTreeSet<&str> = listed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "BytesDownloaded",
            "BytesUploaded",
            "CacheError",
            "CacheHit",
            "CacheMiss",
            "CachePartialHit",
            "InstallSeconds",
            "RestoreSeconds",
            "SaveSeconds",
        ]),
        "metrics in {NAMESPACE}: {listed:#?}"
    );
    // InstallSeconds has a third dimension, the outcome of the restore before `npm ci`.
    let mut install_outcomes = BTreeSet::new();
    for (name, d) in &listed {
        if name == "InstallSeconds" {
            let outcome = d
                .iter()
                .find(|(k, _)| k == "RestoreOutcome")
                .map_or("(none)", |(_, v)| v.as_str());
            let mut want = dims.clone();
            want.push(("RestoreOutcome".to_owned(), outcome.to_owned()));
            assert_eq!(d, &want, "dimensions of {name}: {listed:#?}");
            install_outcomes.insert(outcome);
        } else {
            assert_eq!(d, &dims, "dimensions of {name}: {listed:#?}");
        }
    }
    assert_eq!(
        install_outcomes,
        BTreeSet::from(["hit", "miss", "partial"]),
        "InstallSeconds' RestoreOutcome values: npm ci ran after a miss and partial hits, and \
         build 2's skip after the exact hit is an install of 0 s: {listed:#?}"
    );

    let queries = [
        ("CacheHit", "Sum"),
        ("CachePartialHit", "Sum"),
        ("CacheMiss", "Sum"),
        ("CacheError", "Sum"),
        ("CacheHit", "SampleCount"),
        ("CachePartialHit", "SampleCount"),
        ("CacheMiss", "SampleCount"),
        ("CacheError", "SampleCount"),
        ("RestoreSeconds", "SampleCount"),
        ("BytesDownloaded", "Sum"),
        ("SaveSeconds", "SampleCount"),
        ("BytesUploaded", "Sum"),
    ];
    let got = metric_data(&client, &cache, since, &queries);
    let want: BTreeMap<String, f64> = [
        ("CacheHit Sum", 1.0),
        ("CachePartialHit Sum", 2.0),
        ("CacheMiss Sum", 1.0),
        ("CacheError Sum", 0.0),
        // Every restore sends each outcome metric once (0 or 1).
        ("CacheHit SampleCount", 4.0),
        ("CachePartialHit SampleCount", 4.0),
        ("CacheMiss SampleCount", 4.0),
        ("CacheError SampleCount", 4.0),
        ("RestoreSeconds SampleCount", 4.0),
        ("BytesDownloaded Sum", restored_bytes as f64),
        // Only the two saves that uploaded.
        ("SaveSeconds SampleCount", 2.0),
        ("BytesUploaded Sum", uploaded_bytes as f64),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(got, want, "GetMetricData for {cache}/{PROJECT}");

    // InstallSeconds: one datum per `npm ci` that ran and succeeded, its seconds as `cachectl
    // run` recorded them, under the outcome of the restore before it. Build 1 missed, builds 3
    // and 4 were partial hits (build 4's npm ci succeeded; its tests failed after it); build 2
    // skipped npm ci: one install of 0 s under `hit`.
    let seconds = |b: &Build| b.run["seconds"].as_f64().unwrap();
    let (t1, t3, t4) = (seconds(&b1), seconds(&b3), seconds(&b4));
    // Minimum and Maximum pin each of at most two data exactly. No Sum: a sum of two times can
    // take 17 digits, and the bridge's JSON number parsing (serde_json without
    // `float_roundtrip`) may come back 1 ULP off for those.
    let install_stats = ["SampleCount", "Minimum", "Maximum"];
    // Per outcome, those statistics; one period, so one value each, or none without data.
    let installs = [
        ("miss", vec![1.0, t1, t1]),
        ("partial", vec![2.0, t3.min(t4), t3.max(t4)]),
        ("hit", vec![1.0, 0.0, 0.0]),
    ];
    let queries: Vec<(&str, &str)> = install_stats
        .iter()
        .map(|s| ("InstallSeconds", *s))
        .collect();
    for (outcome, values) in installs {
        let dims = [
            ("CacheName", cache.as_str()),
            ("ProjectName", PROJECT),
            ("RestoreOutcome", outcome),
        ];
        let got = metric_values(&client, &dims, since, &queries);
        let want: BTreeMap<String, Vec<f64>> = install_stats
            .iter()
            .enumerate()
            .map(|(i, stat)| {
                let value = values.get(i).map(|v| vec![*v]).unwrap_or_default();
                (format!("InstallSeconds {stat}"), value)
            })
            .collect();
        assert_eq!(
            got, want,
            "InstallSeconds for {cache}/{PROJECT}, RestoreOutcome={outcome}"
        );
    }

    // And as `cachectl stats` reports it, through the same endpoint variable as the builds.
    let f = Fixture::bare();
    let mut stats = f.cachectl();
    stats
        .env("AWS_ENDPOINT_URL_CLOUDWATCH", world.bridge)
        .args(["stats", "--json", "--since", "1h", "--namespace", NAMESPACE])
        .timeout(Duration::from_secs(60));
    let run = stats.run();
    run.assert_code(0);
    let report = run.json();
    let rows = report["caches"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{report:#}");
    let row = &rows[0];
    assert_eq!(
        (row["cache"].as_str(), row["project"].as_str()),
        (Some(cache.as_str()), Some(PROJECT)),
        "{report:#}"
    );
    for (field, want) in [
        ("restores", 4),
        ("hit", 1),
        ("partial", 2),
        ("miss", 1),
        ("error", 0),
        ("saves", 2),
        ("bytes_downloaded", restored_bytes),
        ("bytes_uploaded", uploaded_bytes),
    ] {
        assert_eq!(row[field], want, "stats {field}\n{report:#}");
    }
    assert!(
        row["restore_seconds"].as_f64().is_some_and(|s| s > 0.0),
        "{report:#}"
    );

    // --- the scheduled prune project (prune.yml's build command) ---
    let prune = |extra: &str| -> Value {
        let command = commands(buildspec::get("prune.yml"), "build")
            .into_iter()
            .find(|c| c.starts_with("cachectl prune"))
            .expect("prune.yml runs cachectl prune");
        let root = world.sandbox.path().join("prune");
        let (src, home, tmp) = (root.join("src"), root.join("home"), root.join("tmp"));
        for dir in [&src, &home, &tmp] {
            fs::create_dir_all(dir).unwrap();
        }
        let env = world.env("cachectl-prune:0001", 1, &src, &home, &tmp);
        let command = format!("{} --json {extra}", command.trim());
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(&command)
            .current_dir(&src)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("CACHECTL_METRICS_NAMESPACE", format!("{NAMESPACE}-prune"));
        let run = exec(&mut cmd, command.clone());
        run.assert_code(0);
        run.json()
    };
    // Right after the builds: both entries were just saved or restored, nothing goes.
    let report = prune("");
    assert_eq!(
        (&report["scanned"], &report["deleted"]),
        (&Value::from(2), &Value::from(0)),
        "{report:#}"
    );
    // Entries with a use record (`v1-used/<pathset>/<hour>/<key>`; an hour may have turned
    // between builds, so count entries, not records).
    let used: BTreeSet<String> = snapshot(&s3, &world.bucket)
        .into_keys()
        .filter_map(|k| {
            let parts: Vec<&str> = k.splitn(4, '/').collect();
            (parts[0] == "v1-used").then(|| format!("{}/{}", parts[1], parts[3]))
        })
        .collect();
    assert_eq!(
        used.len(),
        2,
        "both entries were restored (key 1 in builds 2-3, key 3 in build 4): {used:?}"
    );
    // Fifteen days later nobody restored them: max-unused 14d takes both, records too.
    let later = humantime::format_rfc3339_seconds(
        std::time::SystemTime::now() + Duration::from_secs(15 * 86400),
    );
    let report = prune(&format!("--as-of {later}"));
    assert_eq!(report["deleted"], 2, "{report:#}");
    assert_eq!(report["deleted_by_reason"]["max-unused"], 2, "{report:#}");
    assert!(
        snapshot(&s3, &world.bucket).is_empty(),
        "the bucket after the prune: {:?}",
        snapshot(&s3, &world.bucket)
    );

    let elapsed = test_started.elapsed();
    eprintln!("[codebuild] 4 builds, the metrics checks and 2 prunes in {elapsed:.1?}");
}

/// The recorder's parser: requests on one keep-alive connection, bodies skipped by length
/// (even when they look like requests), heads and bodies split anywhere across reads.
#[test]
fn s3_recorder_splits_requests_on_a_connection() {
    let body = b"GET /not-a-request HTTP/1.1\r\n\r\n";
    let mut stream = Vec::new();
    stream.extend_from_slice(b"HEAD /b/k HTTP/1.1\r\nHost: x\r\n\r\n");
    stream.extend_from_slice(
        format!(
            "PUT /b/k?x-id=PutObject HTTP/1.1\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    stream.extend_from_slice(body);
    stream.extend_from_slice(b"GET /b/?list-type=2 HTTP/1.1\r\n\r\n");
    let want = [
        "HEAD /b/k",
        "PUT /b/k?x-id=PutObject",
        "GET /b/?list-type=2",
    ];
    for split in [1, 7, 40, stream.len()] {
        let mut parser = RequestParser::default();
        let seen: Vec<String> = stream.chunks(split).flat_map(|c| parser.feed(c)).collect();
        assert_eq!(seen, want, "reads of {split} bytes");
        assert_eq!(writes(&seen), [&seen[1]]);
    }
}
