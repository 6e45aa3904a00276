//! `cachectl prune`: scan the store, plan with [`crate::prune::plan`], delete in batches, and
//! clean up after interrupted saves and old use records. `--dry-run` stops after the plan.

use super::Failure;
use crate::cli::PruneArgs;
use crate::config;
use crate::error::{chain, code};
use crate::inventory::{self, Inventory, Record};
use crate::metrics::{Event, Metrics};
use crate::output::{self, human_age, human_bytes, say, thousands};
use crate::progress::{verbosity, Verbosity};
use crate::prune::{self, Plan, Protection, Reason, Rules, Verdict};
use crate::store::{Removal, Store};
use crate::time::rfc3339;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

pub async fn run(args: PruneArgs) -> ExitCode {
    super::set_verbosity(&args.report);
    let (cwd, _) = super::anchors();
    let (file_rules, metrics_config) = match read_config(args.config.as_deref(), &cwd) {
        Ok(found) => found,
        Err(f) => return super::fail(&f),
    };
    let rules = file_rules.overridden_by(&Rules {
        max_age: args.max_age,
        max_unused: args.max_unused,
        keep_last: args.keep_last,
        max_total_size: args.max_total_size,
        min_age: args.min_age,
    });
    if !rules.deletes_anything() {
        return super::fail_with(
            &Failure {
                cause: "prune has no rule that deletes anything".into(),
                hint: Some("pass --max-age, --max-unused or --max-total-size, or set them under [prune] in cachectl.toml".into()),
            },
            code::USAGE,
        );
    }
    let as_of = args.as_of.unwrap_or_else(crate::time::now);
    let metrics = (!args.dry_run && !args.report.no_metrics && metrics_config.enabled).then(|| {
        let namespace = args
            .report
            .metrics_namespace
            .clone()
            .unwrap_or(metrics_config.namespace);
        tokio::spawn(Metrics::new(namespace))
    });
    let store = match super::open_store(args.store.store.as_deref()).await {
        Ok(s) => s,
        Err(f) => return super::fail(&f),
    };
    let t = Instant::now();
    let inv = match Inventory::load(store.as_ref(), "").await {
        Ok(inv) => inv,
        Err(e) => return super::fail(&e.into()),
    };
    let scan_seconds = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let plan = prune::plan(&inv.records, &rules, as_of);
    let work = Work::new(&inv, &plan, &rules, as_of);
    let plan_seconds = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let results = if args.dry_run {
        Vec::new()
    } else {
        inventory::remove_all(store.as_ref(), &work.removals).await
    };
    let delete_seconds = t.elapsed().as_secs_f64();
    let mut report = Report::build(
        &args,
        &rules,
        as_of,
        store.as_ref(),
        &inv,
        &plan,
        &work,
        &results,
    );
    // Wall time per stage, for BENCHMARKS.md and for spotting a slow store.
    report.json["seconds"] = json!({
        "scan": scan_seconds,
        "plan": plan_seconds,
        "delete": delete_seconds,
    });
    report.print_lines(&args, &inv, &plan, &rules, as_of, &work, &results);
    report.print_summary(&args);
    if let Some(m) = metrics {
        let event = Event::Prune {
            store: store.describe(),
            entries: report.deleted as u64,
            bytes: report.bytes_freed,
            store_entries: report.entries_after as u64,
            store_bytes: report.bytes_after,
        };
        super::finish_metrics(Some(m), &[event]).await;
    }
    ExitCode::from(if report.failed == 0 {
        code::OK
    } else {
        code::FAILED
    })
}

/// `[prune]` and `[metrics]` from `--config`, else `./cachectl.toml` when there is one.
fn read_config(
    explicit: Option<&Path>,
    cwd: &Path,
) -> Result<(Rules, config::MetricsConfig), Failure> {
    let path = explicit.map_or_else(|| cwd.join("cachectl.toml"), Path::to_path_buf);
    let cfg = match config::load(&path) {
        Ok(c) => c,
        Err(config::Error::NotFound { .. }) if explicit.is_none() => return Ok(Default::default()),
        Err(e) => return Err(e.into()),
    };
    let rules = match &cfg.prune {
        Some(t) => prune::rules_from_table(t, &path.display().to_string()).map_err(|cause| {
            Failure {
                cause,
                hint: Some("durations look like 30m, 12h, 7d; sizes like 500MiB or 10GiB; keep-last is a number".into()),
            }
        })?,
        None => Rules::default(),
    };
    Ok((rules, cfg.metrics))
}

