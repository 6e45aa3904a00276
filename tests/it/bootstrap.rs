//! The CodeBuild integration files: `bootstrap/install.sh` and `buildspecs/*.yml`.
//!
//! install.sh runs for real under `/bin/sh`, in a sandbox on tmpfs, against sources laid out like
//! the cache bucket: `file://` URLs, a fake `aws` that copies from a directory, and once the real
//! aws CLI against moto. Fake `uname`s pick the architecture. The fake "binaries" are shell
//! scripts that answer `--version` like cachectl; one plays a cachectl from before `run`.
//!
//! The buildspecs are parsed by PyYAML (and their embedded cachectl.toml by Python's tomllib) in
//! the tests' venv, checked for the phases and commands they need, their commands checked with
//! `sh -n`, and their install step and `cachectl run` steps run with fakes on PATH.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::support::buildspec::{self, commands, repo};
use crate::support::{list_dir, moto, tempdir, write, Fixture, Run};

const VERSION: &str = "0.1.0";
const X86: &str = "cachectl-x86_64-unknown-linux-musl";
const ARM: &str = "cachectl-aarch64-unknown-linux-musl";
const WARNING: &str = "cachectl install: WARNING:";
const TIMEOUT: Duration = Duration::from_secs(120);

fn install_sh() -> PathBuf {
    repo().join("bootstrap/install.sh")
}

/// A shell script standing in for a release binary: `--version` prints `cachectl <version>`.
fn fake_binary(arch: &str, version: &str) -> String {
    format!(
        "#!/bin/sh\ncase \"${{1:-}}\" in\n  --version) echo \"cachectl {version}\" ;;\n  \
         *) echo \"fake cachectl {arch} $*\" ;;\nesac\n"
    )
}

fn sha256_hex(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success(), "sha256sum {}", path.display());
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

fn make_executable(path: &Path) {
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

fn write_script(path: &Path, text: &str) {
    write(path, text);
    make_executable(path);
}

/// Runs `cmd` to completion (killed after TIMEOUT, which fails the test).
fn exec(cmd: &mut Command, cmdline: String) -> Run {
    crate::support::cmd::exec_with_timeout(cmd, cmdline, TIMEOUT)
}

/// One test's world: a temp dir with `dist/` (a source laid out like `s3://B/cachectl/bin`),
/// `s3/` (what the fake aws serves, `s3/<bucket>/<key>`), `fake/` (first on PATH), `bin/` (the
/// install directory, also on PATH), `home/`, `src/` (a build's working dir) and `tmp/`.
struct Sandbox {
    dir: TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let sandbox = Sandbox {
            dir: tempdir("cachectl-it-bootstrap-"),
        };
        for sub in ["dist", "s3", "fake", "bin", "home", "src", "tmp"] {
            fs::create_dir_all(sandbox.path(sub)).unwrap();
        }
        sandbox
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn dist(&self) -> PathBuf {
        self.path("dist")
    }

    fn dist_url(&self) -> String {
        format!("file://{}", self.dist().display())
    }

    fn installed(&self) -> PathBuf {
        self.path("bin/cachectl")
    }

    /// Publishes `<dist>/<version>/<asset>` with a correct `.sha256` beside it.
    fn publish(&self, version: &str, asset: &str, contents: &str) {
        let dir = self.dist().join(version);
        let binary = dir.join(asset);
        write_script(&binary, contents);
        let line = format!("{}  {asset}\n", sha256_hex(&binary));
        write(&dir.join(format!("{asset}.sha256")), line);
    }

    /// Both architectures of `version`, and `latest` pointing at it.
    fn publish_release(&self, version: &str) {
        self.publish(version, X86, &fake_binary("x86_64", version));
        self.publish(version, ARM, &fake_binary("aarch64", version));
        self.set_latest(version);
    }

    fn set_latest(&self, version: &str) {
        write(&self.dist().join("latest"), format!("{version}\n"));
    }

    /// A `uname` on PATH that reports Linux on `machine`.
    fn fake_uname(&self, machine: &str) {
        write_script(
            &self.path("fake/uname"),
            &format!(
                "#!/bin/sh\ncase \"${{1:-}}\" in\n  -m) echo {machine} ;;\n  *) echo Linux ;;\nesac\n"
            ),
        );
    }

    /// An `aws` on PATH whose `aws s3 cp [options] s3://B/K DEST` copies `s3/B/K` (its last two
    /// arguments are the source and destination), logging each call to `tmp/aws.log`.
    fn fake_aws(&self) {
        let script = r#"#!/bin/sh
printf '%s\n' "$*" >>"$FAKE_AWS_LOG"
[ "${1:-}" = s3 ] && [ "${2:-}" = cp ] || { echo "fake aws: unsupported: $*" >&2; exit 2; }
src= dst=
for a in "$@"; do src=$dst; dst=$a; done
case $src in
  s3://*) f="$FAKE_S3_ROOT/${src#s3://}" ;;
  *) echo "fake aws: not a download: $*" >&2; exit 2 ;;
esac
[ -f "$f" ] || { echo "fatal error: An error occurred (404) when calling the HeadObject operation: Not Found" >&2; exit 1; }
cp "$f" "$dst"
"#;
        write_script(&self.path("fake/aws"), script);
    }

    /// Copies `dist/` to `s3/<bucket>/cachectl/bin/` and install.sh beside it, as provisioning would.
    fn upload_to_fake_bucket(&self, bucket: &str) {
        let root = self.path("s3").join(bucket).join("cachectl");
        fs::create_dir_all(&root).unwrap();
        let status = Command::new("cp")
            .arg("-a")
            .arg(self.dist())
            .arg(root.join("bin"))
            .status()
            .unwrap();
        assert!(status.success());
        fs::copy(install_sh(), root.join("install.sh")).unwrap();
    }

    fn aws_log(&self) -> String {
        fs::read_to_string(self.path("tmp/aws.log")).unwrap_or_default()
    }

    /// `/bin/sh -c script` (or a file) with a clean environment: PATH = fake, bin, system.
    fn sh(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new("/bin/sh");
        cmd.args(args)
            .current_dir(self.path("src"))
            .env_clear()
            .env(
                "PATH",
                format!(
                    "{}:{}:/usr/local/bin:/usr/bin:/bin",
                    self.path("fake").display(),
                    self.path("bin").display()
                ),
            )
            .env("HOME", self.path("home"))
            .env("TMPDIR", self.path("tmp"))
            .env("FAKE_AWS_LOG", self.path("tmp/aws.log"))
            .env("FAKE_S3_ROOT", self.path("s3"));
        for (name, value) in env {
            cmd.env(name, value);
        }
        cmd
    }

    /// `sh bootstrap/install.sh` into `bin/`, with `env` on top of the clean environment.
    fn install(&self, env: &[(&str, &str)]) -> Run {
        let script = install_sh();
        let mut cmd = self.sh(&[script.to_str().unwrap()], env);
        cmd.env("CACHECTL_INSTALL_DIR", self.path("bin"));
        let shown: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        exec(&mut cmd, format!("{} sh install.sh", shown.join(" ")))
    }

    /// install.sh from `dist/` via a file:// URL.
    fn install_from_dist(&self, extra: &[(&str, &str)]) -> Run {
        let url = self.dist_url();
        let mut env = vec![("CACHECTL_DOWNLOAD_URL", url.as_str())];
        env.extend_from_slice(extra);
        self.install(&env)
    }

    /// Runs the installed `cachectl` (whatever it is) with `args`.
    fn run_installed(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new(self.installed());
        cmd.args(args).env_clear().env("PATH", "/usr/bin:/bin");
        exec(&mut cmd, format!("cachectl {}", args.join(" ")))
    }

    /// Files in `bin/` besides `cachectl`: leftovers of a download.
    fn leftovers(&self) -> Vec<String> {
        list_dir(&self.path("bin"))
            .into_iter()
            .filter(|n| n != "cachectl")
            .collect()
    }
}

