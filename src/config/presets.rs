//! Built-in cache presets (`preset = "npm"`): what each package manager caches, and its key.
//!
//! Every preset key is `<name>-{{ os }}-{{ arch }}[-{{ libc }}]-{{ hashFiles <lockfiles> }}`,
//! and its one restore-key is the same text without the digest. The digest is the full one
//! `cachectl hash-files <lockfiles>` prints, so a user can recompute any key by hand.
//!
//! `{{ libc }}` is in the key exactly when a cached path can hold code compiled on the machine
//! (node_modules with native addons, Python wheels built from sdists, vendor/bundle): a glibc
//! build crashes on Alpine and the other way round, and images of both kinds often share a
//! bucket. Caches of platform-independent files (jars, crate and Go module sources, PHP
//! packages) skip it, as does Go's build cache, whose entries embed the C toolchain's identity.
//!
//! Paths follow each tool's default location on Linux for the user running the build (root
//! on CodeBuild, so `~` is `/root`). No preset caches a virtualenv: a venv is not relocatable
//! (its scripts name its absolute path) and CodeBuild's source directory changes per build.
//! A path that does not exist at save time is skipped with a warning, so a preset may name
//! the two places a tool uses depending on version or setup.
//! Lockfile patterns name only files at the source root unless the tool's lockfiles really
//! are spread around, and then exclude build output and node_modules: a pattern that also
//! matched files the install or build step creates would give save a different key than
//! restore, and the cache would never hit.

/// One preset: the paths and lockfiles a package manager caches by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    pub name: &'static str,
    /// What gets cached (`~` is the home directory, the rest is relative to the source root).
    pub paths: &'static [&'static str],
    /// The hashFiles patterns of the key, in order (shown by `cachectl keys`).
    pub lockfiles: &'static [&'static str],
    /// The key template before the digest; also the restore-key.
    pub prefix: &'static str,
    /// The paths a restore merges into (see [`Preset::merge`]); the others it replaces.
    pub merge: &'static [&'static str],
}

impl Preset {
    /// The key template: the prefix, then the digest of the lockfiles.
    pub fn key(&self) -> String {
        let quoted: Vec<String> = self.lockfiles.iter().map(|p| format!("'{p}'")).collect();
        format!("{}{{{{ hashFiles {} }}}}", self.prefix, quoted.join(" "))
    }

    /// The restore-key templates: the key without its digest, so a lockfile change still
    /// restores the newest cache of the same platform and only installs the difference.
    pub fn restore_keys(&self) -> Vec<String> {
        vec![self.prefix.to_owned()]
    }

    pub fn paths(&self) -> Vec<String> {
        self.paths.iter().map(|p| (*p).to_owned()).collect()
    }

    /// The paths restored by merging. A tool's own download or build cache merges: its
    /// entries are keyed by content, so what the image or an earlier step put there is worth
    /// keeping and never wrong. An installed tree (`node_modules`, `vendor`) is replaced: it
    /// must be exactly the lockfile's tree, without packages a newer lockfile dropped.
    pub fn merge(&self) -> Vec<String> {
        self.merge.iter().map(|p| (*p).to_owned()).collect()
    }
}

/// The preset of that name.
pub fn get(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

/// All presets, in documentation order.
#[cfg(test)]
pub fn all() -> &'static [Preset] {
    PRESETS
}

/// Preset names, for messages.
pub fn names() -> Vec<&'static str> {
    PRESETS.iter().map(|p| p.name).collect()
}

