//! Where entries live and what they look like: store selection (flag, env var, defaults), S3
//! prefixes, object names, metadata, footer and tar layout per docs/FORMAT.md, and a hand-made
//! entry that restores.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde_json::Value;

use crate::store::{assert_matched, read, save_tagged, small_tree};
use crate::support::format::{self, RawTar};
use crate::support::{for_each_store, list_dir, moto, write, Fixture, StoreKind};

for_each_store!(
    store_from_env_var,
    saved_object_follows_format,
    hand_written_entry_restores,
);

fn store_from_env_var(f: Fixture) {
    let src = f.dir("src");
    small_tree(&src.join("deps"), "env");
    let save = f
        .cachectl()
        .cwd(&src)
        .env("CACHECTL_STORE", &f.store)
        .args(["save", "--json", "--key", "from-env"])
        .paths(["deps"])
        .run();
    save.expect(0, "saved");

    // Found with --store: it went to the store the variable named.
    let dst = f.dir("dst");
    f.restore("from-env", &dst)
        .paths(["deps"])
        .run()
        .expect(0, "hit");
    let dst = f.dir("dst2");
    let restore = f
        .cachectl()
        .cwd(&dst)
        .env("CACHECTL_STORE", &f.store)
        .args(["restore", "--json", "--key", "from-env"])
        .paths(["deps"])
        .run();
    restore.expect(0, "hit");
    assert_eq!(read(&dst.join("deps/a.txt")), "env a\n");
    assert!(
        !f.home.join(".xdg-cache/cachectl").exists(),
        "the default store was used despite CACHECTL_STORE"
    );
}

/// Object name, metadata, footer and tar layout as docs/FORMAT.md describes them.
fn saved_object_follows_format(f: Fixture) {
    let (cwd, home) = (f.dir("cwd"), f.dir("home1"));
    small_tree(&cwd.join("deps"), "fmt");
    write(&home.join(".npm/c.txt"), "c\n");
    let key = ".fmt/a%b";
    f.save(key, &cwd)
        .home(&home)
        .paths(["~/.npm", "./deps/"])
        .run()
        .expect(0, "saved");

    let pathset = format::pathset(&["deps", "~/.npm"]);
    let object = match f.kind {
        StoreKind::Local => {
            let dir = Path::new(&f.store).join("v1").join(&pathset);
            let file = dir.join("%2Efmt%2Fa%25b");
            assert!(
                file.is_file(),
                "no object at {}; store holds {:?}",
                file.display(),
                list_dir(&dir)
            );
            let meta = dir.join("%2Efmt%2Fa%25b%meta");
            let meta: Value = serde_json::from_slice(&fs::read(&meta).unwrap()).unwrap();
            assert_eq!(meta["format"], 1, "{meta}");
            assert_eq!(meta["key"], key, "{meta}");
            assert_eq!(
                meta["paths"],
                serde_json::json!(["deps", "~/.npm"]),
                "{meta}"
            );
            for field in ["family", "created", "cachectl"] {
                assert!(meta[field].is_string(), "`{field}` in {meta}");
            }
            fs::read(file).unwrap()
        }
        StoreKind::S3 => {
            let bucket = f.bucket.as_ref().unwrap();
            let name = format!("v1/{pathset}/{key}");
            let names = moto::moto().list(bucket, "");
            assert_eq!(names, std::slice::from_ref(&name), "S3 object names");
            let metadata = moto::moto().metadata(bucket, &name);
            let fields: Vec<&str> = metadata.iter().map(|(k, _)| k.as_str()).collect();
            for field in ["format", "key", "paths", "family", "created", "version"] {
                let field = format!("cachectl-{field}");
                assert!(fields.contains(&field.as_str()), "{field} in {metadata:?}");
            }
            let format_value = metadata.iter().find(|(k, _)| k == "cachectl-format");
            assert_eq!(format_value.map(|(_, v)| v.as_str()), Some("1"));
            moto::moto().get_object(bucket, &name)
        }
    };

    let (body, footer) = format::split_object(&object).unwrap();
    assert_eq!((footer.version, footer.flags), (1, 0));
    assert_eq!(
        &footer.digest,
        blake3::hash(body).as_bytes(),
        "footer digest"
    );
    let tar = format::decompress(body);
    assert_eq!(footer.tar_len, tar.len() as u64, "footer tar length");
    let mut archive = tar::Archive::new(&tar[..]);
    let mut names = Vec::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let header = entry.header();
        if header.entry_type() == tar::EntryType::XGlobalHeader {
            continue;
        }
        assert_eq!(
            (header.uid().unwrap(), header.gid().unwrap()),
            (0, 0),
            "owner of {:?}",
            entry.path()
        );
        let name = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
        names.push(name.trim_end_matches('/').to_owned());
    }
    assert_eq!(
        names,
        ["0", "0/a.txt", "0/sub", "0/sub/b.txt", "1", "1/c.txt"],
        "tar entries (index 0 = deps, 1 = ~/.npm, depth-first, byte order)"
    );
    assert_eq!(footer.entries, names.len() as u64, "footer entry count");
}