/// The one `cachectl install: WARNING:` line: several words, saying the build goes on uncached.
fn warning_line(run: &Run) -> String {
    assert_eq!(
        run.code,
        Some(0),
        "install.sh must exit 0\n{}",
        run.context()
    );
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .chain(run.stdout.lines())
        .filter(|l| l.starts_with(WARNING))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "expected exactly one `{WARNING}` line\n{}",
        run.context()
    );
    let line = lines[0];
    assert!(
        line.split_whitespace().count() >= 10 && line.contains("continues WITHOUT caching"),
        "the warning must say what failed and that the build goes on: {line:?}"
    );
    line.to_owned()
}

fn assert_no_warning(run: &Run) {
    assert!(
        !run.stderr.contains("WARNING") && !run.stdout.contains("WARNING"),
        "unexpected warning\n{}",
        run.context()
    );
}

/// The installed `cachectl` is the stand-in: marked, and it warns, prints nothing on stdout and
/// exits 0 for anything, `restore --json` included, but runs the command of `cachectl run`.
fn assert_stand_in(sandbox: &Sandbox) {
    let text = fs::read_to_string(sandbox.installed()).unwrap_or_else(|e| {
        panic!("no stand-in at {}: {e}", sandbox.installed().display());
    });
    assert!(text.contains("cachectl-install-shim"), "{text}");
    assert_stand_in_runs_commands(sandbox, "install.sh's stand-in");
    for args in [
        &["restore", "--json"][..],
        &["save"],
        &["--version"],
        &["prune", "--max-unused", "14d"],
    ] {
        let run = sandbox.run_installed(args);
        run.assert_code(0);
        assert_eq!(run.stdout, "", "{}", run.context());
        assert!(
            run.stderr.starts_with("cachectl: WARNING:")
                && run.stderr.contains("not installed")
                && run.stderr.contains(args[0]),
            "{}",
            run.context()
        );
    }
}

/// The stand-in's `cachectl [global options] run [options] -- COMMAND...` runs COMMAND, with its
/// arguments as given, its stdout, and its exit status: skipping an install step would break the
/// build. Global options may come before `run` (`--json`, `-q`, `--store URL`, `--config FILE`),
/// as cachectl accepts them there. Without a command it is a usage error (2), as for the real
/// cachectl. Any other command only warns, with nothing on stdout, and exits 0.
fn assert_stand_in_runs_commands(sandbox: &Sandbox, what: &str) {
    let ran = sandbox.path("tmp/stand-in-ran");
    let _ = fs::remove_file(&ran);
    let ran_arg = ran.to_str().unwrap();
    let cases: [(&str, &[&str], Option<i32>, &str); 10] = [
        (
            "exit status",
            &[
                "run",
                "--cache",
                "npm",
                "--",
                "sh",
                "-c",
                "echo out; exit 42",
            ],
            Some(42),
            "out\n",
        ),
        (
            "--always, arguments kept",
            &[
                "run", "--cache", "npm", "--always", "--", "printf", "[%s]", "a b", "", "--",
            ],
            Some(0),
            "[a b][][--]",
        ),
        (
            "--json before run",
            &["--json", "run", "--cache", "x", "--", "sh", "-c", "exit 42"],
            Some(42),
            "",
        ),
        (
            "-q before run",
            &["-q", "run", "--cache", "x", "--", "printf", "a b"],
            Some(0),
            "a b",
        ),
        (
            "--store URL before run",
            &[
                "--store", "s3://b/p", "run", "--cache", "x", "--", "touch", ran_arg,
            ],
            Some(0),
            "",
        ),
        (
            "--config FILE before run",
            &[
                "--config",
                "ci/cachectl.toml",
                "run",
                "--cache",
                "x",
                "--",
                "sh",
                "-c",
                "exit 3",
            ],
            Some(3),
            "",
        ),
        ("restore --json", &["restore", "--json"], Some(0), ""),
        ("no command", &["run", "--cache", "npm"], Some(2), ""),
        (
            "no command after --json",
            &["--json", "run", "--cache", "npm"],
            Some(2),
            "",
        ),
        (
            "empty command",
            &["run", "--cache", "npm", "--"],
            Some(2),
            "",
        ),
    ];
    for (case, args, code, stdout) in cases {
        let run = sandbox.run_installed(args);
        assert_eq!(
            (run.code, run.stdout.as_str()),
            (code, stdout),
            "{what}, {case}\n{}",
            run.context()
        );
        if code == Some(2) {
            continue;
        }
        assert!(
            run.stderr.starts_with("cachectl: WARNING:") && run.stderr.contains("not installed"),
            "{what}, {case}: it warns that cachectl is missing\n{}",
            run.context()
        );
    }
    assert!(
        ran.is_file(),
        "{what}: `cachectl --store s3://b/p run --cache x -- touch FILE` did not run touch"
    );
}

fn inode_and_mtime(path: &Path) -> (u64, i64, i64) {
    let meta = fs::metadata(path).unwrap();
    (meta.ino(), meta.mtime(), meta.mtime_nsec())
}

// --- install.sh ---------------------------------------------------------------------------------

