//! Trust (issue 13): scopes keep pull-request builds' entries away from trusted builds, and
//! signatures make restores refuse entries a writer without the signing key planted. Builds are
//! simulated with CodeBuild's webhook variables; every test runs on the local store and on
//! moto S3. Object names and the signature frame are written here from docs/FORMAT.md, not
//! from src/.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::store::{read, save_tagged, small_tree, wait_for_a_newer_timestamp};
use crate::support::{for_each_store, format, moto, write, Cachectl, Fixture, Run, StoreKind};

for_each_store!(
    a_pull_request_saves_into_its_own_scope_and_starts_from_trusted_entries,
    untrusted_save_false_saves_nothing,
    trusted_refs_make_other_webhook_builds_untrusted,
    planted_entries_are_refused_and_the_fallback_is_restored,
    without_require_signature_unsigned_entries_restore_and_mismatched_ones_do_not,
    entries_signed_by_either_of_two_keys_restore,
    the_signing_key_never_appears_in_any_output,
    rm_and_prune_handle_scopes,
    a_save_restores_would_refuse_is_not_made,
    a_trusted_save_replaces_the_exact_entry_its_restore_refused,
    entries_dated_in_the_future_do_not_outlive_prune,
);

/// A CodeBuild build started by a pull-request webhook (`pr/N`).
fn pr(cmd: &mut Cachectl, n: u32) -> &mut Cachectl {
    cmd.env("CODEBUILD_WEBHOOK_TRIGGER", format!("pr/{n}"))
        .env("CODEBUILD_WEBHOOK_EVENT", "PULL_REQUEST_UPDATED")
}

/// A CodeBuild build started by a push to `branch`.
fn push<'a>(cmd: &'a mut Cachectl, branch: &str) -> &'a mut Cachectl {
    cmd.env("CODEBUILD_WEBHOOK_TRIGGER", format!("branch/{branch}"))
        .env("CODEBUILD_WEBHOOK_EVENT", "PUSH")
}

/// `<dir>/cachectl.toml` holding `text`; `--key` runs in `dir` read its `[trust]`.
fn config(dir: &Path, text: &str) {
    write(&dir.join("cachectl.toml"), text);
}

/// Every object name in the store (below the store root), `/`-separated, sorted.
fn object_names(f: &Fixture) -> Vec<String> {
    match f.kind {
        StoreKind::S3 => moto::moto().list(f.bucket.as_ref().unwrap(), ""),
        StoreKind::Local => {
            let root = PathBuf::from(&f.store);
            let mut out = Vec::new();
            let mut stack = vec![root.clone()];
            while let Some(dir) = stack.pop() {
                for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
                    let path = e.path();
                    if path.is_dir() {
                        stack.push(path);
                    } else {
                        let rel = path.strip_prefix(&root).unwrap();
                        out.push(rel.to_str().unwrap().to_owned());
                    }
                }
            }
            out.sort();
            out
        }
    }
}

/// The object name of `key` (path set `deps`) in `scope_dir` (`""` or `untrusted/<scope>/`).
fn entry_name(scope_dir: &str, key: &str) -> String {
    format!("{scope_dir}v1/{}/{key}", format::pathset(&["deps"]))
}

fn local_path(f: &Fixture, name: &str) -> PathBuf {
    let (dir, key) = name.rsplit_once('/').unwrap();
    Path::new(&f.store)
        .join(dir)
        .join(format::escape_local_key(key))
}

fn read_entry(f: &Fixture, name: &str) -> Vec<u8> {
    match f.kind {
        StoreKind::S3 => moto::moto().get_object(f.bucket.as_ref().unwrap(), name),
        StoreKind::Local => fs::read(local_path(f, name)).unwrap(),
    }
}

/// Writes `bytes` as the object `name`, as a writer with store access but no key would.
fn plant(f: &Fixture, name: &str, bytes: &[u8]) {
    match f.kind {
        StoreKind::S3 => moto::moto().put_many(
            f.bucket.as_ref().unwrap(),
            vec![(name.to_owned(), bytes.to_vec(), Vec::new())],
        ),
        StoreKind::Local => {
            let path = local_path(f, name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, bytes).unwrap();
        }
    }
}