const PRESETS: &[Preset] = &[
    // npm: `~/.npm` holds the content-addressed tarball cache, which makes `npm ci` offline.
    // `node_modules` is the installed tree: on an exact hit the install can be skipped.
    // (`npm ci` deletes node_modules first, so after a partial hit only ~/.npm helps it.)
    // npm-shrinkwrap.json replaces package-lock.json when present; hashing both patterns
    // gives the same digest as `hash-files package-lock.json` when only that one exists.
    // Only the root lockfile: node_modules/ contains packages' own package-lock.json files.
    Preset {
        name: "npm",
        paths: &["~/.npm", "node_modules"],
        lockfiles: &["package-lock.json", "npm-shrinkwrap.json"],
        prefix: "npm-{{ os }}-{{ arch }}-{{ libc }}-",
        merge: &["~/.npm"],
    },
    // yarn: the download cache is `~/.cache/yarn` for Yarn 1 and `~/.yarn/berry/cache` for
    // Yarn 2+ (the global cache, default since Yarn 4); one of the two is missing and skipped.
    // `node_modules` (Yarn 1, or `nodeLinker: node-modules`) lets `yarn install
    // --frozen-lockfile` finish in seconds. A project-local `.yarn/cache` is left out: with
    // zero-installs it is committed to git, and restoring it would only duplicate the checkout.
    Preset {
        name: "yarn",
        paths: &["~/.cache/yarn", "~/.yarn/berry/cache", "node_modules"],
        lockfiles: &["yarn.lock"],
        prefix: "yarn-{{ os }}-{{ arch }}-{{ libc }}-",
        merge: &["~/.cache/yarn", "~/.yarn/berry/cache"],
    },
    // pnpm: the content-addressed store (`$XDG_DATA_HOME/pnpm/store`; users who set
    // PNPM_HOME have it at `$PNPM_HOME/store` and should override `paths`), plus
    // `node_modules`, whose `.pnpm` directory links into the store: both in one archive keep
    // their hard links, and `pnpm install --frozen-lockfile` then only verifies.
    Preset {
        name: "pnpm",
        paths: &["~/.local/share/pnpm/store", "node_modules"],
        lockfiles: &["pnpm-lock.yaml"],
        prefix: "pnpm-{{ os }}-{{ arch }}-{{ libc }}-",
        merge: &["~/.local/share/pnpm/store"],
    },
    // pip: `~/.cache/pip` holds downloads and, more importantly, wheels pip built from
    // sdists (the slow part). pip installs into whatever interpreter runs it, so there is no
    // project-local tree to restore; to cache a virtualenv, keep it at a fixed absolute path
    // and add it to `paths`. Wheels built here are tagged `linux_<arch>` on glibc and musl
    // alike, so pip would take a glibc-built one on Alpine: libc is in the key. The
    // requirements files are those at the root and in a `requirements/` directory.
    Preset {
        name: "pip",
        paths: &["~/.cache/pip"],
        lockfiles: &["requirements*.txt", "requirements/*.txt"],
        prefix: "pip-{{ os }}-{{ arch }}-{{ libc }}-",
        merge: &["~/.cache/pip"],
    },
    // poetry: the HTTP cache and the artifacts cache (downloaded and built distributions)
    // under `~/.cache/pypoetry`, but not its `virtualenvs/` sibling: Poetry names each venv
    // after a hash of the project's path, which changes with every CodeBuild build, so cached
    // venvs would never be reused and would pile up in the archive. libc for built wheels.
    Preset {
        name: "poetry",
        paths: &["~/.cache/pypoetry/cache", "~/.cache/pypoetry/artifacts"],
        lockfiles: &["poetry.lock"],
        prefix: "poetry-{{ os }}-{{ arch }}-{{ libc }}-",
        merge: &["~/.cache/pypoetry/cache", "~/.cache/pypoetry/artifacts"],
    },
    // uv: `~/.cache/uv` (downloaded wheels, wheels built from sdists, unpacked archives).
    // Not `.venv`: a venv is not relocatable and CodeBuild's source directory changes per
    // build; `uv sync` rebuilds it from a warm cache in seconds (set UV_LINK_MODE=copy when
    // the cache and the project are on different filesystems). `uv cache prune --ci` before
    // `cachectl save` drops downloaded wheels, keeping only the ones built here. libc for those.
    Preset {
        name: "uv",
        paths: &["~/.cache/uv"],
        lockfiles: &["uv.lock"],
        prefix: "uv-{{ os }}-{{ arch }}-{{ libc }}-",
        merge: &["~/.cache/uv"],
    },
    // cargo: the registry index, the downloaded .crate files and git checkouts' databases,
    // the set the Cargo book recommends for CI; registry/src is re-extracted from the .crate
    // files faster than it downloads. `target/` is left out: it is build output that depends
    // on the sources, not only on Cargo.lock, and grows without bound under one key.
    Preset {
        name: "cargo",
        paths: &[
            "~/.cargo/registry/index",
            "~/.cargo/registry/cache",
            "~/.cargo/git/db",
        ],
        lockfiles: &["Cargo.lock"],
        prefix: "cargo-{{ os }}-{{ arch }}-",
        merge: &[
            "~/.cargo/registry/index",
            "~/.cargo/registry/cache",
            "~/.cargo/git/db",
        ],
    },
    // go: the module cache is `$GOPATH/pkg/mod`; GOPATH is `~/go` by default but `/go` on
    // the CodeBuild standard images, so both are listed (the missing one is skipped). The
    // build cache `~/.cache/go-build` holds the compiled dependencies, which change only
    // with go.sum, so keying it by go.sum fits; its entries are keyed by content and
    // toolchain inside, so stale ones are ignored, never wrong. (The project's own packages
    // in it go stale until go.sum changes: key a separate cache on '**/*.go' for those.)
    Preset {
        name: "go",
        paths: &["~/go/pkg/mod", "/go/pkg/mod", "~/.cache/go-build"],
        lockfiles: &["go.sum"],
        prefix: "go-{{ os }}-{{ arch }}-",
        merge: &["~/go/pkg/mod", "/go/pkg/mod", "~/.cache/go-build"],
    },
    // maven: the local repository `~/.m2/repository`. Maven has no lockfile, so the key
    // hashes every pom.xml; target/ is excluded because packaging copies the pom into
    // target/classes/META-INF/maven/, which would change the key between restore and save.
    Preset {
        name: "maven",
        paths: &["~/.m2/repository"],
        lockfiles: &["**/pom.xml", "!**/target/**", "!**/node_modules/**"],
        prefix: "maven-{{ os }}-{{ arch }}-",
        merge: &["~/.m2/repository"],
    },
    // gradle: `~/.gradle/caches` (dependencies, transformed jars, compiled build scripts)
    // and `~/.gradle/wrapper` (the Gradle distribution `gradlew` downloads). The key hashes
    // build scripts, version catalogs, wrapper properties and lockfiles wherever they are,
    // except under build/ and .gradle/ (Gradle writes extracted `*.gradle.kts` there) and
    // node_modules/ (React Native packages ship build.gradle files). Stop the daemon
    // (`./gradlew --stop`) before saving so no cache file is archived mid-write.
    Preset {
        name: "gradle",
        paths: &["~/.gradle/caches", "~/.gradle/wrapper"],
        lockfiles: &[
            "**/*.gradle*",
            "**/gradle-wrapper.properties",
            "**/gradle.lockfile",
            "gradle/*.versions.toml",
            "!**/build/**",
            "!**/.gradle/**",
            "!**/node_modules/**",
        ],
        prefix: "gradle-{{ os }}-{{ arch }}-",
        merge: &["~/.gradle/caches", "~/.gradle/wrapper"],
    },
    // bundler: `vendor/bundle`, the installed gems including compiled extensions, which
    // makes `bundle install` a no-op. It requires `BUNDLE_PATH=vendor/bundle` (or `bundle
    // config set --local path vendor/bundle`); Bundler's default installs into the Ruby's own
    // gem directory, outside anything a cache should overwrite. Gems are kept per Ruby ABI
    // (vendor/bundle/ruby/3.3.0/), so Ruby upgrades coexist; libc is in the key.
    Preset {
        name: "bundler",
        paths: &["vendor/bundle"],
        lockfiles: &["Gemfile.lock", "gems.locked"],
        prefix: "bundler-{{ os }}-{{ arch }}-{{ libc }}-",
        merge: &[],
    },
    // composer: the download cache `~/.cache/composer` (Composer's XDG location, used
    // whenever /etc/xdg exists, as on the CodeBuild images; set `paths` for COMPOSER_HOME or
    // COMPOSER_CACHE_DIR setups) and `vendor`, which turns `composer install` into a check.
    // vendor/ is PHP source only, so no libc in the key.
    Preset {
        name: "composer",
        paths: &["~/.cache/composer", "vendor"],
        lockfiles: &["composer.lock"],
        prefix: "composer-{{ os }}-{{ arch }}-",
        merge: &["~/.cache/composer"],
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::template::{self, Part, TemplateContext};
    use crate::hash;
    use proptest::prelude::*;
    use std::fs;
    use std::path::Path;

    /// A file each preset's lockfile patterns select (a test must name one for every preset).
    fn sample_lockfile(preset: &str) -> &'static str {
        match preset {
            "npm" => "package-lock.json",
            "yarn" => "yarn.lock",
            "pnpm" => "pnpm-lock.yaml",
            "pip" => "requirements.txt",
            "poetry" => "poetry.lock",
            "uv" => "uv.lock",
            "cargo" => "Cargo.lock",
            "go" => "go.sum",
            "maven" => "pom.xml",
            "gradle" => "app/build.gradle.kts",
            "bundler" => "Gemfile.lock",
            "composer" => "composer.lock",
            other => panic!("no sample lockfile for preset {other}; add one"),
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn ctx(cwd: &Path) -> TemplateContext<'_> {
        TemplateContext {
            cwd,
            env: &no_env,
            os: "testos".into(),
            arch: "testarch".into(),
            libc: "testlibc".into(),
        }
    }

    fn dir_with(rel: &str, contents: &[u8]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, contents).unwrap();
        dir
    }

    #[test]
    fn the_issue_lists_every_preset() {
        let want = [
            "npm", "yarn", "pnpm", "pip", "poetry", "uv", "cargo", "go", "maven", "gradle",
            "bundler", "composer",
        ];
        assert_eq!(names(), want);
    }

    #[test]
    fn every_preset_resolves_with_its_lockfile() {
        for p in all() {
            let name = p.name;
            let dir = dir_with(sample_lockfile(name), b"lock contents\n");
            let digest = hash::hash_patterns(dir.path(), p.lockfiles).unwrap();
            // Through the whole config path: a cache naming only the preset.
            let text = format!("[cache.c]\npreset = \"{name}\"\n");
            let spec = &crate::config::parse(&text, "t.toml").unwrap().caches[0];
            let got = crate::config::resolve(spec, &ctx(dir.path()))
                .unwrap_or_else(|e| panic!("preset {name}: {e}"));
            let key = got.key.as_str();
            assert!(key.starts_with(&format!("{name}-")), "preset {name}: {key}");
            for part in ["testos", "testarch", &digest] {
                assert!(key.contains(part), "preset {name}: {key} lacks {part}");
            }
            assert!(key.ends_with(&digest), "preset {name}: {key}");
            assert_eq!(got.restore_keys.len(), 1, "preset {name}");
            let first = got.restore_keys[0].as_str();
            assert!(key.starts_with(first), "preset {name}: {first} / {key}");
            assert_eq!(got.paths, p.paths(), "preset {name}");
            assert!(
                !p.paths.is_empty() && !p.lockfiles.is_empty(),
                "preset {name}"
            );
        }
    }

    #[test]
    fn libc_exactly_where_compiled_code_is_cached() {
        let with_libc = ["npm", "yarn", "pnpm", "pip", "poetry", "uv", "bundler"];
        for p in all() {
            let has = template::parse(p.prefix)
                .unwrap()
                .parts()
                .any(|part| *part == Part::Libc);
            assert_eq!(has, with_libc.contains(&p.name), "preset {}", p.name);
        }
    }

    #[test]
    fn key_digest_is_the_hash_files_digest_of_the_patterns() {
        // The key's only hashFiles carries exactly the preset's lockfile list.
        for p in all() {
            let t = template::parse(&p.key()).unwrap();
            let hashes: Vec<&Part> = t
                .parts()
                .filter(|part| matches!(part, Part::HashFiles(_)))
                .collect();
            let want: Vec<String> = p.lockfiles.iter().map(|s| s.to_string()).collect();
            assert_eq!(hashes, vec![&Part::HashFiles(want)], "preset {}", p.name);
            assert_eq!(template::prefix_before_hash(&p.key()), p.prefix);
        }
    }

    #[test]
    fn lockfile_patterns_ignore_generated_files() {
        // (preset, files made by install/build that must not change the key)
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "npm",
                "package-lock.json",
                &["node_modules/x/package-lock.json"],
            ),
            (
                "maven",
                "pom.xml",
                &["target/classes/META-INF/maven/g/a/pom.xml"],
            ),
            (
                "gradle",
                "build.gradle",
                &[
                    "buildSrc/build/kotlin-dsl/plugins-blocks/extracted/a.gradle.kts",
                    ".gradle/8.5/x.gradle",
                    "node_modules/react-native/ReactAndroid/build.gradle",
                ],
            ),
        ];
        for (name, lockfile, generated) in cases {
            let p = get(name).unwrap();
            let dir = dir_with(lockfile, b"deps");
            let before = hash::hash_patterns(dir.path(), p.lockfiles).unwrap();
            for g in *generated {
                let path = dir.path().join(g);
                fs::create_dir_all(path.parent().unwrap()).unwrap();
                fs::write(path, b"generated").unwrap();
            }
            let after = hash::hash_patterns(dir.path(), p.lockfiles).unwrap();
            assert_eq!(before, after, "preset {name}");
        }
    }

    #[test]
    fn missing_lockfile_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        for p in all() {
            let err = template::parse(&p.key())
                .unwrap()
                .expand(&ctx(dir.path()))
                .unwrap_err();
            assert!(
                err.problem.to_string().contains("no file matches"),
                "preset {}",
                p.name
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn restore_keys_are_prefixes_of_keys(contents in proptest::collection::vec(any::<u8>(), 0..512)) {
            for p in all() {
                let dir = dir_with(sample_lockfile(p.name), &contents);
                let c = ctx(dir.path());
                let key = template::parse(&p.key()).unwrap().expand(&c).unwrap();
                for r in p.restore_keys() {
                    let r = template::parse(&r).unwrap().expand(&c).unwrap();
                    prop_assert!(key.starts_with(&r), "preset {}: {} / {}", p.name, r, key);
                    prop_assert!(key.len() > r.len());
                }
            }
        }
    }
}