#[test]
fn installs_the_verified_binary_of_the_latest_version() {
    let s = Sandbox::new();
    s.publish_release(VERSION);
    s.fake_uname("x86_64");
    let run = s.install_from_dist(&[]);
    run.assert_code(0);
    assert_no_warning(&run);
    assert!(
        run.stderr
            .contains(&format!("installed cachectl {VERSION}")),
        "{}",
        run.context()
    );
    assert_eq!(
        fs::read(s.installed()).unwrap(),
        fs::read(s.dist().join(VERSION).join(X86)).unwrap()
    );
    let mode = fs::metadata(s.installed()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
    let version = s.run_installed(&["--version"]);
    assert_eq!(version.stdout.trim(), format!("cachectl {VERSION}"));
    assert!(s.run_installed(&["x"]).stdout.contains("x86_64"));
    assert_eq!(
        s.leftovers(),
        Vec::<String>::new(),
        "temp files left behind"
    );
}

#[test]
fn an_explicit_version_wins_over_latest() {
    let s = Sandbox::new();
    s.publish_release("0.1.0");
    s.publish_release("0.2.0");
    s.fake_uname("x86_64");
    let run = s.install_from_dist(&[("CACHECTL_VERSION", "0.1.0")]);
    run.assert_code(0);
    assert_eq!(
        s.run_installed(&["--version"]).stdout.trim(),
        "cachectl 0.1.0"
    );

    // Without CACHECTL_VERSION, `latest` (0.2.0) replaces it.
    let run = s.install_from_dist(&[]);
    run.assert_code(0);
    assert_eq!(
        s.run_installed(&["--version"]).stdout.trim(),
        "cachectl 0.2.0"
    );
}

#[test]
fn the_same_version_is_a_no_op() {
    let s = Sandbox::new();
    s.publish_release(VERSION);
    s.fake_uname("x86_64");
    s.install_from_dist(&[]).assert_code(0);
    let before = inode_and_mtime(&s.installed());
    thread::sleep(Duration::from_millis(20));

    let again = s.install_from_dist(&[]);
    again.assert_code(0);
    assert_no_warning(&again);
    assert!(
        again.stderr.contains("already installed"),
        "{}",
        again.context()
    );
    assert_eq!(
        inode_and_mtime(&s.installed()),
        before,
        "the binary was touched"
    );

    // With the version given, nothing is fetched at all: a dead source does not matter.
    let offline = s.install(&[
        ("CACHECTL_VERSION", VERSION),
        ("CACHECTL_DOWNLOAD_URL", "file:///nonexistent/cachectl-it"),
    ]);
    offline.assert_code(0);
    assert_no_warning(&offline);
    assert_eq!(
        inode_and_mtime(&s.installed()),
        before,
        "the binary was touched"
    );
    assert_eq!(s.leftovers(), Vec::<String>::new());
}

#[test]
fn a_checksum_mismatch_installs_nothing_but_the_stand_in() {
    let s = Sandbox::new();
    s.publish_release(VERSION);
    s.fake_uname("x86_64");
    let sum = s.dist().join(VERSION).join(format!("{X86}.sha256"));
    write(&sum, format!("{}  {X86}\n", "0".repeat(64)));

    let strict = s.install_from_dist(&[("CACHECTL_STRICT", "1")]);
    strict.assert_code(1);
    assert!(
        strict.stderr.contains("cachectl install: ERROR:") && strict.stderr.contains("checksum"),
        "{}",
        strict.context()
    );
    assert_eq!(
        list_dir(&s.path("bin")),
        Vec::<String>::new(),
        "strict installs nothing"
    );

    let run = s.install_from_dist(&[]);
    let line = warning_line(&run);
    assert!(line.contains("checksum mismatch"), "{line}");
    assert_stand_in(&s);
    assert_eq!(
        s.leftovers(),
        Vec::<String>::new(),
        "the download was not removed"
    );

    // A checksum file of the other architecture's binary is refused too.
    let arm_sum = fs::read_to_string(s.dist().join(VERSION).join(format!("{ARM}.sha256"))).unwrap();
    write(&sum, arm_sum);
    let line = warning_line(&s.install_from_dist(&[]));
    assert!(line.contains(ARM), "{line}");
    assert_stand_in(&s);
}

#[test]
fn a_failed_upgrade_keeps_the_working_cachectl() {
    let s = Sandbox::new();
    s.publish_release("0.1.0");
    s.fake_uname("x86_64");
    s.install_from_dist(&[]).assert_code(0);
    let before = inode_and_mtime(&s.installed());

    s.publish_release("0.2.0");
    let sum = s.dist().join("0.2.0").join(format!("{X86}.sha256"));
    write(&sum, format!("{}  {X86}\n", "f".repeat(64)));
    let line = warning_line(&s.install_from_dist(&[]));
    assert!(line.contains("keeping the cachectl 0.1.0"), "{line}");
    assert_eq!(inode_and_mtime(&s.installed()), before);
    assert_eq!(
        s.run_installed(&["--version"]).stdout.trim(),
        "cachectl 0.1.0"
    );
}

#[test]
fn a_binary_that_reports_another_version_is_refused() {
    let s = Sandbox::new();
    s.fake_uname("x86_64");
    // Checksum fine, but the file is not what it claims to be (think: a wrong-arch upload).
    s.publish(VERSION, X86, &fake_binary("x86_64", "9.9.9"));
    s.set_latest(VERSION);
    let line = warning_line(&s.install_from_dist(&[]));
    assert!(line.contains("cachectl 9.9.9"), "{line}");
    assert_stand_in(&s);
    assert_eq!(s.leftovers(), Vec::<String>::new());
}

#[test]
fn an_unreachable_source_installs_a_stand_in_that_warns_and_exits_0() {
    let s = Sandbox::new();
    s.fake_uname("x86_64");
    let dead = [("CACHECTL_DOWNLOAD_URL", "file:///nonexistent/cachectl-it")];

    let strict = s.install(&[dead[0], ("CACHECTL_STRICT", "true")]);
    strict.assert_code(1);
    assert!(
        strict.stderr.contains("cachectl install: ERROR:"),
        "{}",
        strict.context()
    );
    assert_eq!(list_dir(&s.path("bin")), Vec::<String>::new());

    let run = s.install(&dead);
    let line = warning_line(&run);
    assert!(line.contains("/nonexistent/cachectl-it/latest"), "{line}");
    assert_stand_in(&s);
    assert_eq!(s.leftovers(), Vec::<String>::new());

    // Again: the stand-in is not mistaken for an installed cachectl, and is rewritten.
    warning_line(&s.install(&dead));
    assert_stand_in(&s);

    // When the source is back, the real binary replaces the stand-in.
    s.publish_release(VERSION);
    s.install_from_dist(&[]).assert_code(0);
    assert_eq!(
        s.run_installed(&["--version"]).stdout.trim(),
        format!("cachectl {VERSION}")
    );

    // No source configured at all.
    let none = Sandbox::new();
    none.fake_uname("x86_64");
    let line = warning_line(&none.install(&[]));
    assert!(line.contains("no download source"), "{line}");
    assert_stand_in(&none);
}

#[test]
fn the_architecture_comes_from_uname() {
    for (machine, expected) in [
        ("aarch64", "aarch64"),
        ("arm64", "aarch64"),
        ("x86_64", "x86_64"),
        ("amd64", "x86_64"),
    ] {
        let s = Sandbox::new();
        s.publish_release(VERSION);
        s.fake_uname(machine);
        let run = s.install_from_dist(&[]);
        run.assert_code(0);
        let asset = if expected == "aarch64" { ARM } else { X86 };
        assert!(run.stderr.contains(asset), "{machine}: {}", run.context());
        let said = s.run_installed(&["hello"]).stdout;
        assert_eq!(
            said.trim(),
            format!("fake cachectl {expected} hello"),
            "{machine}"
        );
    }

    let s = Sandbox::new();
    s.publish_release(VERSION);
    s.fake_uname("riscv64");
    let line = warning_line(&s.install_from_dist(&[]));
    assert!(
        line.contains("unsupported architecture 'riscv64'"),
        "{line}"
    );
    assert_stand_in(&s);
}

#[test]
fn the_bucket_comes_from_cachectl_bucket_or_the_store_url() {
    let s = Sandbox::new();
    s.publish_release(VERSION);
    s.fake_uname("x86_64");
    s.fake_aws();
    s.upload_to_fake_bucket("cache-bkt");

    let run = s.install(&[("CACHECTL_STORE", "s3://cache-bkt/ci/prefix")]);
    run.assert_code(0);
    assert_no_warning(&run);
    assert_eq!(
        s.run_installed(&["--version"]).stdout.trim(),
        format!("cachectl {VERSION}")
    );
    let log = s.aws_log();
    for object in [
        "latest".to_owned(),
        format!("{VERSION}/{X86}.sha256"),
        format!("{VERSION}/{X86}"),
    ] {
        let url = format!("s3://cache-bkt/cachectl/bin/{object} ");
        assert!(log.contains(&url), "no `aws s3 cp {url}…` in:\n{log}");
    }

    // CACHECTL_BUCKET wins over the store's bucket; the download URL wins over both.
    fs::remove_file(s.installed()).unwrap();
    let run = s.install(&[
        ("CACHECTL_BUCKET", "other-bkt"),
        ("CACHECTL_STORE", "s3://cache-bkt/ci"),
    ]);
    let line = warning_line(&run);
    assert!(
        line.contains("s3://other-bkt/cachectl/bin/latest"),
        "{line}"
    );
    let url = s.dist_url();
    let run = s.install(&[
        ("CACHECTL_DOWNLOAD_URL", url.as_str()),
        ("CACHECTL_BUCKET", "other-bkt"),
    ]);
    run.assert_code(0);
    assert_no_warning(&run);

    // A store that is not in S3 names no bucket.
    fs::remove_file(s.installed()).unwrap();
    let line = warning_line(&s.install(&[("CACHECTL_STORE", "/var/cache/cachectl")]));
    assert!(line.contains("no download source"), "{line}");
}

/// The aws CLI of the tests' venv (next to moto_server), else `aws` on PATH.
fn aws_cli() -> PathBuf {
    let beside_moto = std::env::var_os(moto::MOTO_ENV)
        .map(PathBuf::from)
        .and_then(|moto| moto.parent().map(|dir| dir.join("aws")))
        .filter(|aws| aws.is_file());
    let on_path = || {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("aws"))
                .find(|aws| aws.is_file())
        })
    };
    beside_moto.or_else(on_path).unwrap_or_else(|| {
        panic!(
            "no aws CLI: install tests/requirements.txt into the venv of {} (or put `aws` on PATH)",
            moto::MOTO_ENV
        )
    })
}

