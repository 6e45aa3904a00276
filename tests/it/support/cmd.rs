//! `Cachectl`: runs the binary in a hermetic environment and parses its `--json` line.

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Long enough for 50 MB through moto in a debug build; a hang fails instead of blocking CI.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Builder for one `cachectl` run. The environment is cleared, then HOME, XDG_CACHE_HOME,
/// TMPDIR and AWS settings that cannot reach beyond loopback are set.
pub struct Cachectl {
    args: Vec<OsString>,
    /// A program (and its arguments) the binary runs under, if any.
    wrapper: Vec<OsString>,
    cwd: PathBuf,
    env: Vec<(OsString, Option<OsString>)>,
    timeout: Duration,
    sandbox: PathBuf,
}

impl Cachectl {
    /// `sandbox` holds the nonexistent AWS config files and the temp dir.
    pub fn new(sandbox: &Path) -> Cachectl {
        let mut cmd = Cachectl {
            args: Vec::new(),
            wrapper: Vec::new(),
            cwd: sandbox.to_path_buf(),
            env: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            sandbox: sandbox.to_path_buf(),
        };
        cmd.home(&sandbox.join("home"));
        cmd
    }

    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for arg in args {
            self.arg(arg);
        }
        self
    }

    /// One `--path P` per item.
    pub fn paths<I, S>(&mut self, paths: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for path in paths {
            self.arg("--path").arg(path);
        }
        self
    }

    pub fn cwd(&mut self, cwd: &Path) -> &mut Self {
        self.cwd = cwd.to_path_buf();
        self
    }

    /// Sets HOME and XDG_CACHE_HOME (`<home>/.xdg-cache`), so nothing touches the real home.
    pub fn home(&mut self, home: &Path) -> &mut Self {
        self.env("HOME", home);
        self.env("XDG_CACHE_HOME", home.join(".xdg-cache"));
        self
    }

    pub fn env(&mut self, name: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Self {
        self.env
            .push((name.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    pub fn env_remove(&mut self, name: impl AsRef<OsStr>) -> &mut Self {
        self.env.push((name.as_ref().to_owned(), None));
        self
    }

    pub fn timeout(&mut self, timeout: Duration) -> &mut Self {
        self.timeout = timeout;
        self
    }

    /// Runs the binary through `program args...` (e.g. `setpriv ...` or `prlimit ... --`).
    pub fn wrapped<I, S>(&mut self, program_and_args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.wrapper = program_and_args
            .into_iter()
            .map(|a| a.as_ref().to_owned())
            .collect();
        self
    }

    /// Runs to completion (killed after the timeout, which fails the test).
    pub fn run(&self) -> Run {
        self.spawn().wait()
    }

    /// Reads at most `limit` bytes of stdout, then closes it, as `| head -c LIMIT` does, and
    /// runs to completion; `stdout` holds what was read.
    pub fn run_closing_stdout_after(&self, limit: usize) -> Run {
        self.spawn_with(Some(limit)).wait()
    }

    /// Starts the command; [`Running::wait`] collects it.
    pub fn spawn(&self) -> Running {
        self.spawn_with(None)
    }

    fn spawn_with(&self, stdout_limit: Option<usize>) -> Running {
        let exe = env!("CARGO_BIN_EXE_cachectl");
        let mut command = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        command
            .args(&self.args)
            .current_dir(&self.cwd)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("RUST_BACKTRACE", "1")
            .env("TMPDIR", self.sandbox.join("tmp"))
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            // Tests that check metrics opt back in with `.env_remove("CACHECTL_NO_METRICS")`.
            .env("CACHECTL_NO_METRICS", "1")
            .env("AWS_CONFIG_FILE", self.sandbox.join("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.sandbox.join("no-aws-credentials"),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        std::fs::create_dir_all(self.sandbox.join("tmp")).unwrap();
        for (name, value) in &self.env {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        let cmdline = self.cmdline();
        let started = Instant::now();
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {exe}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let stdout = match stdout_limit {
            // Read in this thread, so the pipe is closed (dropped) before anything waits.
            Some(limit) => {
                let mut bytes = vec![0; limit];
                let mut read = 0;
                let mut pipe = stdout;
                while read < limit {
                    match pipe.read(&mut bytes[read..]) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => read += n,
                    }
                }
                bytes.truncate(read);
                let text = String::from_utf8_lossy(&bytes).into_owned();
                thread::spawn(move || text)
            }
            None => drain(stdout),
        };
        let stderr = drain(child.stderr.take().unwrap());
        Running {
            child,
            cmdline,
            started,
            timeout: self.timeout,
            stdout,
            stderr,
        }
    }

    fn cmdline(&self) -> String {
        let mut line = String::from("cachectl");
        for arg in &self.args {
            let _ = write!(line, " {}", shell_quote(&arg.to_string_lossy()));
        }
        let _ = write!(line, "  (cwd {})", self.cwd.display());
        line
    }
}

/// A `cachectl` started by [`Cachectl::spawn`].
pub struct Running {
    child: std::process::Child,
    cmdline: String,
    started: Instant,
    timeout: Duration,
    stdout: thread::JoinHandle<String>,
    stderr: thread::JoinHandle<String>,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Sends `signal` (`INT`, `TERM`) with kill(1).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {}", self.pid());
    }

    /// Waits for the exit (killed after the timeout, which fails the test).
    pub fn wait(mut self) -> Run {
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if self.started.elapsed() > self.timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let stderr = self.stderr.join().unwrap();
                panic!(
                    "`{}` still running after {:?}; killed.\nstderr:\n{stderr}",
                    self.cmdline, self.timeout
                );
            }
            thread::sleep(Duration::from_millis(20));
        };
        Run {
            cmdline: self.cmdline,
            code: status.code(),
            signal: std::os::unix::process::ExitStatusExt::signal(&status),
            stdout: self.stdout.join().unwrap(),
            stderr: self.stderr.join().unwrap(),
            elapsed: self.started.elapsed(),
        }
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn shell_quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:~%".contains(c))
    {
        arg.to_owned()
    } else {
        format!("{arg:?}")
    }
}

/// A finished run. Assertion helpers print the command, exit code, stdout and stderr on failure.
pub struct Run {
    pub cmdline: String,
    /// None when killed by a signal.
    pub code: Option<i32>,
    /// The signal that killed it.
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    /// Everything needed to understand a failure.
    pub fn context(&self) -> String {
        format!(
            "command: {}\nexit: {:?} after {:.2?}\n--- stdout ---\n{}\n--- stderr ---\n{}\n---",
            self.cmdline, self.code, self.elapsed, self.stdout, self.stderr
        )
    }

    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "expected exit code {code}\n{}",
            self.context()
        );
        self
    }

    /// Fails, showing the whole run, unless stderr contains `text`.
    pub fn assert_stderr_has(&self, text: &str) -> &Self {
        assert!(
            self.stderr.contains(text),
            "stderr lacks {text:?}\n{}",
            self.context()
        );
        self
    }

    /// The `--json` object: the last stdout line, and no other stdout line is a JSON object.
    pub fn json(&self) -> Value {
        let lines: Vec<&str> = self.stdout.lines().collect();
        let Some(last) = lines.last() else {
            panic!("no stdout, expected a JSON line\n{}", self.context());
        };
        let value: Value = serde_json::from_str(last).unwrap_or_else(|e| {
            panic!(
                "last stdout line is not JSON ({e}): {last:?}\n{}",
                self.context()
            )
        });
        assert!(
            value.is_object(),
            "JSON line is not an object\n{}",
            self.context()
        );
        for line in &lines[..lines.len() - 1] {
            assert!(
                serde_json::from_str::<Value>(line).map_or(true, |v| !v.is_object()),
                "more than one JSON object on stdout\n{}",
                self.context()
            );
        }
        value
    }

    /// Exit code and outcome; returns the JSON, checked against the schema of `command`.
    pub fn expect(&self, code: i32, outcome: &str) -> Value {
        let json = self.json();
        assert_eq!(
            (self.code, json.get("outcome").and_then(Value::as_str)),
            (Some(code), Some(outcome)),
            "expected exit {code} and outcome {outcome:?}\n{}",
            self.context()
        );
        self.check_schema(&json);
        json
    }

    /// The fields every `--json` line of save/restore has, with the right types.
    fn check_schema(&self, json: &Value) {
        let is_restore = self.cmdline.starts_with("cachectl restore");
        let mut problems = Vec::new();
        let outcome = json["outcome"].as_str().unwrap_or_default();
        let allowed: &[&str] = if is_restore {
            &["hit", "partial", "miss", "error"]
        } else {
            &["saved", "skipped", "error"]
        };
        if !allowed.contains(&outcome) {
            problems.push(format!("outcome {outcome:?} not one of {allowed:?}"));
        }
        if !json["key"].is_string() {
            problems.push("`key` is not a string".to_owned());
        }
        for field in ["bytes", "files"] {
            if !json[field].is_u64() {
                problems.push(format!("`{field}` is not a non-negative integer"));
            }
        }
        if !json["seconds"].is_number() {
            problems.push("`seconds` is not a number".to_owned());
        }
        if is_restore {
            let matched = &json["matched_key"];
            match outcome {
                "hit" | "partial" if !matched.is_string() => {
                    problems.push("`matched_key` is not a string on a hit".to_owned())
                }
                "miss" | "error" if !matched.is_null() => {
                    problems.push("`matched_key` is not null on miss/error".to_owned())
                }
                _ => {}
            }
            if json.get("matched_key").is_none() {
                problems.push("`matched_key` is absent (must be present, null on miss)".into());
            }
        }
        if outcome == "error" {
            let field = if is_restore { "message" } else { "reason" };
            let text = json
                .get("message")
                .or_else(|| json.get(field))
                .and_then(Value::as_str);
            if text.is_none_or(|t| t.trim().is_empty()) {
                problems.push("outcome error without a non-empty `message`".to_owned());
            }
        }
        assert!(
            problems.is_empty(),
            "JSON line breaks the schema: {}\n{}",
            problems.join("; "),
            self.context()
        );
    }
}

/// Runs any command to completion with piped output; killed after `timeout`, which fails the test.
pub fn exec_with_timeout(cmd: &mut Command, cmdline: String, timeout: Duration) -> Run {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmdline}: {e}"));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`{cmdline}` still running after {timeout:?}; killed");
        }
        thread::sleep(Duration::from_millis(10));
    };
    Run {
        cmdline,
        code: status.code(),
        signal: std::os::unix::process::ExitStatusExt::signal(&status),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
        elapsed: started.elapsed(),
    }
}