/// Keys with a use record (`[untrusted/<scope>/]v1-used/<pathset>/<hour>/<key>`).
fn used_keys(f: &Fixture) -> Vec<String> {
    let mut keys: Vec<String> = object_names(f)
        .into_iter()
        .filter_map(|n| {
            let rest = n.split_once("v1-used/")?.1;
            let key = rest.splitn(3, '/').nth(2)?;
            Some(match f.kind {
                StoreKind::S3 => key.to_owned(),
                StoreKind::Local => key.replace("%2F", "/").replace("%25", "%"),
            })
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// `cachectl keygen --out <dir>/<name>`: the key file's text and the public key printed.
fn keygen(f: &Fixture, name: &str) -> (String, String) {
    let out = f.dir(&format!("keys-{name}")).join(name);
    let run = f
        .cachectl()
        .args(["keygen", "--out", out.to_str().unwrap()])
        .run();
    run.assert_code(0);
    let public = run.stdout.lines().last().unwrap().to_owned();
    (fs::read_to_string(&out).unwrap(), public)
}

/// `cachectl prune --json --max-age-untrusted MAX_AGE --as-of AS_OF` on the fixture's store.
fn prune_untrusted(f: &Fixture, max_age: &str, as_of: &str) -> Run {
    f.cachectl()
        .args(["prune", "--json", "--store", &f.store])
        .args(["--max-age-untrusted", max_age, "--as-of", as_of])
        .run()
}

fn str_of<'a>(json: &'a Value, field: &str) -> &'a str {
    json[field].as_str().unwrap_or_default()
}

fn a_pull_request_saves_into_its_own_scope_and_starts_from_trusted_entries(f: Fixture) {
    let main = f.dir("main");
    save_tagged(&f, &main, "npm-1", "main");
    wait_for_a_newer_timestamp();

    // The pull request starts warm from main's entry.
    let pr42 = f.dir("pr42");
    let run = pr(&mut f.restore("npm-2", &pr42), 42)
        .args(["--restore-key", "npm-"])
        .paths(["deps"])
        .run();
    let json = run.expect(0, "partial");
    assert_eq!(
        (
            str_of(&json, "matched_key"),
            str_of(&json, "matched_scope"),
            str_of(&json, "scope")
        ),
        ("npm-1", "trusted", "pr-42"),
        "{}",
        run.context()
    );
    assert_eq!(read(&pr42.join("deps/a.txt")), "main a\n");

    // It saves into its own scope, never the trusted one.
    fs::remove_dir_all(pr42.join("deps")).unwrap();
    small_tree(&pr42.join("deps"), "pr");
    let run = pr(&mut f.save("npm-2", &pr42), 42).paths(["deps"]).run();
    let json = run.expect(0, "saved");
    assert_eq!(str_of(&json, "scope"), "pr-42");
    let names = object_names(&f);
    assert!(
        names.contains(&entry_name("untrusted/pr-42/", "npm-2")),
        "{names:?}"
    );
    assert!(!names.contains(&entry_name("", "npm-2")), "{names:?}");

    // A trusted build never restores it, however its keys match: the newer pull-request
    // entry loses to the older trusted one.
    let trusted = f.dir("trusted");
    let run = push(&mut f.restore("npm-2", &trusted), "main")
        .args(["--restore-key", "npm-"])
        .paths(["deps"])
        .run();
    let json = run.expect(0, "partial");
    assert_eq!(
        (str_of(&json, "matched_key"), str_of(&json, "scope")),
        ("npm-1", "trusted")
    );
    assert_eq!(read(&trusted.join("deps/a.txt")), "main a\n");

    // The same pull request hits its own entry; another one does not see it.
    let again = f.dir("pr42-again");
    let run = pr(&mut f.restore("npm-2", &again), 42)
        .paths(["deps"])
        .run();
    let json = run.expect(0, "hit");
    assert_eq!(str_of(&json, "matched_scope"), "pr-42");
    assert_eq!(read(&again.join("deps/a.txt")), "pr a\n");
    let pr43 = f.dir("pr43");
    let run = pr(&mut f.restore("npm-2", &pr43), 43)
        .args(["--restore-key", "npm-"])
        .paths(["deps"])
        .run();
    let json = run.expect(0, "partial");
    assert_eq!(
        (str_of(&json, "matched_key"), str_of(&json, "matched_scope")),
        ("npm-1", "trusted")
    );

    // A pull request's code built by hand (no webhook) is that pull request's build too.
    let by_hand = f.dir("by-hand");
    let run = f
        .restore("npm-2", &by_hand)
        .env("CODEBUILD_SOURCE_VERSION", "pr/42")
        .paths(["deps"])
        .run();
    let json = run.expect(0, "hit");
    assert_eq!(
        (str_of(&json, "scope"), str_of(&json, "matched_scope")),
        ("pr-42", "pr-42")
    );

    // --scope / CACHECTL_SCOPE decide over the webhook variables.
    let flagged = f.dir("flagged");
    let run = f
        .restore("npm-2", &flagged)
        .args(["--scope", "pr-42"])
        .paths(["deps"])
        .run();
    assert_eq!(str_of(&run.expect(0, "hit"), "matched_scope"), "pr-42");
    let run = pr(&mut f.restore("npm-2", &f.dir("forced")), 42)
        .env("CACHECTL_SCOPE", "trusted")
        .paths(["deps"])
        .run();
    assert_eq!(str_of(&run.expect(0, "miss"), "scope"), "trusted");

    // A key the trusted scope has is not copied into the pull request's scope.
    let run = pr(&mut f.save("npm-1", &pr42), 42).paths(["deps"]).run();
    let json = run.expect(0, "skipped");
    assert_eq!(
        str_of(&json, "reason"),
        "the trusted scope has this key; restores in scope pr-42 use it"
    );
    assert!(!object_names(&f).contains(&entry_name("untrusted/pr-42/", "npm-1")));

    // A scope that is not one is a usage error.
    let run = f
        .restore("npm-2", &flagged)
        .args(["--scope", "pr/42"])
        .paths(["deps"])
        .run();
    run.assert_code(2);
    run.assert_stderr_has("scope `pr/42` is not a scope name");
}

fn untrusted_save_false_saves_nothing(f: Fixture) {
    let cwd = f.dir("repo");
    config(&cwd, "[trust]\nuntrusted-save = false\n");
    small_tree(&cwd.join("deps"), "pr");
    let run = pr(&mut f.save("npm-1", &cwd), 7).paths(["deps"]).run();
    let json = run.expect(0, "skipped");
    assert_eq!(
        str_of(&json, "reason"),
        "untrusted build (CODEBUILD_WEBHOOK_TRIGGER=pr/7) and [trust] untrusted-save = false"
    );
    assert_eq!(object_names(&f), Vec::<String>::new());
    // A trusted build of the same repository still saves.
    push(&mut f.save("npm-1", &cwd), "main")
        .paths(["deps"])
        .run()
        .expect(0, "saved");
    assert_eq!(
        object_names(&f)
            .iter()
            .filter(|n| !n.ends_with("%meta"))
            .collect::<Vec<_>>(),
        [&entry_name("", "npm-1")]
    );
}

fn trusted_refs_make_other_webhook_builds_untrusted(f: Fixture) {
    let cwd = f.dir("repo");
    config(
        &cwd,
        "[trust]\ntrusted-refs = [\"branch/main\", \"tag/*\"]\nuntrusted-refs = [\"branch/main-*\"]\n",
    );
    small_tree(&cwd.join("deps"), "feature");
    let run = push(&mut f.save("npm-1", &cwd), "feature/x")
        .paths(["deps"])
        .run();
    let scope = str_of(&run.expect(0, "saved"), "scope").to_owned();
    assert!(scope.starts_with("branch-feature-x-"), "{scope}");
    assert_eq!(scope.len(), "branch-feature-x-".len() + 8, "{scope}");
    let run = push(&mut f.restore("npm-1", &f.dir("main")), "main")
        .paths(["deps"])
        .run();
    assert_eq!(str_of(&run.expect(0, "miss"), "scope"), "trusted");
    let run = push(&mut f.save("npm-2", &cwd), "main-hotfix")
        .paths(["deps"])
        .run();
    assert_ne!(str_of(&run.expect(0, "saved"), "scope"), "trusted");
    let run = f
        .save("npm-3", &cwd)
        .env("CODEBUILD_WEBHOOK_TRIGGER", "tag/v1.2")
        .paths(["deps"])
        .run();
    assert_eq!(str_of(&run.expect(0, "saved"), "scope"), "trusted");
}

/// An object whose archive is `tar_of(tag)` but which carries `signature_frame` and a footer
/// saying it is signed, with a digest that matches: a valid signature on modified bytes.
fn with_signature_of(tag: &str, signed_object: &[u8]) -> Vec<u8> {
    let frame = &signed_object[signed_object.len() - 184..signed_object.len() - 72];
    let (tar, entries) = format::RawTar::new()
        .dir("0")
        .file("0/a.txt", format!("{tag} a\n").as_bytes())
        .finish();
    let mut object = zstd::encode_all(&tar[..], 3).unwrap();
    object.extend_from_slice(frame);
    let mut footer = format::footer(&object, tar.len() as u64, entries);
    footer[20] = 1; // flags: signed
    object.extend_from_slice(&footer);
    object
}

fn planted_entries_are_refused_and_the_fallback_is_restored(f: Fixture) {
    let (main_key, main_public) = keygen(&f, "main.pem");
    let (evil_key, _) = keygen(&f, "evil.pem");
    let repo = f.dir("repo");
    config(
        &repo,
        &format!("[trust]\npublic-keys = [\"{main_public}\"]\nrequire-signature = true\n"),
    );
    // The attackers' saves run where no [trust] stops them.
    let attacker = f.dir("attacker");
    let signed = |key: &str, tag: &str, with: Option<&str>| {
        let cwd = if tag == "evil" { &attacker } else { &repo };
        let deps = cwd.join("deps");
        let _ = fs::remove_dir_all(&deps);
        small_tree(&deps, tag);
        let mut cmd = f.save(key, cwd);
        cmd.paths(["deps"]);
        if let Some(k) = with {
            cmd.env("CACHECTL_SIGNING_KEY", k);
        }
        let json = cmd.run().expect(0, "saved");
        assert_eq!(json["signed"], with.is_some());
    };
    signed("npm-old", "good", Some(&main_key));
    // The poisoned entries, each under the key a restore looks up first.
    signed("npm-unsigned", "evil", None);
    signed("npm-other-key", "evil", Some(&evil_key));
    plant(
        &f,
        &entry_name("", "npm-copied"),
        &read_entry(&f, &entry_name("", "npm-old")),
    );
    signed("npm-modified", "good", Some(&main_key));
    let original = read_entry(&f, &entry_name("", "npm-modified"));
    plant(
        &f,
        &entry_name("", "npm-modified"),
        &with_signature_of("evil", &original),
    );

    let cases = [
        (
            "npm-unsigned",
            "it is not signed, and [trust] require-signature wants entries of scope `trusted` signed",
        ),
        ("npm-other-key", "which is not one of [trust] public-keys"),
        (
            "npm-copied",
            "its signature does not match its key, scope, path set or bytes",
        ),
        (
            "npm-modified",
            "its signature does not match its key, scope, path set or bytes",
        ),
    ];
    for (key, why) in cases {
        let dst = f.dir(&format!("dst-{key}"));
        config(
            &dst,
            &fs::read_to_string(repo.join("cachectl.toml")).unwrap(),
        );
        let run = f
            .restore(key, &dst)
            .args(["--restore-key", "npm-old"])
            .paths(["deps"])
            .run();
        let json = run.expect(0, "partial");
        assert_eq!(str_of(&json, "matched_key"), "npm-old", "{key}");
        run.assert_stderr_has(&format!("entry `{key}`: not trusted: "))
            .assert_stderr_has(why);
        assert_eq!(read(&dst.join("deps/a.txt")), "good a\n", "{key}");
        // Nothing else was written beside the destination.
        assert_eq!(
            crate::support::leftovers(&dst),
            Vec::<String>::new(),
            "{key}"
        );
    }
    // Only the entry restored records a use; the refused ones never look used.
    assert_eq!(used_keys(&f), ["npm-old"]);

    // With nothing to fall back to, the refusal is an error naming the entry, and the
    // destination is left as it was.
    let dst = f.dir("dst-alone");
    config(
        &dst,
        &fs::read_to_string(repo.join("cachectl.toml")).unwrap(),
    );
    small_tree(&dst.join("deps"), "before");
    let run = f.restore("npm-unsigned", &dst).paths(["deps"]).run();
    let json = run.expect(0, "error");
    assert!(
        str_of(&json, "message").starts_with("entry `npm-unsigned`: not trusted: it is not signed"),
        "{}",
        run.context()
    );
    assert_eq!(read(&dst.join("deps/a.txt")), "before a\n");

    // A valid entry restores as a hit.
    let dst = f.dir("dst-good");
    config(
        &dst,
        &fs::read_to_string(repo.join("cachectl.toml")).unwrap(),
    );
    let run = f.restore("npm-old", &dst).paths(["deps"]).run();
    run.expect(0, "hit");
    assert_eq!(read(&dst.join("deps/a.txt")), "good a\n");
}

fn without_require_signature_unsigned_entries_restore_and_mismatched_ones_do_not(f: Fixture) {
    let (key, _) = keygen(&f, "main.pem");
    let repo = f.dir("repo");
    small_tree(&repo.join("deps"), "plain");
    // An entry as cachectl wrote them before signatures: no key, no scope.
    f.save("npm-plain", &repo)
        .paths(["deps"])
        .run()
        .expect(0, "saved");
    let run = f.restore("npm-plain", &f.dir("a")).paths(["deps"]).run();
    run.expect(0, "hit");
    // A signature that does not match its entry is refused whatever the settings.
    f.save("npm-signed", &repo)
        .env("CACHECTL_SIGNING_KEY", &key)
        .paths(["deps"])
        .run()
        .expect(0, "saved");
    plant(
        &f,
        &entry_name("", "npm-renamed"),
        &read_entry(&f, &entry_name("", "npm-signed")),
    );
    let run = f.restore("npm-renamed", &f.dir("b")).paths(["deps"]).run();
    let json = run.expect(0, "error");
    assert!(
        str_of(&json, "message").contains("its signature does not match"),
        "{}",
        run.context()
    );
    let run = f.restore("npm-signed", &f.dir("c")).paths(["deps"]).run();
    run.expect(0, "hit");
}

fn entries_signed_by_either_of_two_keys_restore(f: Fixture) {
    let (old_key, old_public) = keygen(&f, "old.pem");
    let (new_key, new_public) = keygen(&f, "new.pem");
    assert_ne!(old_public, new_public);
    let repo = f.dir("repo");
    let settings = format!(
        "[trust]\npublic-keys = [\"{old_public}\", \"{new_public}\"]\nrequire-signature = true\n"
    );
    config(&repo, &settings);
    small_tree(&repo.join("deps"), "rotated");
    for (key, signing) in [("npm-old", &old_key), ("npm-new", &new_key)] {
        f.save(key, &repo)
            .env("CACHECTL_SIGNING_KEY", signing)
            .paths(["deps"])
            .run()
            .expect(0, "saved");
        let dst = f.dir(&format!("dst-{key}"));
        config(&dst, &settings);
        f.restore(key, &dst).paths(["deps"]).run().expect(0, "hit");
        assert_eq!(read(&dst.join("deps/a.txt")), "rotated a\n");
    }
    // Once the old key is dropped from the list, its entries are refused.
    let dst = f.dir("dst-dropped");
    config(
        &dst,
        &format!("[trust]\npublic-keys = [\"{new_public}\"]\nrequire-signature = true\n"),
    );
    let run = f.restore("npm-old", &dst).paths(["deps"]).run();
    let json = run.expect(0, "error");
    assert!(
        str_of(&json, "message").contains(&format!("signed by {old_public}, which is not one of")),
        "{}",
        run.context()
    );
}

/// Every run's output must be free of the key's secret: the PEM body and the raw seed in the
/// usual encodings.
fn assert_no_secret(run: &Run, secrets: &[String]) {
    for s in secrets {
        for (stream, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
            assert!(
                !text.contains(s.as_str()),
                "{stream} holds the signing key\n{}",
                run.context()
            );
        }
    }
}

fn the_signing_key_never_appears_in_any_output(f: Fixture) {
    use base64::Engine;
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    let (key, _) = keygen(&f, "main.pem");
    let seed = ed25519_dalek::SigningKey::from_pkcs8_pem(&key)
        .unwrap()
        .to_bytes();
    let mut secrets: Vec<String> = key
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::to_owned)
        .collect();
    secrets.push(base64::engine::general_purpose::STANDARD.encode(seed));
    secrets.push(seed.iter().map(|b| format!("{b:02x}")).collect());
    secrets.push(format!("{seed:?}"));
    let repo = f.dir("repo");
    small_tree(&repo.join("deps"), "secret");
    let mut runs = Vec::new();
    runs.push(
        f.save("k-1", &repo)
            .args(["-v"])
            .env("CACHECTL_SIGNING_KEY", &key)
            .env("CACHECTL_TIMINGS", "1")
            .paths(["deps"])
            .run(),
    );
    runs.push(
        f.restore("k-1", &f.dir("dst"))
            .args(["-v"])
            .env("CACHECTL_SIGNING_KEY", &key)
            .paths(["deps"])
            .run(),
    );
    // A pull-request build given the key: a warning, nothing signed, nothing quoted.
    let run = pr(&mut f.save("k-2", &repo), 5)
        .env("CACHECTL_SIGNING_KEY", &key)
        .paths(["deps"])
        .run();
    let json = run.expect(0, "saved");
    assert_eq!(json["signed"], false);
    run.assert_stderr_has("CACHECTL_SIGNING_KEY is set in an untrusted build");
    runs.push(run);
    // A damaged key: the save fails open with a line that does not quote it.
    let damaged = key.replacen('M', "#", 1);
    let mut damaged_secrets = secrets.clone();
    damaged_secrets.extend(
        damaged
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .map(str::to_owned),
    );
    let run = f
        .save("k-3", &repo)
        .env("CACHECTL_SIGNING_KEY", &damaged)
        .paths(["deps"])
        .run();
    let json = run.expect(0, "error");
    assert_eq!(
        str_of(&json, "reason"),
        "the signing key is not an ed25519 private key in PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`)"
    );
    assert_no_secret(&run, &damaged_secrets);
    assert!(
        !object_names(&f).iter().any(|n| n.contains("k-3")),
        "an entry that should have been signed was saved unsigned"
    );
    let strict = f
        .save("k-3", &repo)
        .args(["--strict"])
        .env("CACHECTL_SIGNING_KEY", &damaged)
        .paths(["deps"])
        .run();
    strict.assert_code(1);
    runs.push(strict);
    for run in &runs {
        assert_no_secret(run, &secrets);
    }
}