#[test]
fn installs_from_s3_through_the_aws_cli() {
    let moto = moto::moto();
    let bucket = moto::bucket_name("bootstrap-aws-cli");
    moto.create_bucket(&bucket);
    let s = Sandbox::new();
    s.publish_release(VERSION);
    s.fake_uname("aarch64");
    std::os::unix::fs::symlink(aws_cli(), s.path("fake/aws")).unwrap();
    let aws_env = [
        ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/nonexistent/cachectl-it/aws-config"),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/cachectl-it/aws-credentials",
        ),
    ];

    // Provision the bucket with the CLI itself.
    let dist = s.dist();
    let install = install_sh();
    let upload = format!(
        "aws s3 cp --only-show-errors --recursive '{}' 's3://{bucket}/cachectl/bin/' && \
         aws s3 cp --only-show-errors '{}' 's3://{bucket}/cachectl/install.sh'",
        dist.display(),
        install.display()
    );
    let mut cmd = s.sh(&["-c", &upload], &aws_env);
    exec(&mut cmd, upload.clone()).assert_code(0);
    let names = moto.list(&bucket, "cachectl/");
    assert!(
        names.contains(&format!("cachectl/bin/{VERSION}/{ARM}.sha256"))
            && names.contains(&"cachectl/bin/latest".to_owned()),
        "{names:?}"
    );

    // install.sh with the bucket taken from CACHECTL_STORE.
    let store = format!("s3://{bucket}/ci");
    let mut env = aws_env.to_vec();
    env.push(("CACHECTL_STORE", store.as_str()));
    let run1 = s.install(&env);
    run1.assert_code(0);
    assert_no_warning(&run1);
    assert_eq!(
        s.run_installed(&["x"]).stdout.trim(),
        "fake cachectl aarch64 x"
    );

    // The install step of a buildspec, from fetching install.sh on: into a fresh directory.
    let spec = &buildspec::all()["node-npm.yml"];
    let step = install_step(spec);
    let fresh = s.path("bin2");
    let mut env = aws_env.to_vec();
    env.push(("CACHE_BUCKET", bucket.as_str()));
    env.push(("CACHECTL_STORE", store.as_str()));
    let fresh_dir = fresh.to_str().unwrap();
    env.push(("CACHECTL_INSTALL_DIR", fresh_dir));
    let step = localize(&step, &s);
    let mut cmd = s.sh(&["-c", &step], &env);
    let run2 = exec(&mut cmd, "node-npm.yml install step".to_owned());
    run2.assert_code(0);
    assert_no_warning(&run2);
    let installed = fresh.join("cachectl");
    assert_eq!(
        fs::read(&installed).unwrap(),
        fs::read(dist.join(VERSION).join(ARM)).unwrap()
    );
}

// --- buildspecs -----------------------------------------------------------------------------

/// The install-phase command that fetches and runs install.sh.
fn install_step(spec: &Value) -> String {
    let steps: Vec<String> = commands(spec, "install")
        .into_iter()
        .filter(|c| c.contains("/cachectl/install.sh"))
        .collect();
    assert_eq!(steps.len(), 1, "one install.sh step expected: {steps:?}");
    steps[0].clone()
}

/// A command with `/tmp/` moved into the sandbox, so tests in parallel do not share files.
fn localize(command: &str, s: &Sandbox) -> String {
    command.replace("/tmp/", &format!("{}/", s.path("tmp").display()))
}

const EXPECTED_SPECS: &[&str] = &[
    "go.yml",
    "java-gradle.yml",
    "java-maven.yml",
    "node-npm.yml",
    "prune.yml",
    "python-pip.yml",
    "python-uv.yml",
    "rust.yml",
];

