//! Tests of the harness itself, so a failing cachectl test can be trusted to be about cachectl.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::process::Command;

use crate::support::format::{self, RawTar};
use crate::support::moto;
use crate::support::tree::{self, Kind, TreeOptions};
use crate::support::{tempdir, Fixture};

#[test]
fn generated_tree_survives_cp_a_unchanged() {
    let dir = tempdir("cachectl-it-");
    let original = dir.path().join("original");
    tree::generate(&original, TreeOptions::default());
    let copy = dir.path().join("copy");
    let status = Command::new("cp")
        .arg("-a")
        .arg(&original)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());

    let snap = tree::snapshot(&original);
    tree::assert_same_tree(&snap, &copy);

    let kinds = |kind| snap.values().filter(|i| i.kind == kind).count();
    assert!(kinds(Kind::File) >= 20, "{snap:#?}");
    assert!(kinds(Kind::Dir) >= 15);
    assert_eq!(kinds(Kind::Symlink), 5);
    assert_eq!(kinds(Kind::Other), 1, "the FIFO");
    assert_eq!(
        snap["hard/two.txt"].hardlink_group.as_deref(),
        Some("hard/one.txt")
    );
    assert_eq!(
        snap["other/three.txt"].hardlink_group.as_deref(),
        Some("hard/one.txt")
    );
    assert_eq!(
        snap["hard/exec-b"].hardlink_group.as_deref(),
        Some("hard/exec-a")
    );
    assert_eq!(snap["modes/setuid"].mode, 0o4755);
    assert_eq!(
        snap[".bin/x"].symlink_target.as_deref(),
        Some("../pkg/bin.js")
    );
    let (long_dir, long_file) = tree::long_names();
    assert!(format!("{long_dir}/{long_file}").len() > 255);
    assert!(snap.contains_key(&format!("{long_dir}/{long_file}")));

    let mtimes: std::collections::BTreeSet<i64> = snap.values().map(|i| i.mtime_secs).collect();
    assert!(mtimes.len() > snap.len() / 2, "mtimes are not distinct");

    let expected = tree::expected_after_restore(&snap);
    assert!(!expected.contains_key("fifo"));
    assert_eq!(expected["modes/setuid"].mode, 0o755);
    assert_eq!(expected["modes/setgid"].mode, 0o750);
    assert_eq!(expected["modes/sticky-dir"].mode, 0o777);
}

#[test]
fn big_tree_has_a_50_mb_file_of_mixed_compressibility() {
    let dir = tempdir("cachectl-it-");
    let root = dir.path().join("t");
    tree::generate(
        &root,
        TreeOptions {
            big_file: true,
            fifo: false,
            seed: 7,
        },
    );
    let blob = fs::read(root.join("big/blob.bin")).unwrap();
    assert_eq!(blob.len(), tree::BIG_FILE_BYTES);
    let compressed = zstd::encode_all(&blob[..], 3).unwrap().len();
    let ratio = compressed as f64 / blob.len() as f64;
    assert!((0.45..0.6).contains(&ratio), "compression ratio {ratio}");
}

#[test]
fn snapshot_diff_names_every_kind_of_change() {
    let dir = tempdir("cachectl-it-");
    let original = dir.path().join("original");
    tree::generate(&original, TreeOptions::default());
    let snap = tree::snapshot(&original);
    let copy = dir.path().join("copy");
    assert!(Command::new("cp")
        .arg("-a")
        .arg(&original)
        .arg(&copy)
        .status()
        .unwrap()
        .success());

    fs::set_permissions(copy.join("pkg/bin.js"), fs::Permissions::from_mode(0o644)).unwrap();
    let readme = copy.join("README.md");
    let mtime = filetime::FileTime::from_last_modification_time(&fs::metadata(&readme).unwrap());
    fs::write(&readme, "changed, same mtime\n").unwrap();
    filetime::set_file_mtime(&readme, mtime).unwrap();
    filetime::set_file_mtime(
        copy.join("empty.txt"),
        filetime::FileTime::from_unix_time(1, 0),
    )
    .unwrap();
    let two = copy.join("hard/two.txt");
    let content = fs::read(&two).unwrap();
    fs::remove_file(&two).unwrap();
    fs::write(&two, content).unwrap();
    fs::remove_file(copy.join("links/dangling")).unwrap();
    symlink("elsewhere", copy.join("links/dangling")).unwrap();
    fs::remove_dir(copy.join("empty-dir")).unwrap();
    fs::write(copy.join("extra.txt"), "extra").unwrap();

    let lines = tree::diff(&snap, &tree::snapshot(&copy));
    let text = lines.join("\n");
    for path in [
        "pkg/bin.js",
        "README.md",
        "empty.txt",
        "hard/two.txt",
        "links/dangling",
        "empty-dir",
        "extra.txt",
    ] {
        assert!(
            text.contains(&format!("{path:?}")),
            "{path} not in diff:\n{text}"
        );
    }
}