fn rm_and_prune_handle_scopes(f: Fixture) {
    let repo = f.dir("repo");
    small_tree(&repo.join("deps"), "x");
    let at = |day: u32| format!("2026-01-{day:02}T00:00:00Z");
    for (key, build, day) in [
        ("npm-a", None, 1),
        ("npm-b", Some(42), 1),
        ("npm-c", Some(43), 9),
    ] {
        let mut cmd = f.save(key, &repo);
        cmd.env("CACHECTL_NOW", at(day)).paths(["deps"]);
        if let Some(n) = build {
            pr(&mut cmd, n);
        }
        cmd.run().expect(0, "saved");
    }
    let ls = |extra: &[&str]| -> Vec<(String, String)> {
        let run = f
            .cachectl()
            .args(["ls", "--json", "--store", &f.store])
            .args(extra)
            .run();
        run.assert_code(0);
        run.json()["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (str_of(e, "key").to_owned(), str_of(e, "scope").to_owned()))
            .collect()
    };
    let pair = |k: &str, s: &str| (k.to_owned(), s.to_owned());
    assert_eq!(
        ls(&[]),
        [
            pair("npm-a", "trusted"),
            pair("npm-b", "pr-42"),
            pair("npm-c", "pr-43")
        ]
    );
    assert_eq!(ls(&["--scope", "pr-43"]), [pair("npm-c", "pr-43")]);
    let table = f.cachectl().args(["ls", "--store", &f.store]).run();
    let header = table.stdout.lines().next().unwrap_or_default().to_owned();
    assert!(header.starts_with("KEY    SCOPE"), "{}", table.context());

    // Untrusted entries older than max-age-untrusted go; the trusted one, as old, stays.
    let run = prune_untrusted(&f, "5d", &at(10));
    run.assert_code(0);
    let json = run.json();
    assert_eq!(
        json["deleted_by_reason"]["max-age-untrusted"],
        1,
        "{}",
        run.context()
    );
    assert_eq!(ls(&[]), [pair("npm-a", "trusted"), pair("npm-c", "pr-43")]);

    // rm --scope alone drops a closed pull request's entries, and only those.
    let run = f
        .cachectl()
        .args(["rm", "--json", "--store", &f.store, "--scope", "pr-43"])
        .run();
    run.assert_code(0);
    assert_eq!(run.json()["deleted"][0]["scope"], "pr-43");
    assert_eq!(ls(&[]), [pair("npm-a", "trusted")]);
    assert!(
        !object_names(&f)
            .iter()
            .any(|n| n.starts_with("untrusted/") && !n.ends_with('/') && !n.contains("/v1-used/")),
        "{:?}",
        object_names(&f)
    );
}

#[test]
fn keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites() {
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::bare();
    let out = f.dir("keys").join("signing.pem");
    let run = f
        .cachectl()
        .args(["keygen", "--out", out.to_str().unwrap()])
        .run();
    run.assert_code(0);
    let public = run.stdout.lines().last().unwrap();
    let b64 = public.strip_prefix("ed25519:").expect("ed25519: prefix");
    assert_eq!(b64.len(), 44, "{public}");
    let mode = fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = fs::read_to_string(&out).unwrap();
    let key = ed25519_dalek::SigningKey::from_pkcs8_pem(&text).unwrap();
    use base64::Engine;
    assert_eq!(
        base64::engine::general_purpose::STANDARD.encode(key.verifying_key().to_bytes()),
        b64
    );

    let again = f
        .cachectl()
        .args(["keygen", "--out", out.to_str().unwrap()])
        .run();
    again.assert_code(2);
    again.assert_stderr_has("exists; keygen never overwrites a key");
    assert_eq!(
        fs::read_to_string(&out).unwrap(),
        text,
        "the key was replaced"
    );

    let other = out.with_file_name("other.pem");
    let json = f
        .cachectl()
        .args(["keygen", "--json", "--out", other.to_str().unwrap()])
        .run();
    json.assert_code(0);
    let value = json.json();
    assert_ne!(value["public_key"].as_str(), Some(public), "two keys alike");

    // The private key pasted where a public key belongs: the error names the entry, and
    // quotes nothing of it.
    let repo = f.dir("repo");
    config(
        &repo,
        &format!("[trust]\npublic-keys = [\"{public}\", \"\"\"{text}\"\"\"]\n"),
    );
    let run = f
        .cachectl()
        .cwd(&repo)
        .args([
            "restore",
            "--store",
            "/nonexistent",
            "--key",
            "k",
            "--path",
            "deps",
        ])
        .run();
    run.assert_code(1);
    run.assert_stderr_has("`public-keys` entry 2: a public key is not");
    let body: Vec<&str> = text.lines().filter(|l| !l.starts_with("-----")).collect();
    for line in body {
        assert!(!run.stderr.contains(line), "{}", run.context());
    }
}

#[test]
fn a_signed_entry_verifies_by_hand_as_the_format_says() {
    use base64::Engine;
    use ed25519_dalek::Verifier;
    let f = Fixture::new(StoreKind::Local, "signed-by-hand");
    let (key, public) = keygen(&f, "main.pem");
    let repo = f.dir("repo");
    small_tree(&repo.join("deps"), "hand");
    f.save("npm-\"quoted\"", &repo)
        .env("CACHECTL_SIGNING_KEY", &key)
        .paths(["deps"])
        .run()
        .expect(0, "saved");
    let object = read_entry(&f, &entry_name("", "npm-\"quoted\""));
    let (before_footer, footer) = format::split_object(&object).unwrap();
    assert_eq!(footer.flags, 1, "the footer says signed");
    assert_eq!(&footer.digest, blake3::hash(before_footer).as_bytes());
    let (archive, frame) = before_footer.split_at(before_footer.len() - 112);
    assert_eq!(&frame[0..4], &[0x5D, 0x2A, 0x4D, 0x18]);
    assert_eq!(u32::from_le_bytes(frame[4..8].try_into().unwrap()), 104);
    assert_eq!(&frame[8..16], b"CACHESIG");
    let public_key: [u8; 32] = frame[16..48].try_into().unwrap();
    assert_eq!(
        format!(
            "ed25519:{}",
            base64::engine::general_purpose::STANDARD.encode(public_key)
        ),
        public
    );
    let statement = format!(
        "cachectl entry signature v1\nformat 1\nscope trusted\npaths [\"deps\"]\nkey \"npm-\\\"quoted\\\"\"\nblake3 {}\n",
        blake3::hash(archive).to_hex()
    );
    let signature = ed25519_dalek::Signature::from_bytes(&frame[48..112].try_into().unwrap());
    ed25519_dalek::VerifyingKey::from_bytes(&public_key)
        .unwrap()
        .verify(statement.as_bytes(), &signature)
        .expect("the signature verifies over the statement FORMAT.md describes");
    // zstd still reads the archive: the signature frame is a skippable frame.
    assert_eq!(
        format::decompress(before_footer),
        format::decompress(archive),
        "the frame adds nothing to the tar stream"
    );
}

fn a_save_restores_would_refuse_is_not_made(f: Fixture) {
    let (key, public) = keygen(&f, "main.pem");
    let (other, other_public) = keygen(&f, "other.pem");
    let repo = f.dir("repo");
    config(
        &repo,
        &format!("[trust]\npublic-keys = [\"{public}\"]\nrequire-signature = true\n"),
    );
    small_tree(&repo.join("deps"), "x");
    // No key: nothing saved, and the key stays free for a build that has it.
    let run = f.save("npm-1", &repo).paths(["deps"]).run();
    let json = run.expect(0, "error");
    assert_eq!(
        str_of(&json, "reason"),
        "[trust] require-signature is on and CACHECTL_SIGNING_KEY is not set: restores would refuse this entry, so it is not saved"
    );
    // A key whose public half is not listed: the same.
    let run = f
        .save("npm-1", &repo)
        .env("CACHECTL_SIGNING_KEY", &other)
        .paths(["deps"])
        .run();
    let json = run.expect(0, "error");
    assert_eq!(
        str_of(&json, "reason"),
        format!("the signing key's public key {other_public} is not in [trust] public-keys: restores would refuse this entry, so it is not saved")
    );
    assert!(object_names(&f).is_empty(), "{:?}", object_names(&f));
    f.save("npm-1", &repo)
        .env("CACHECTL_SIGNING_KEY", &key)
        .paths(["deps"])
        .run()
        .expect(0, "saved");
    // "all": a pull request's build never signs, so it does not save what its restores refuse.
    config(
        &repo,
        &format!("[trust]\npublic-keys = [\"{public}\"]\nrequire-signature = \"all\"\n"),
    );
    let run = pr(&mut f.save("npm-2", &repo), 3).paths(["deps"]).run();
    let json = run.expect(0, "skipped");
    assert!(
        str_of(&json, "reason").contains("require-signature = \"all\" wants its entries signed"),
        "{}",
        run.context()
    );
    // An empty CACHECTL_SCOPE is unset, not an error.
    let run = f
        .restore("npm-1", &f.dir("empty-scope"))
        .env("CACHECTL_SCOPE", "")
        .paths(["deps"])
        .run();
    assert_eq!(str_of(&run.expect(0, "hit"), "scope"), "trusted");
}

fn a_trusted_save_replaces_the_exact_entry_its_restore_refused(f: Fixture) {
    let (key, public) = keygen(&f, "main.pem");
    // Planted by a writer without the key (or saved before signatures were required).
    let evil = f.dir("evil");
    small_tree(&evil.join("deps"), "evil");
    f.save("npm-1", &evil)
        .paths(["deps"])
        .run()
        .expect(0, "saved");

    let settings = format!(
        "[cache.deps]\nkey = \"npm-1\"\npaths = [\"deps\"]\n\n[trust]\npublic-keys = [\"{public}\"]\nrequire-signature = true\n"
    );
    let build = f.dir("build");
    config(&build, &settings);
    let step = |command: &str| {
        let mut cmd = f.cachectl();
        cmd.cwd(&build)
            .args([command, "--json", "--store", &f.store])
            .env("CODEBUILD_BUILD_ID", "web:1")
            .env("CACHECTL_SIGNING_KEY", &key);
        push(&mut cmd, "main").run()
    };
    step("restore").expect(0, "error");
    assert!(!build.join("deps").exists(), "nothing was restored");
    small_tree(&build.join("deps"), "good");
    let json = step("save").expect(0, "saved");
    assert_eq!(
        (str_of(&json, "reason"), &json["signed"]),
        (
            "replaced the entry this build's restore refused",
            &Value::Bool(true)
        )
    );
    let next = f.dir("next");
    config(&next, &settings);
    f.cachectl()
        .cwd(&next)
        .args(["restore", "--json", "--store", &f.store])
        .run()
        .expect(0, "hit");
    assert_eq!(read(&next.join("deps/a.txt")), "good a\n");
}

fn entries_dated_in_the_future_do_not_outlive_prune(f: Fixture) {
    let repo = f.dir("repo");
    small_tree(&repo.join("deps"), "x");
    // A pull request's build sets the clock cachectl records creation and use with.
    pr(&mut f.save("npm-pr", &repo), 9)
        .env("CACHECTL_NOW", "2099-01-01T00:00:00Z")
        .paths(["deps"])
        .run()
        .expect(0, "saved");
    pr(&mut f.restore("npm-pr", &f.dir("dst")), 9)
        .env("CACHECTL_NOW", "2099-01-01T00:00:00Z")
        .paths(["deps"])
        .run()
        .expect(0, "hit");
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(10 * 86400);
    let run = prune_untrusted(
        &f,
        "5d",
        &humantime::format_rfc3339_seconds(later).to_string(),
    );
    run.assert_code(0);
    assert_eq!(
        run.json()["deleted_by_reason"]["max-age-untrusted"],
        1,
        "{}",
        run.context()
    );
}