#[test]
fn buildspecs_have_the_phases_and_commands_they_need() {
    let specs = buildspec::all();
    let names: Vec<&str> = specs.keys().map(String::as_str).collect();
    assert_eq!(names, EXPECTED_SPECS);
    for (name, spec) in specs {
        let yaml = &spec["yaml"];
        let version = &yaml["version"];
        assert!(
            version.as_f64() == Some(0.2) || version.as_str() == Some("0.2"),
            "{name}: version {version}"
        );
        let vars = &yaml["env"]["variables"];
        assert!(
            vars["CACHE_BUCKET"].is_string(),
            "{name}: env.variables.CACHE_BUCKET"
        );
        assert!(
            vars["CACHECTL_STORE"]
                .as_str()
                .is_some_and(|s| s.starts_with("s3://")),
            "{name}: env.variables.CACHECTL_STORE=s3://…"
        );
        for (var, value) in vars.as_object().unwrap() {
            assert!(
                value.is_string(),
                "{name}: {var} must be a string, is {value}"
            );
        }
        let step = install_step(spec);
        assert!(
            step.contains("s3://$CACHE_BUCKET/cachectl/install.sh")
                && step.contains("sh /tmp/cachectl-install.sh"),
            "{name}: {step}"
        );
        let has = |phase: &str, prefix: &str| {
            commands(spec, phase)
                .iter()
                .any(|c| c.trim_start().starts_with(prefix))
        };
        if name == "prune.yml" {
            assert!(has("build", "cachectl prune"), "{name}");
            continue;
        }
        for phase in ["install", "pre_build", "build", "post_build"] {
            assert!(
                !commands(spec, phase).is_empty(),
                "{name}: no {phase} commands"
            );
        }
        assert!(
            has("pre_build", "cachectl restore"),
            "{name}: restore in pre_build"
        );
        assert!(
            has("post_build", "cachectl save"),
            "{name}: save in post_build"
        );
        for phase in ["install", "build", "post_build"] {
            assert!(
                !has(phase, "cachectl restore"),
                "{name}: restore in {phase}"
            );
        }
        for phase in ["install", "pre_build", "build"] {
            assert!(!has(phase, "cachectl save"), "{name}: save in {phase}");
        }
    }
}

#[test]
fn buildspec_commands_are_valid_sh() {
    let s = Sandbox::new();
    for (name, spec) in buildspec::all() {
        let phases = spec["yaml"]["phases"].as_object().unwrap();
        for phase in phases.keys() {
            for command in commands(spec, phase) {
                let mut cmd = s.sh(&["-n", "-c", &command], &[]);
                let check = exec(&mut cmd, format!("sh -n -c <{name} {phase}>"));
                assert_eq!(
                    check.code,
                    Some(0),
                    "{name} {phase}: not valid sh:\n{command}\n{}",
                    check.context()
                );
            }
        }
    }
}

/// Files the embedded cachectl.tomls hash, so `cachectl keys` can resolve every key.
const PROJECT_FILES: &[&str] = &[
    "package-lock.json",
    "requirements.txt",
    "uv.lock",
    "pom.xml",
    "build.gradle",
    "gradle/wrapper/gradle-wrapper.properties",
    "go.sum",
    "main.go",
    "Cargo.lock",
    ".cachectl-runtime",
];

#[test]
fn embedded_cachectl_toml_is_valid_and_matches_the_buildspec() {
    for (name, spec) in buildspec::all() {
        let toml = &spec["toml"];
        assert!(
            toml.is_object(),
            "{name}: no `# --- cachectl.toml ---` block"
        );
        if name == "prune.yml" {
            assert!(toml["prune"].is_object(), "{name}: no [prune] table");
            // The real parser accepts the policy, and the buildspec's command line parses.
            let f = Fixture::bare();
            let src = f.dir("src");
            write(&src.join("cachectl.toml"), buildspec::toml_text(name));
            let run = f
                .cachectl()
                .cwd(&src)
                .args(["prune", "--dry-run", "--json", "--store", &f.store])
                .run();
            run.assert_code(0);
            assert_eq!(
                run.json()["rules"]["max_unused"],
                "14d",
                "{}",
                run.context()
            );
            let command = commands(spec, "build")
                .into_iter()
                .find(|c| c.starts_with("cachectl prune"))
                .expect("a cachectl prune command");
            let mut args: Vec<&str> = command.split_whitespace().skip(1).collect();
            args.extend(["--dry-run", "--store", &f.store]);
            f.cachectl().args(&args).run().assert_code(0);
            continue;
        }

        // The real parser (strict: unknown keys, presets and template functions are errors),
        // through `cachectl keys` in a project that has the files the keys hash.
        let f = Fixture::bare();
        let src = f.dir("src");
        for file in PROJECT_FILES {
            write(&src.join(file), format!("{file} of a test project\n"));
        }
        write(&src.join("cachectl.toml"), buildspec::toml_text(name));
        let run = f.cachectl().cwd(&src).args(["keys", "--json"]).run();
        run.assert_code(0);
        let json: Value = serde_json::from_str(run.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "{name}: `cachectl keys --json` is not JSON ({e})\n{}",
                run.context()
            )
        });
        let caches = json["caches"].as_array().unwrap();
        assert!(!caches.is_empty(), "{name}: no caches\n{}", run.context());
        let names: Vec<&str> = caches
            .iter()
            .map(|c| c["cache"].as_str().unwrap())
            .collect();
        for cache in caches {
            let key = cache["key"].as_str().unwrap();
            assert!(!key.contains("{{"), "{name}: unexpanded key {key:?}");
        }

        // Every `--cache NAME` of the buildspec is defined.
        for phase in ["pre_build", "build", "post_build"] {
            for command in commands(spec, phase) {
                let words: Vec<&str> = command.split_whitespace().collect();
                for pair in words.windows(2) {
                    if pair[0] == "--cache" {
                        assert!(
                            names.contains(&pair[1]),
                            "{name}: --cache {}: {names:?}",
                            pair[1]
                        );
                    }
                }
            }
        }

        // A file the keys hash that the build writes must be written before the restore.
        let text = buildspec::toml_text(name);
        if text.contains(".cachectl-runtime") {
            let pre = commands(spec, "pre_build");
            let writes = pre.iter().position(|c| c.contains("> .cachectl-runtime"));
            let restores = pre.iter().position(|c| c.starts_with("cachectl restore"));
            assert!(
                matches!((writes, restores), (Some(w), Some(r)) if w < r),
                "{name}: pre_build must write .cachectl-runtime before restoring: {pre:?}"
            );
        }
    }
}