/// The control for the hostile-archive tests: an object made by hand per docs/FORMAT.md, with
/// a correct footer, restores. So when a hostile one is refused, its content is the reason.
fn hand_written_entry_restores(f: Fixture) {
    let src = f.dir("src");
    save_tagged(&f, &src, "by-hand", "original");
    let object = RawTar::new()
        .dir("0/")
        .file("0/hand.txt", b"written by hand\n")
        .dir("0/sub/")
        .file("0/sub/x.txt", b"x\n")
        .symlink("0/link", "hand.txt")
        .hardlink("0/hard.txt", "0/hand.txt")
        .object();
    f.replace_object("by-hand", &object);

    let dst = f.dir("dst");
    let restore = f.restore("by-hand", &dst).paths(["deps"]).run();
    assert_matched(&restore, &restore.expect(0, "hit"), "by-hand");
    let deps = dst.join("deps");
    assert_eq!(read(&deps.join("hand.txt")), "written by hand\n");
    assert_eq!(read(&deps.join("sub/x.txt")), "x\n");
    assert_eq!(
        fs::read_link(deps.join("link")).unwrap(),
        Path::new("hand.txt")
    );
    let inode = |p: &str| fs::metadata(deps.join(p)).unwrap().ino();
    assert_eq!(
        inode("hard.txt"),
        inode("hand.txt"),
        "hard link restored as a copy"
    );
    assert!(
        !deps.join("a.txt").exists(),
        "content of the replaced object"
    );
}

#[test]
fn local_default_store_is_under_xdg_cache_home() {
    let f = Fixture::new(StoreKind::Local, "default-store-xdg");
    let src = f.dir("src");
    small_tree(&src.join("deps"), "default");
    let xdg = f.root().join("xdg");
    let save = f
        .cachectl()
        .cwd(&src)
        .env("XDG_CACHE_HOME", &xdg)
        .args(["save", "--json", "--key", "default"])
        .paths(["deps"])
        .run();
    save.expect(0, "saved");
    assert!(
        xdg.join("cachectl/v1").is_dir(),
        "no store at $XDG_CACHE_HOME/cachectl: {:?}",
        list_dir(&xdg)
    );
    let dst = f.dir("dst");
    let restore = f
        .cachectl()
        .cwd(&dst)
        .env("XDG_CACHE_HOME", &xdg)
        .args(["restore", "--json", "--key", "default"])
        .paths(["deps"])
        .run();
    restore.expect(0, "hit");
}

#[test]
fn local_default_store_without_xdg_is_home_dot_cache() {
    let f = Fixture::new(StoreKind::Local, "default-store-home");
    let src = f.dir("src");
    small_tree(&src.join("deps"), "default");
    let save = f
        .cachectl()
        .cwd(&src)
        .env_remove("XDG_CACHE_HOME")
        .args(["save", "--json", "--key", "default"])
        .paths(["deps"])
        .run();
    save.expect(0, "saved");
    assert!(
        f.home.join(".cache/cachectl/v1").is_dir(),
        "no store at ~/.cache/cachectl: {:?}",
        list_dir(&f.home)
    );
}

#[test]
fn s3_store_prefix_holds_the_objects() {
    let f = Fixture::new(StoreKind::S3, "s3-store-prefix");
    let bucket = f.bucket.clone().unwrap();
    let prefixed = format!("s3://{bucket}/ci/cache");
    let src = f.dir("src");
    small_tree(&src.join("deps"), "prefix");
    f.cachectl()
        .cwd(&src)
        .args(["save", "--json", "--store", &prefixed, "--key", "pre"])
        .paths(["deps"])
        .run()
        .expect(0, "saved");
    let pathset = format::pathset(&["deps"]);
    assert_eq!(
        moto::moto().list(&bucket, ""),
        [format!("ci/cache/v1/{pathset}/pre")]
    );

    let dst = f.dir("dst");
    f.cachectl()
        .cwd(&dst)
        .args(["restore", "--json", "--store", &prefixed, "--key", "x"])
        .args(["--restore-key", "p"])
        .paths(["deps"])
        .run()
        .expect(0, "partial");
    assert_eq!(read(&dst.join("deps/a.txt")), "prefix a\n");
    // Without the prefix it is another store.
    f.restore("pre", &f.dir("dst2"))
        .paths(["deps"])
        .run()
        .expect(0, "miss");
}