#[test]
fn bucket_names_are_valid_and_distinct() {
    let long = "a_very_long_test_name_that_goes_on_and_on_beyond_sixty_three_bytes";
    for name in [
        moto::bucket_name("round_trip-s3"),
        moto::bucket_name(long),
        moto::bucket_name(&format!("{long}2")),
    ] {
        assert!(name.len() >= 3 && name.len() <= 63, "{name}");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{name}"
        );
    }
    assert_ne!(
        moto::bucket_name(long),
        moto::bucket_name(&format!("{long}2"))
    );
}

#[test]
fn moto_serves_a_bucket_per_test() {
    let server = moto::moto();
    let bucket = moto::bucket_name("harness-moto-serves");
    server.create_bucket(&bucket);
    assert_eq!(server.list_status(&bucket), Ok(()));
    assert_eq!(server.list(&bucket, ""), Vec::<String>::new());
    assert_eq!(
        server.list_status(&moto::bucket_name("harness-never-created")),
        Err(404)
    );
}

/// cachectl uploads big archives in parts; a moto whose CompleteMultipartUpload answer the SDK
/// cannot parse fails the big-file S3 tests with a bare "HTTP 200". Say why here instead.
#[test]
fn moto_completes_multipart_uploads_the_sdk_accepts() {
    let server = moto::moto();
    let bucket = moto::bucket_name("harness-moto-multipart");
    server.create_bucket(&bucket);
    if let Err(e) = server.multipart_upload(&bucket, "object") {
        panic!(
            "moto_server at {} broke a multipart upload: {e}\n\
             moto 5.2.1 answers CompleteMultipartUpload with <CompleteMultipartUploadResponse>, \
             which the Rust SDK rejects (getmoto/moto#10055, fixed by #10056; 5.2.5 works): \
             `pip install 'moto[server]>=5.2.5'`, or point {} at a newer moto_server",
            server.endpoint,
            moto::MOTO_ENV
        );
    }
    assert_eq!(server.list(&bucket, ""), ["object"]);
}

#[test]
fn moto_enforcing_auth_answers_403_to_the_test_credentials() {
    let server = moto::moto_enforcing_auth();
    assert_ne!(server.endpoint, moto::moto().endpoint);
    assert_eq!(server.list_status("any-bucket"), Err(403));
}

#[test]
fn hand_made_object_follows_the_format() {
    let object = RawTar::new()
        .dir("0/")
        .file("0/ok.txt", b"ok\n")
        .file("0/../../escape.txt", b"escaped\n")
        .symlink("0/up", "../..")
        .hardlink("0/hl", "/etc/passwd")
        .object();
    let (body, footer) = format::split_object(&object).unwrap();
    assert_eq!(footer.version, 1);
    assert_eq!(footer.flags, 0);
    assert_eq!(&footer.digest, blake3::hash(body).as_bytes());
    assert_eq!(footer.entries, 5);
    // zstd itself skips the footer frame.
    let tar = zstd::decode_all(&object[..]).unwrap();
    assert_eq!(tar.len() as u64, footer.tar_len);
    assert_eq!(format::decompress(body), tar);

    let mut archive = tar::Archive::new(&tar[..]);
    let entries: Vec<(String, Option<String>)> = archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = String::from_utf8(e.path_bytes().into_owned()).unwrap();
            let link = e
                .link_name_bytes()
                .map(|l| String::from_utf8(l.into_owned()).unwrap());
            (name, link)
        })
        .collect();
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["0/", "0/ok.txt", "0/../../escape.txt", "0/up", "0/hl"]
    );
    assert_eq!(entries[4].1.as_deref(), Some("/etc/passwd"));
}

#[test]
fn format_helpers_match_the_spec_examples() {
    assert_eq!(format::escape_local_key("a/b%c"), "a%2Fb%25c");
    assert_eq!(format::escape_local_key(".npm.x"), "%2Enpm.x");
    assert_eq!(format::escape_local_key("é-ok"), "é-ok");
    let set = format::pathset(&["~/.npm", "node_modules"]);
    assert_eq!(set.len(), 16);
    assert_eq!(
        set,
        format::pathset(&["node_modules", "~/.npm", "node_modules"])
    );
    let expected = blake3::hash(b"cachectl-paths-v1\nnode_modules\n~/.npm").to_hex();
    assert_eq!(set, expected[..16]);
}

#[test]
fn cachectl_help_runs_without_store_or_network() {
    let f = Fixture::bare();
    // `cachectl --help` must work without a store or network.
    let run = f.cachectl().arg("--help").run();
    assert_eq!(run.code, Some(0), "{}", run.context());
    assert!(run.stdout.contains("save") && run.stdout.contains("restore"));
}