/// The `# --- cachectl.toml ---` block of a buildspec, without the comment markers.
#[test]
fn buildspec_install_steps_never_fail_the_build() {
    for name in EXPECTED_SPECS {
        let spec = &buildspec::all()[*name];
        let step = install_step(spec);
        let vars = spec["yaml"]["env"]["variables"].as_object().unwrap();
        let var = |n: &str| vars[n].as_str().unwrap().to_owned();
        let (bucket, store) = (var("CACHE_BUCKET"), var("CACHECTL_STORE"));
        let env = |s: &Sandbox, strict: &'static str| -> Vec<(String, String)> {
            vec![
                ("CACHE_BUCKET".into(), bucket.clone()),
                ("CACHECTL_STORE".into(), store.clone()),
                (
                    "CACHECTL_INSTALL_DIR".into(),
                    s.path("bin").display().to_string(),
                ),
                ("CACHECTL_STRICT".into(), strict.into()),
            ]
        };
        let run_step = |s: &Sandbox, strict: &'static str, what: &str| {
            let env = env(s, strict);
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let mut cmd = s.sh(&["-c", &localize(&step, s)], &env);
            exec(&mut cmd, format!("{name} install step ({what})"))
        };

        // The bucket is fine: install.sh comes from it and installs the binary.
        let s = Sandbox::new();
        s.publish_release(VERSION);
        s.fake_uname("x86_64");
        s.fake_aws();
        s.upload_to_fake_bucket(&bucket);
        let ok = run_step(&s, "0", "healthy bucket");
        ok.assert_code(0);
        assert_no_warning(&ok);
        assert_eq!(
            s.run_installed(&["--version"]).stdout.trim(),
            format!("cachectl {VERSION}")
        );

        // The bucket is empty: no install.sh. A stand-in keeps the later cachectl lines green.
        let s = Sandbox::new();
        s.fake_uname("x86_64");
        s.fake_aws();
        let down = run_step(&s, "0", "no install.sh");
        down.assert_code(0);
        assert!(down.stdout.contains(WARNING), "{name}\n{}", down.context());
        for args in [&["restore", "--json"][..], &["save"]] {
            let r = s.run_installed(args);
            r.assert_code(0);
            assert_eq!(
                r.stdout, "",
                "{name}: the stand-in prints nothing on stdout"
            );
            assert!(r.stderr.contains("WARNING"), "{name}\n{}", r.context());
        }
        assert_stand_in_runs_commands(&s, &format!("{name}'s stand-in"));
        // ...unless a cachectl that has `run` is on PATH (one without it: see
        // buildspec_fallbacks_replace_a_cachectl_without_run_by_their_stand_in).
        write_script(&s.installed(), &fake_binary("x86_64", VERSION));
        let kept = fs::read(s.installed()).unwrap();
        let again = run_step(&s, "0", "no install.sh, cachectl on PATH");
        again.assert_code(0);
        assert!(!again.stdout.contains("too old"), "{}", again.context());
        assert_eq!(fs::read(s.installed()).unwrap(), kept);

        // Strict: the step fails, whether install.sh is missing or fails itself.
        for value in ["1", "true"] {
            let s = Sandbox::new();
            s.fake_uname("x86_64");
            s.fake_aws();
            let strict = run_step(&s, value, "strict, no install.sh");
            assert_ne!(strict.code, Some(0), "{name}\n{}", strict.context());
            s.upload_to_fake_bucket(&bucket);
            let strict = run_step(&s, value, "strict, no binaries");
            assert_eq!(strict.code, Some(1), "{name}\n{}", strict.context());
            assert!(
                strict.stderr.contains("cachectl install: ERROR:"),
                "{}",
                strict.context()
            );
        }
    }
}

/// Each buildspec's `cachectl run` steps: (buildspec, command, the call it makes, as the fake
/// tools log it).
const RUN_STEPS: &[(&str, &str, &str)] = &[
    (
        "go.yml",
        "cachectl run --cache gomod -- go mod download",
        "go mod download",
    ),
    (
        "java-gradle.yml",
        "cachectl run --cache gradle --always -- ./gradlew build",
        "gradlew build",
    ),
    (
        "java-maven.yml",
        "cachectl run --cache maven --always -- mvn --batch-mode --no-transfer-progress verify",
        "mvn --batch-mode --no-transfer-progress verify",
    ),
    (
        "node-npm.yml",
        "cachectl run --cache npm -- npm ci",
        "npm ci",
    ),
    (
        "python-pip.yml",
        "cachectl run --cache venv -- sh -c 'rm -rf ~/.venvs/app && python -m venv ~/.venvs/app && ~/.venvs/app/bin/pip install -r requirements.txt'",
        "pip install -r requirements.txt",
    ),
    (
        "python-uv.yml",
        "cachectl run --cache uv --always -- uv sync --frozen",
        "uv sync --frozen",
    ),
    (
        "rust.yml",
        "cachectl run --cache cargo -- cargo fetch --locked",
        "cargo fetch --locked",
    ),
    (
        "rust.yml",
        "cachectl run --cache target --always -- cargo build --locked --all-targets",
        "cargo build --locked --all-targets",
    ),
];

/// Fakes for the build tools the buildspecs' `cachectl run` steps call, each logging its
/// command line to tmp/calls.log (`./gradlew` in src/, the rest on PATH).
fn fake_build_tools(s: &Sandbox) {
    let log = s.path("tmp/calls.log");
    let log = log.display();
    let fake = |path: PathBuf, tool: &str, body: &str| {
        write_script(
            &path,
            &format!("#!/bin/sh\nprintf '%s\\n' \"{tool} $*\" >>'{log}'\n{body}\n"),
        );
    };
    for tool in ["node", "npm", "go", "mvn", "uv", "cargo"] {
        fake(s.path(&format!("fake/{tool}")), tool, "");
    }
    fake(s.path("src/gradlew"), "gradlew", "");
    // `python -m venv DIR` makes DIR/bin/pip, which logs as `pip`.
    let pip = s.path("tmp/pip");
    fake(pip.clone(), "pip", "");
    fake(
        s.path("fake/python"),
        "python",
        &format!(
            "case \"$1\" in\n  -c) echo /usr/bin/python3 3.12.1 ;;\n  \
             -m) [ \"$2\" = venv ] && mkdir -p \"$3/bin\" && cp '{}' \"$3/bin/pip\" ;;\n\
             esac",
            pip.display()
        ),
    );
}

/// The install steps a cache replaces or speeds up go through `cachectl run`, which reads the
/// restore's outcome itself: no buildspec greps restore's JSON line any more.
#[test]
fn install_steps_go_through_cachectl_run() {
    for (name, spec) in buildspec::all() {
        for phase in ["pre_build", "build", "post_build"] {
            for command in commands(spec, phase) {
                assert!(
                    !command.contains("\"outcome\"") && !command.contains("--json >"),
                    "{name} {phase}: `cachectl run --cache NAME -- COMMAND` decides now:\n{command}"
                );
            }
        }
    }
    let runs: Vec<(String, String)> = buildspec::all()
        .iter()
        .flat_map(|(name, spec)| {
            commands(spec, "build")
                .into_iter()
                .filter(|c| c.contains("cachectl run"))
                .map(move |c| (name.clone(), c))
        })
        .collect();
    let want: Vec<(String, String)> = RUN_STEPS
        .iter()
        .map(|(name, command, _)| ((*name).to_owned(), (*command).to_owned()))
        .collect();
    assert_eq!(runs, want, "the buildspecs' `cachectl run` steps");
}

