//! `cachectl save`: decide per cache whether to save (policy, an exact hit, the key resolved at
//! restore time), then [`transfer::save_tree`]; store trouble is a warning and outcome `error`
//! (exit 0 unless `--strict`).

use super::jobs::{self, Job};
use super::{Error, ExitStatus};
use crate::cli::{GlobalArgs, SaveArgs};
use crate::config::When;
use crate::error::{chain, Hint};
use crate::key::{CacheKey, EntryName, Scope};
use crate::outcome::{RestoreOutcome, SaveOutcome, SaveReport};
use crate::progress::Progress;
use crate::sign::SigningKey;
use crate::store::{EntryMeta, Store};
use crate::transfer::{self, SaveRequest, SaveResult};
use crate::units::{human_bytes, rate, thousands};
use crate::{metrics, output, state, timings};
use std::sync::Arc;
use std::time::Instant;

pub async fn run(g: &GlobalArgs, args: SaveArgs) -> Result<ExitStatus, Error> {
    let started = Instant::now();
    let (cwd, _) = super::anchors();
    let (key, paths, config, caches) = (
        args.key.clone(),
        args.paths.clone(),
        g.config.clone(),
        args.select.caches.clone(),
    );
    let (plan, recorded) = super::blocking(move || {
        let plan = jobs::plan(key.as_ref(), &paths, &[], config.as_deref(), &caches, &cwd)?;
        Ok::<_, Error>((plan, state::load(&state::path(&cwd))))
    })
    .await?;
    let metrics = super::start_metrics(&args.metrics, plan.metrics.as_ref());
    let (scope, why) = super::build_scope(&plan.trust, &args.transfer)?;
    let trust = Trust {
        signer: signer(&scope, &why),
        untrusted_save: plan.trust.untrusted_save,
        signed_here: plan.trust.signed_scopes(&scope).contains(&scope),
        public_keys: plan.trust.public_keys.clone(),
        scope,
        why,
    };
    let reports = match super::open_store(g.store.as_deref()).await {
        Ok(store) => {
            // Only a restore of this cache from this cachectl.toml and directory: another
            // package's restore of a cache of the same name recorded another key.
            let (cwd, _) = super::anchors();
            let config_file = super::jobs::config_file(g.config.as_deref(), &cwd);
            let runs = plan.jobs.iter().map(|job| {
                let restored = recorded
                    .caches
                    .get(&job.name)
                    .filter(|r| r.for_here(Some(&config_file), &cwd));
                save_one(Arc::clone(&store), job, restored, &trust, &args)
            });
            futures_util::future::join_all(runs).await
        }
        Err(e) => plan
            .jobs
            .iter()
            .map(|job| failed_report(job, &Error::from(e.clone()), String::new(), &trust, 0.0))
            .collect(),
    };
    if let Some(line) = timings::line(
        started.elapsed(),
        &[
            &timings::WALK_READ,
            &timings::COMPRESS,
            &timings::HASH,
            &timings::UPLOAD_WAIT,
        ],
    ) {
        output::diagnostic(&line);
    }
    let mut events: Vec<_> = plan
        .jobs
        .iter()
        .zip(&reports)
        .filter(|(_, r)| r.outcome == SaveOutcome::Saved)
        .map(|(job, r)| metrics::Event::Save {
            cache: job.name.clone(),
            seconds: r.seconds,
            bytes: r.bytes,
        })
        .collect();
    // Install times `cachectl run` could not publish (CloudWatch unreachable then) go now.
    let pending = recorded.pending.clone();
    events.extend(pending.iter().map(|p| metrics::Event::Install {
        cache: p.cache.clone(),
        restore: p.restore,
        seconds: p.seconds,
    }));
    if super::finish_metrics(metrics, &events).await && !pending.is_empty() {
        let path = state::path(&super::anchors().0);
        let _ = super::blocking(move || state::sent(&path, &pending)).await;
    }
    if g.json {
        let worst = SaveOutcome::worst(reports.iter().map(|r| r.outcome));
        output::reports(&reports, worst.as_str())?;
    }
    let errored = reports.iter().any(|r| r.outcome == SaveOutcome::Error);
    Ok(if errored && args.transfer.strict {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

/// Where a save writes and how it signs.
struct Trust {
    /// The build's scope, and what decided it.
    scope: Scope,
    why: String,
    /// The key from `CACHECTL_SIGNING_KEY` (a trusted build's), or why it cannot be used.
    signer: Result<Option<Arc<SigningKey>>, crate::sign::Error>,
    untrusted_save: bool,
    /// `[trust] require-signature` covers this build's own scope, and the keys it accepts:
    /// an entry restores would refuse is not saved.
    signed_here: bool,
    public_keys: Vec<crate::sign::PublicKey>,
}

/// The signing key a trusted build signs with. An untrusted build never signs: a key given to
/// it is one the pull request's code can read, which is worth a warning.
fn signer(scope: &Scope, why: &str) -> Result<Option<Arc<SigningKey>>, crate::sign::Error> {
    let Some(text) = std::env::var(crate::env::SIGNING_KEY)
        .ok()
        .filter(|v| !v.trim().is_empty())
    else {
        return Ok(None);
    };
    if !scope.is_trusted() {
        output::warn(
            "save",
            &format!(
                "{} is set in an untrusted build ({why}); its entries are not signed",
                crate::env::SIGNING_KEY
            ),
            Some("code from a pull request can read that key: give it to trusted projects only, and replace it"),
        );
        return Ok(None);
    }
    SigningKey::from_pem(&text).map(|k| Some(Arc::new(k)))
}

/// Fail-open: the warning line, and the report saying `error` with the cause and its fix.
fn failed_report(job: &Job, e: &Error, store: String, trust: &Trust, seconds: f64) -> SaveReport {
    output::warn_error(&format!("save {} failed, nothing was cached", job.name), e);
    SaveReport {
        seconds,
        reason: Some(chain(e)),
        hint: e.hint(),
        scope: trust.scope.to_string(),
        ..SaveReport::new(&job.name, job.key.as_str(), store)
    }
}

/// Whether the save policy lets this build save: `CODEBUILD_BUILD_SUCCEEDING` is `1` (or unset,
/// outside CodeBuild) while the build is succeeding, `0` once a phase failed.
fn policy_allows(when: When) -> Result<(), String> {
    let succeeding = std::env::var(crate::env::CODEBUILD_BUILD_SUCCEEDING)
        .map(|v| v.trim() != "0")
        .unwrap_or(true);
    match (when, succeeding) {
        (When::Always, _) | (When::Success, true) | (When::Failure, false) => Ok(()),
        (When::Success, false) => {
            Err("the build is failing (CODEBUILD_BUILD_SUCCEEDING=0) and when = success".into())
        }
        (When::Failure, true) => Err("the build is succeeding and when = failure".into()),
    }
}

async fn save_one(
    store: Arc<dyn Store>,
    job: &Job,
    restored: Option<&state::Recorded>,
    trust: &Trust,
    args: &SaveArgs,
) -> SaveReport {
    let started = Instant::now();
    // The key resolved at restore time wins: a build that rewrote its lockfile must not move the
    // cache to a key the next build (with the committed lockfile) would never look up.
    let restored = restored.filter(|r| !job.explicit && r.paths == job.paths.paths());
    let key = match restored.map(|r| CacheKey::new(&r.key)) {
        Some(Ok(k)) => k,
        _ => job.key.clone(),
    };
    let job = Job { key, ..job.clone() };
    let mut report = SaveReport::new(&job.name, job.key.as_str(), store.describe());
    report.scope = trust.scope.to_string();
    let when = args.when.or(job.when).unwrap_or(When::Success);
    let result = if !trust.scope.is_trusted() && !trust.untrusted_save {
        report.outcome = SaveOutcome::Skipped;
        report.reason = Some(format!(
            "untrusted build ({}) and [trust] untrusted-save = false",
            trust.why
        ));
        Ok(())
    } else if !trust.scope.is_trusted() && trust.signed_here {
        report.outcome = SaveOutcome::Skipped;
        report.reason = Some(format!(
            "untrusted build ({}): [trust] require-signature = \"all\" wants its entries signed and untrusted builds never sign, so its restores would refuse them",
            trust.why
        ));
        Ok(())
    } else if let Err(why) = policy_allows(when) {
        report.outcome = SaveOutcome::Skipped;
        report.reason = Some(why);
        Ok(())
    } else if restored.is_some_and(|r| {
        r.outcome == RestoreOutcome::Hit && r.matched_key.as_deref() == Some(job.key.as_str())
    }) && !args.overwrite
    {
        report.outcome = SaveOutcome::Skipped;
        report.reason = Some("unchanged: this build restored the same key (exact hit)".into());
        Ok(())
    } else {
        // The restore refused what is stored under this key: replace it rather than skip an
        // existing key (a trusted build with the signing key heals a planted entry this way).
        let replace = restored.is_some_and(|r| r.refused_exact && r.key == job.key.as_str());
        save(store, &job, trust, args, replace, &mut report).await
    };
    report.seconds = started.elapsed().as_secs_f64();
    let name = &job.name;
    match result {
        Ok(()) => {
            output::say(&match report.outcome {
                SaveOutcome::Saved => format!(
                    "save {name}: saved {} {}, {} files in {:.1} s ({})",
                    job.key,
                    human_bytes(report.bytes),
                    thousands(report.files),
                    report.seconds,
                    rate(report.bytes, started.elapsed()),
                ),
                _ => format!(
                    "save {name}: skipped {}, {}",
                    job.key,
                    report.reason.as_deref().unwrap_or("nothing to do")
                ),
            });
            report
        }
        Err(e) => failed_report(&job, &e, report.store, trust, report.seconds),
    }
}

async fn save(
    store: Arc<dyn Store>,
    job: &Job,
    trust: &Trust,
    args: &SaveArgs,
    replace: bool,
    report: &mut SaveReport,
) -> Result<(), Error> {
    let set = &job.paths;
    let signer = trust.signer.clone()?;
    if trust.signed_here {
        match &signer {
            None => return Err(crate::sign::Error::NoSigningKey.into()),
            Some(k) if !trust.public_keys.contains(&k.public_key()) => {
                return Err(crate::sign::Error::KeyNotListed(k.public_key().to_string()).into())
            }
            Some(_) => {}
        }
    }
    if !trust.scope.is_trusted() && !args.overwrite {
        // Restores in this scope fall back to the trusted entry: a copy here adds nothing.
        let trusted = EntryName::new(&Scope::Trusted, set, &job.key);
        let timeout = args.transfer.lookup_timeout;
        if let Ok(Ok(Some(_))) = tokio::time::timeout(timeout, store.head(&trusted)).await {
            report.outcome = SaveOutcome::Skipped;
            report.reason = Some(format!(
                "the trusted scope has this key; restores in scope {} use it",
                trust.scope
            ));
            return Ok(());
        }
    }
    let signs = signer.is_some();
    let (cwd, home) = super::anchors();
    let request = SaveRequest {
        name: EntryName::new(&trust.scope, set, &job.key),
        signer,
        meta: EntryMeta {
            format: crate::key::FORMAT_VERSION,
            key: job.key.to_string(),
            paths: set.paths().to_vec(),
            family: job.family.clone(),
            created: crate::time::now_rfc3339(),
            cachectl: env!("CARGO_PKG_VERSION").to_owned(),
        },
        roots: set.resolve(&cwd, home.as_deref())?,
        exclude: Vec::new(),
    };
    let base = super::transfer_options(&args.transfer);
    let opts = transfer::Options {
        level: args.level.or(job.level).unwrap_or(base.level),
        overwrite: args.overwrite || replace,
        ..base
    };
    let progress = Progress::new(format!("save {}", job.name), 0);
    let saved = transfer::save_tree(store, request, &opts, progress.clone()).await;
    progress.finish();
    let saved = saved?;
    let missing: Vec<&str> = saved
        .missing
        .iter()
        .map(|&i| set.paths()[i].as_str())
        .collect();
    if !matches!(saved.result, SaveResult::NothingToSave) {
        for m in &missing {
            output::warn(
                "save",
                &format!("{m} does not exist; saving the other paths"),
                None,
            );
        }
    }
    let packed = match saved.result {
        SaveResult::NothingToSave => {
            report.outcome = SaveOutcome::Skipped;
            report.reason = Some(format!(
                "nothing to save: {} does not exist",
                missing.join(", ")
            ));
            return Ok(());
        }
        SaveResult::Exists => {
            report.outcome = SaveOutcome::Skipped;
            report.reason =
                Some("key already exists; keys are immutable (--overwrite replaces it)".into());
            return Ok(());
        }
        SaveResult::Created(packed) => {
            report.outcome = SaveOutcome::Saved;
            report.signed = signs;
            if replace && !args.overwrite {
                report.reason = Some("replaced the entry this build's restore refused".into());
            }
            report.bytes = packed.bytes;
            packed
        }
        SaveResult::LostRace(packed) => {
            report.outcome = SaveOutcome::Skipped;
            report.reason = Some("another save created this key first; keys are immutable".into());
            packed
        }
    };
    if !packed.stats.own_left_out.is_empty() {
        output::warn(
            "save",
            &format!(
                "left out cachectl's own files: {}",
                packed.stats.own_left_out.join(", ")
            ),
            Some("the store and cachectl's staging and state files are never cached"),
        );
    }
    report.files = packed.stats.entries;
    report.unpacked_bytes = packed.stats.file_bytes;
    if packed.stats.skipped_special > 0 {
        output::warn(
            "save",
            &left_out(set.paths(), &packed.stats),
            Some("tar cannot restore sockets, FIFOs or devices; the program that made them will again"),
        );
    }
    Ok(())
}

/// `left out 7 sockets, FIFOs or devices: deps/run.sock (socket), deps/q (FIFO), … and 2 more`:
/// the first few by the path the user gave, the rest counted.
fn left_out(paths: &[String], stats: &crate::archive::pack::PackStats) -> String {
    let n = stats.skipped_special;
    let named: Vec<String> = stats
        .skipped_examples
        .iter()
        .map(|(i, rel, what)| {
            let path = std::path::Path::new(&paths[*i]);
            let path = if rel.as_os_str().is_empty() {
                path.to_path_buf()
            } else {
                path.join(rel)
            };
            format!("{} ({what})", path.display())
        })
        .collect();
    let more = n - named.len() as u64;
    format!(
        "left out {}: {}{}",
        crate::units::count(n, "socket, FIFO or device", "sockets, FIFOs or devices"),
        named.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    )
}