/// Every removal the plan needs, and which of them delete entries.
struct Work<'a> {
    removals: Vec<Removal>,
    /// (record index, index of its `Removal::Entry`) for each entry to delete.
    entries: Vec<(usize, usize)>,
    leftovers: Vec<&'a crate::store::Leftover>,
    uses: usize,
}

impl<'a> Work<'a> {
    fn new(inv: &'a Inventory, plan: &Plan, rules: &Rules, as_of: SystemTime) -> Self {
        let cutoff = as_of
            .checked_sub(rules.min_age())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut removals = Vec::new();
        let mut entries = Vec::new();
        for (i, v) in plan.verdicts.iter().enumerate() {
            if let Verdict::Delete(_) = v {
                entries.push((i, removals.len()));
                removals.extend(inv.removals_for(&inv.records[i].name));
            }
        }
        // Older use records of live entries are never needed; those of vanished entries only
        // once no restore can still be writing them.
        let uses_before = removals.len();
        removals.extend(inv.stale_uses.iter().cloned().map(Removal::Use));
        removals.extend(
            inv.orphan_uses
                .iter()
                .filter(|u| u.latest() < cutoff)
                .cloned()
                .map(Removal::Use),
        );
        let uses = removals.len() - uses_before;
        let leftovers: Vec<_> = inv.leftovers.iter().filter(|l| l.since < cutoff).collect();
        removals.extend(leftovers.iter().map(|l| Removal::Leftover((*l).clone())));
        Work {
            removals,
            entries,
            leftovers,
            uses,
        }
    }
}

#[derive(Debug, Default)]
struct Report {
    json: serde_json::Value,
    scanned: usize,
    scanned_bytes: u64,
    deleted: usize,
    by_reason: BTreeMap<&'static str, usize>,
    bytes_freed: u64,
    kept: usize,
    protected: BTreeMap<&'static str, usize>,
    entries_after: usize,
    bytes_after: u64,
    over_budget: u64,
    leftovers: usize,
    uses: usize,
    failed: usize,
    dry_run: bool,
    store: String,
}

fn protection_str(p: Protection) -> &'static str {
    match p {
        Protection::MinAge => "min-age",
        Protection::KeepLast => "keep-last",
    }
}