/// A buildspec's install step when the bucket has no install.sh, so its own fallback runs;
/// `env` goes on top (a PATH of its own, say).
fn install_step_without_install_sh(s: &Sandbox, name: &str, env: &[(&str, &str)]) -> Command {
    let spec = &buildspec::all()[name];
    s.fake_aws();
    let bin = s.path("bin").display().to_string();
    let mut all = vec![
        ("CACHE_BUCKET", "cachectl-it-empty"),
        ("CACHECTL_STRICT", "0"),
        ("CACHECTL_INSTALL_DIR", bin.as_str()),
    ];
    all.extend_from_slice(env);
    s.sh(&["-c", &localize(&install_step(spec), s)], &all)
}

/// With the buildspec's own stand-in (the bucket is empty), every `cachectl run` step runs its
/// command, as a build with no cache must, also with global options before `run`.
#[test]
fn the_stand_in_runs_every_cachectl_run_step() {
    for (name, command, call) in RUN_STEPS {
        let s = Sandbox::new();
        let mut install = install_step_without_install_sh(&s, name, &[]);
        exec(&mut install, format!("{name} install step (no install.sh)")).assert_code(0);
        fake_build_tools(&s);
        for options in ["", "--json ", "-q --store s3://cachectl-it/ci "] {
            let command = command.replacen("cachectl run", &format!("cachectl {options}run"), 1);
            let _ = fs::remove_file(s.path("tmp/calls.log"));
            let mut cmd = s.sh(&["-c", &command], &[]);
            let run = exec(&mut cmd, format!("{name}: {command}"));
            run.assert_code(0);
            assert!(
                run.stderr.contains("cachectl: WARNING: not installed"),
                "{name}: the stand-in warns\n{}",
                run.context()
            );
            let calls = fs::read_to_string(s.path("tmp/calls.log")).unwrap_or_default();
            assert!(
                calls.lines().any(|l| l == *call),
                "{name}: `{command}` with the stand-in must run `{call}`; calls:\n{calls}"
            );
        }
    }
}

/// A cachectl from before `run`: it knows `--version`, and answers `run` as clap does an unknown
/// subcommand (exit 2), which would fail the build's `cachectl run` steps.
const OLD_CACHECTL: &str =
    "#!/bin/sh\ncase \"${1:-}\" in\n  --version) echo \"cachectl 0.0.1\" ;;\n  \
     run) echo \"error: unrecognized subcommand 'run'\" >&2; exit 2 ;;\n  \
     *) echo \"old cachectl $*\" ;;\nesac\n";

/// `cachectl run --cache x -- sh -c 'exit 7'` as a later phase runs it: found through PATH
/// (the sandbox's, or `path`).
fn run_exit_7(s: &Sandbox, path: Option<&str>) -> Run {
    let line = "cachectl run --cache x -- sh -c 'exit 7'";
    let env: Vec<(&str, &str)> = path.map(|p| ("PATH", p)).into_iter().collect();
    exec(&mut s.sh(&["-c", line], &env), line.to_owned())
}

/// Where an old cachectl may be: the install directory, or a directory before it on PATH (as
/// `fake/` is). Either way the stand-in is written over it, so PATH finds the stand-in.
const OLD_PLACES: &[&str] = &["bin/cachectl", "fake/cachectl"];

#[test]
fn install_sh_replaces_a_cachectl_without_run_by_the_stand_in() {
    for place in OLD_PLACES {
        let s = Sandbox::new();
        s.fake_uname("x86_64");
        let old = s.path(place);
        write_script(&old, OLD_CACHECTL);
        let line = warning_line(
            &s.install(&[("CACHECTL_DOWNLOAD_URL", "file:///nonexistent/cachectl-it")]),
        );
        let said = format!(
            "the cachectl 0.0.1 at {} has no `run` (too old; the cachectl run steps would fail \
             with it), so a stand-in {} that prints a warning replaces it on PATH",
            old.display(),
            old.display()
        );
        assert!(line.contains(&said), "{place}: {line}");
        let text = fs::read_to_string(&old).unwrap();
        assert!(text.contains("cachectl-install-shim"), "{place}: {text}");
        let run = run_exit_7(&s, None);
        assert_eq!(run.code, Some(7), "{place}\n{}", run.context());
        assert!(run.stderr.contains("not installed"), "{}", run.context());
        let want: &[&str] = if *place == "bin/cachectl" {
            &["cachectl"]
        } else {
            &[]
        };
        assert_eq!(list_dir(&s.path("bin")), want, "{place}");
    }
}

#[test]
fn buildspec_fallbacks_replace_a_cachectl_without_run_by_their_stand_in() {
    for name in EXPECTED_SPECS {
        for place in OLD_PLACES {
            let s = Sandbox::new();
            let old = s.path(place);
            write_script(&old, OLD_CACHECTL);
            let mut step = install_step_without_install_sh(&s, name, &[]);
            let run = exec(
                &mut step,
                format!("{name} install step, old cachectl in {place}"),
            );
            run.assert_code(0);
            let said = format!(
                "cachectl install: WARNING: {} has no `cachectl run` (too old); the stand-in \
                 goes to {}\n",
                old.display(),
                old.display()
            );
            assert!(
                run.stdout.contains(&said),
                "{name}, {place}\n{}",
                run.context()
            );
            let run = run_exit_7(&s, None);
            assert_eq!(run.code, Some(7), "{name}, {place}\n{}", run.context());
            assert!(run.stderr.contains("not installed"), "{}", run.context());
        }
    }
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// `cmd` (its program, arguments, environment and directory) as `nobody` when we are root, so
/// that a directory root owns is read-only to it, as to a build that does not run as root.
fn unprivileged(cmd: &Command) -> Command {
    let mut out = if is_root() {
        let mut setpriv = Command::new("setpriv");
        setpriv
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(cmd.get_program());
        setpriv
    } else {
        Command::new(cmd.get_program())
    };
    out.args(cmd.get_args()).env_clear();
    for (name, value) in cmd.get_envs() {
        if let Some(value) = value {
            out.env(name, value);
        }
    }
    if let Some(dir) = cmd.get_current_dir() {
        out.current_dir(dir);
    }
    out
}

/// A sandbox with an old cachectl in `ro/`, a directory the install cannot write (run as
/// `nobody` if we are root; mode 0555 otherwise), and `bin/` and `tmp/` writable by it.
fn sandbox_with_a_read_only_old_cachectl() -> Sandbox {
    let s = Sandbox::new();
    s.fake_uname("x86_64");
    let ro = s.path("ro");
    fs::create_dir_all(&ro).unwrap();
    write_script(&ro.join("cachectl"), OLD_CACHECTL);
    fs::set_permissions(s.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    if is_root() {
        for dir in ["bin", "tmp"] {
            std::os::unix::fs::chown(s.path(dir), Some(65534), Some(65534)).unwrap();
        }
    } else {
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).unwrap();
    }
    s
}

/// PATH with `bin/` and `ro/` in the given order.
fn path_with(s: &Sandbox, first: &str, second: &str) -> String {
    format!(
        "{}:{}:{}:/usr/bin:/bin",
        s.path("fake").display(),
        s.path(first).display(),
        s.path(second).display()
    )
}

/// When the old cachectl's directory is read-only, the stand-in goes to the install dir: found
/// first if that comes first on PATH; if not, the warning says the run steps will still fail,
/// and how to fix it, instead of claiming a stand-in that never runs.
#[test]
fn an_old_cachectl_in_a_read_only_directory_is_shadowed_by_the_stand_in_or_reported() {
    let dead = "file:///nonexistent/cachectl-it";
    // (PATH order, `cachectl run ... exit 7` exits, install.sh says)
    for (first, second, code, says) in [
        (
            "bin",
            "ro",
            7,
            "a stand-in {bin}/cachectl that prints a warning replaces it on PATH",
        ),
        (
            "ro",
            "bin",
            2,
            "a stand-in was written to {bin}/cachectl, but {ro}/cachectl comes first on PATH, \
             so they will still fail: put {bin} before {ro} on PATH",
        ),
    ] {
        let s = sandbox_with_a_read_only_old_cachectl();
        let path = path_with(&s, first, second);
        let bin = s.path("bin").display().to_string();
        let ro = s.path("ro").display().to_string();
        let says = says.replace("{bin}", &bin).replace("{ro}", &ro);
        let script = install_sh();
        let cmd = s.sh(
            &[script.to_str().unwrap()],
            &[
                ("PATH", path.as_str()),
                ("CACHECTL_INSTALL_DIR", bin.as_str()),
                ("CACHECTL_DOWNLOAD_URL", dead),
            ],
        );
        let line = warning_line(&exec(
            &mut unprivileged(&cmd),
            format!("install.sh, {first} first"),
        ));
        assert!(line.contains(&says), "{first} first: {line}");
        assert_eq!(
            fs::read_to_string(s.path("ro/cachectl")).unwrap(),
            OLD_CACHECTL
        );
        assert_eq!(
            run_exit_7(&s, Some(&path)).code,
            Some(code),
            "{first} first"
        );

        for name in EXPECTED_SPECS {
            fs::remove_file(s.path("bin/cachectl")).unwrap();
            let cmd = install_step_without_install_sh(&s, name, &[("PATH", path.as_str())]);
            let run = exec(&mut unprivileged(&cmd), format!("{name}, {first} first"));
            run.assert_code(0);
            let said = format!(
                "cachectl install: WARNING: {ro}/cachectl has no `cachectl run` (too old); the \
                 stand-in goes to {bin}/cachectl, but {ro}/cachectl comes first if {ro} precedes \
                 {bin} on PATH\n"
            );
            assert!(run.stdout.contains(&said), "{name}\n{}", run.context());
            assert_eq!(
                run_exit_7(&s, Some(&path)).code,
                Some(code),
                "{name}, {first} first"
            );
        }
    }
}

/// node-npm.yml's pre_build, build and post_build with the real cachectl (local store) and a
/// fake node/npm, as three CodeBuild builds in fresh containers: a miss runs `npm ci` and saves,
/// the next build is an exact hit that skips it, a changed lockfile is a partial hit that runs it.
/// What restore and `cachectl run` did is read from the restore -> save state file.
#[test]
fn node_npm_skips_npm_ci_on_the_next_build_with_the_real_cachectl() {
    let s = Sandbox::new();
    let spec = &buildspec::all()["node-npm.yml"];
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_cachectl"), s.path("fake/cachectl")).unwrap();
    let log = s.path("calls.log");
    write_script(&s.path("fake/node"), "#!/bin/sh\necho v20.11.1\n");
    write_script(
        &s.path("fake/npm"),
        &format!(
            "#!/bin/sh\nprintf '%s\\n' \"npm $*\" >>'{}'\n\
             if [ \"$1\" = ci ]; then rm -rf node_modules && mkdir -p node_modules/left-pad && \
             echo 'module.exports = 1' >node_modules/left-pad/index.js; fi\n",
            log.display()
        ),
    );
    let store = s.path("store");
    let build = |n: u32, lockfile: &str| -> (Value, String) {
        let root = s.path(&format!("build{n}"));
        let (src, home, tmp) = (root.join("src"), root.join("home"), root.join("tmp"));
        for dir in [&src, &home, &tmp] {
            fs::create_dir_all(dir).unwrap();
        }
        write(&src.join("package-lock.json"), lockfile);
        write(
            &src.join("cachectl.toml"),
            buildspec::toml_text("node-npm.yml"),
        );
        let _ = fs::remove_file(&log);
        let build_id = format!("node-npm:build-{n}");
        for phase in ["pre_build", "build", "post_build"] {
            for step in commands(spec, phase) {
                let step = step.replace("/tmp/", &format!("{}/", tmp.display()));
                let mut cmd = s.sh(&["-c", &step], &[]);
                cmd.current_dir(&src)
                    .env("HOME", &home)
                    .env("TMPDIR", &tmp)
                    .env("CACHECTL_STORE", &store)
                    .env("CODEBUILD_BUILD_ID", &build_id)
                    .env("CODEBUILD_BUILD_SUCCEEDING", "1")
                    .env("CACHECTL_NO_METRICS", "true")
                    .env("AWS_EC2_METADATA_DISABLED", "true")
                    .env("AWS_CONFIG_FILE", "/nonexistent/cachectl-it/aws-config")
                    .env(
                        "AWS_SHARED_CREDENTIALS_FILE",
                        "/nonexistent/cachectl-it/aws-creds",
                    );
                exec(&mut cmd, format!("build {n} {phase}: {step}")).assert_code(0);
            }
        }
        // In TMPDIR, named by the build id (`:` becomes `_`).
        let state = tmp.join(format!("cachectl-state-node-npm_build-{n}.json"));
        let text = fs::read_to_string(&state).unwrap_or_else(|e| {
            panic!("build {n}: {}: {e}; {:?}", state.display(), list_dir(&tmp))
        });
        let state: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("build {n}: the state file holds {text:?}: {e}"));
        assert!(
            src.join("node_modules/left-pad/index.js").is_file(),
            "build {n}: no node_modules"
        );
        (state, fs::read_to_string(&log).unwrap_or_default())
    };

    // (build, lockfile, restore outcome, whether `npm ci` ran)
    let builds = [
        (1, "lock v1\n", "miss", true),
        (2, "lock v1\n", "hit", false),
        (3, "lock v2\n", "partial", true),
    ];
    for (n, lockfile, outcome, ran) in builds {
        let (state, calls) = build(n, lockfile);
        assert_eq!(
            (
                &state["caches"]["npm"]["outcome"],
                &state["runs"]["npm"]["restore"],
                &state["runs"]["npm"]["ran"],
            ),
            (
                &Value::from(outcome),
                &Value::from(outcome),
                &Value::from(ran)
            ),
            "build {n}: restore outcome, and what `cachectl run` did: {state:#}"
        );
        let npm: Vec<&str> = calls.lines().collect();
        let want = if ran {
            vec!["npm ci", "npm test"]
        } else {
            vec!["npm test"]
        };
        assert_eq!(npm, want, "build {n} ({outcome}): npm calls");
    }
}