/// `14d`, `12h`, `30m`, `90s`: the largest whole unit.
fn compact(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0s".into(),
        s if s % 86400 == 0 => format!("{}d", s / 86400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

fn why(r: &Record, reason: Reason, rules: &Rules, as_of: SystemTime) -> String {
    let ago = |t: SystemTime| human_age(as_of.duration_since(t).unwrap_or_default());
    let used = match r.used {
        Some(u) => format!("last used {} ago", ago(u)),
        None => "never restored".to_owned(),
    };
    match reason {
        Reason::MaxAge => format!(
            "created {} ago, over max-age {}",
            ago(r.created),
            compact(rules.max_age.unwrap_or_default())
        ),
        Reason::MaxUnused => format!(
            "{used} (created {} ago), over max-unused {}",
            ago(r.created),
            compact(rules.max_unused.unwrap_or_default())
        ),
        Reason::MaxTotalSize => format!(
            "least recently used ({used}) while the store is over max-total-size {}",
            human_bytes(rules.max_total_size.unwrap_or_default())
        ),
    }
}

impl Report {
    #[allow(clippy::too_many_arguments)]
    fn build(
        args: &PruneArgs,
        rules: &Rules,
        as_of: SystemTime,
        store: &dyn Store,
        inv: &Inventory,
        plan: &Plan,
        work: &Work<'_>,
        results: &[Result<(), crate::store::Error>],
    ) -> Report {
        let mut r = Report {
            scanned: inv.records.len(),
            scanned_bytes: inv.total_bytes(),
            dry_run: args.dry_run,
            store: store.describe(),
            over_budget: plan.over_budget,
            ..Report::default()
        };
        let failed_at = |slot: usize| results.get(slot).and_then(|res| res.as_ref().err());
        let mut entries = Vec::new();
        for &(i, slot) in &work.entries {
            let rec = &inv.records[i];
            let Verdict::Delete(reason) = plan.verdicts[i] else {
                unreachable!("work lists only deletions")
            };
            let mut j = super::ls::record_json(rec);
            j["reason"] = json!(reason.as_str());
            j["why"] = json!(why(rec, reason, rules, as_of));
            match failed_at(slot) {
                Some(e) => {
                    r.failed += 1;
                    j["error"] = json!(chain(e));
                }
                None => {
                    r.deleted += 1;
                    r.bytes_freed += rec.size;
                    *r.by_reason.entry(reason.as_str()).or_default() += 1;
                }
            }
            entries.push(j);
        }
        for v in &plan.verdicts {
            if let Verdict::Protected(p) = v {
                *r.protected.entry(protection_str(*p)).or_default() += 1;
            }
            if !matches!(v, Verdict::Delete(_)) {
                r.kept += 1;
            }
        }
        // An entry that failed to delete is still in the store.
        let failed_bytes: u64 = work
            .entries
            .iter()
            .filter(|(_, slot)| failed_at(*slot).is_some())
            .map(|(i, _)| inv.records[*i].size)
            .sum();
        r.entries_after = plan.entries_after + r.failed;
        r.bytes_after = plan.bytes_after + failed_bytes;
        let housekeeping_failures = work
            .removals
            .iter()
            .enumerate()
            .filter(|(slot, rm)| !matches!(rm, Removal::Entry(_)) && failed_at(*slot).is_some())
            .count();
        r.failed += housekeeping_failures;
        r.leftovers = work.leftovers.len();
        r.uses = work.uses;
        let leftovers: Vec<_> = work
            .leftovers
            .iter()
            .map(|l| json!({ "what": l.what, "since": rfc3339(l.since) }))
            .collect();
        r.json = json!({
            "store": r.store,
            "dry_run": args.dry_run,
            "as_of": rfc3339(as_of),
            "outcome": if r.failed == 0 { "ok" } else { "error" },
            "rules": {
                "max_age": rules.max_age.map(compact),
                "max_unused": rules.max_unused.map(compact),
                "keep_last": rules.keep_last,
                "max_total_size": rules.max_total_size,
                "min_age": compact(rules.min_age()),
            },
            "scanned": r.scanned,
            "scanned_bytes": r.scanned_bytes,
            "deleted": if args.dry_run { work.entries.len() } else { r.deleted },
            "deleted_by_reason": r.planned_by_reason(plan),
            "bytes_freed": if args.dry_run { plan_bytes(inv, work) } else { r.bytes_freed },
            "kept": r.kept,
            "protected": r.protected,
            "store_entries_after": r.entries_after,
            "store_bytes_after": r.bytes_after,
            "over_budget_bytes": r.over_budget,
            "leftovers_removed": r.leftovers,
            "leftovers": leftovers,
            "use_records_removed": work.uses,
            "failed": r.failed,
            "entries": entries,
        });
        r
    }

    fn planned_by_reason(&self, plan: &Plan) -> BTreeMap<&'static str, usize> {
        if !self.dry_run {
            return self.by_reason.clone();
        }
        let mut m = BTreeMap::new();
        for v in &plan.verdicts {
            if let Verdict::Delete(reason) = v {
                *m.entry(reason.as_str()).or_default() += 1;
            }
        }
        m
    }

    /// One line per deleted entry (with --verbose, or always for --dry-run), and errors.
    #[allow(clippy::too_many_arguments)]
    fn print_lines(
        &self,
        args: &PruneArgs,
        inv: &Inventory,
        plan: &Plan,
        rules: &Rules,
        as_of: SystemTime,
        work: &Work<'_>,
        results: &[Result<(), crate::store::Error>],
    ) {
        let each = args.dry_run || verbosity() == Verbosity::Verbose;
        let verb = if args.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        for &(i, slot) in &work.entries {
            let rec = &inv.records[i];
            let Verdict::Delete(reason) = plan.verdicts[i] else {
                continue;
            };
            match results.get(slot) {
                Some(Err(e)) => eprintln!(
                    "error: delete {}: {}",
                    rec.name.key,
                    Failure::of(e).message()
                ),
                _ if each && !args.json => say(&format!(
                    "{verb} {} [{}] {}: {}",
                    rec.name.key,
                    if rec.paths.is_empty() {
                        rec.name.pathset.clone()
                    } else {
                        rec.paths.join(" ")
                    },
                    human_bytes(rec.size),
                    why(rec, reason, rules, as_of)
                )),
                _ => {}
            }
        }
        let first_leftover = work.removals.len() - work.leftovers.len();
        for (k, l) in work.leftovers.iter().enumerate() {
            match results.get(first_leftover + k) {
                Some(Err(e)) => eprintln!("error: remove {}: {}", l.what, Failure::of(e).message()),
                _ if each && !args.json => say(&format!(
                    "{} {} (left {} ago by an interrupted save)",
                    if args.dry_run {
                        "would remove"
                    } else {
                        "removed"
                    },
                    l.what,
                    human_age(as_of.duration_since(l.since).unwrap_or_default())
                )),
                _ => {}
            }
        }
    }

    fn print_summary(&self, args: &PruneArgs) {
        if args.json {
            println!("{}", self.json);
            return;
        }
        let j = &self.json;
        let count = |v: &serde_json::Value| thousands(v.as_u64().unwrap_or(0));
        let reasons: Vec<String> = j["deleted_by_reason"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| format!("{} {k}", count(v))).collect())
            .unwrap_or_default();
        let protected: Vec<String> = self
            .protected
            .iter()
            .map(|(k, v)| format!("{} by {k}", thousands(*v as u64)))
            .collect();
        say(&format!(
            "prune {}{}: scanned {} ({}); {} {}{}, {} {}; kept {}{}; store {} {}, {}",
            self.store,
            if self.dry_run { " (dry run)" } else { "" },
            output::count(self.scanned as u64, "entry", "entries"),
            human_bytes(self.scanned_bytes),
            if self.dry_run {
                "would delete"
            } else {
                "deleted"
            },
            count(&j["deleted"]),
            if reasons.is_empty() {
                String::new()
            } else {
                format!(" ({})", reasons.join(", "))
            },
            if self.dry_run { "would free" } else { "freed" },
            human_bytes(j["bytes_freed"].as_u64().unwrap_or(0)),
            thousands(self.kept as u64),
            if protected.is_empty() {
                String::new()
            } else {
                format!(" (protected: {})", protected.join(", "))
            },
            if self.dry_run {
                "would hold"
            } else {
                "now holds"
            },
            output::count(self.entries_after as u64, "entry", "entries"),
            human_bytes(self.bytes_after),
        ));
        if self.leftovers + self.uses > 0 {
            say(&format!(
                "prune: {} {} leftovers of interrupted saves and {} old use records",
                if self.dry_run {
                    "would remove"
                } else {
                    "removed"
                },
                thousands(self.leftovers as u64),
                thousands(self.uses as u64)
            ));
        }
        if self.over_budget > 0 {
            crate::output::warn(
                "prune",
                &format!(
                    "the store stays {} over max-total-size: only entries protected by min-age or keep-last remain",
                    human_bytes(self.over_budget)
                ),
                Some("raise max-total-size or lower keep-last"),
            );
        }
        if self.failed > 0 {
            eprintln!(
                "error: {} failed; each is listed above, and the next prune retries them",
                output::count(self.failed as u64, "deletion", "deletions")
            );
        }
    }
}

/// Bytes a dry run would free.
fn plan_bytes(inv: &Inventory, work: &Work<'_>) -> u64 {
    work.entries.iter().map(|(i, _)| inv.records[*i].size).sum()
}
