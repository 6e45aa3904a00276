//! `cachectl prune`: scan the store, plan with [`crate::prune::plan`], delete in batches, and
//! clean up after interrupted saves and old use records. `--dry-run` stops after the plan.

use super::{Error, ExitStatus};
use crate::cli::{GlobalArgs, PruneArgs};
use crate::config;
use crate::error::chain;
use crate::inventory::{self, Inventory, Record};
use crate::metrics::Event;
use crate::output::{self, say, verbosity, Verbosity};
use crate::prune::{self, Plan, Protection, Reason, Rules, Verdict};
use crate::store::{Error as StoreError, Removal};
use crate::units::{
    compact_duration as compact, count, human_age, human_bytes, rfc3339, thousands,
};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Instant, SystemTime};

pub async fn run(g: &GlobalArgs, args: PruneArgs) -> Result<ExitStatus, Error> {
    let (cwd, _) = super::anchors();
    let config = g.config.clone();
    let (file_rules, metrics_config) =
        super::blocking(move || read_config(config.as_deref(), &cwd)).await?;
    let rules = file_rules.overridden_by(&Rules {
        max_age: args.max_age,
        max_age_untrusted: args.max_age_untrusted,
        max_unused: args.max_unused,
        keep_last: args.keep_last,
        max_total_size: args.max_total_size,
        min_age: args.min_age,
    });
    if !rules.deletes_anything() {
        return Err(Error::usage(
            "prune has no rule that deletes anything",
            Some("pass --max-age, --max-age-untrusted, --max-unused or --max-total-size, or set them under [prune] in cachectl.toml".into()),
        ));
    }
    let as_of = args.as_of.unwrap_or_else(crate::time::now);
    let metrics =
        (!args.dry_run).then(|| super::start_metrics(&args.metrics, Some(&metrics_config)));
    let store = super::open_store(g.store.as_deref()).await?;
    let t = Instant::now();
    let inv = Inventory::load(store.as_ref(), "").await?;
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
    let outcome = Outcome {
        args: &args,
        rules: &rules,
        as_of,
        store: store.describe(),
        inv: &inv,
        plan: &plan,
        work: &work,
        results: &results,
        seconds: [scan_seconds, plan_seconds, delete_seconds],
    };
    let totals = outcome.totals();
    // People read stderr (lines, summary, warnings); `--json` adds the object on stdout.
    outcome.print_lines();
    outcome.print_summary(&totals);
    if let Some(m) = metrics {
        let event = Event::Prune {
            store: store.describe(),
            entries: totals.deleted as u64,
            bytes: totals.bytes_freed,
            store_entries: totals.entries_after as u64,
            store_bytes: totals.bytes_after,
        };
        super::finish_metrics(m, &[event]).await;
    }
    if g.json {
        outcome.print_json(&totals)?;
    }
    Ok(if totals.failed == 0 {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}

/// `[prune]` and `[metrics]` from `--config`, else `./cachectl.toml` when there is one.
fn read_config(
    explicit: Option<&Path>,
    cwd: &Path,
) -> Result<(Rules, config::MetricsConfig), Error> {
    let path = super::jobs::config_path(explicit, cwd);
    let cfg = match config::load(&path) {
        Ok(c) => c,
        Err(config::Error::NotFound { .. }) if explicit.is_none() => return Ok(Default::default()),
        Err(e) => return Err(e.into()),
    };
    let rules = match &cfg.prune {
        Some(t) => prune::rules_from_table(t, &path.display().to_string())?,
        None => Rules::default(),
    };
    Ok((rules, cfg.metrics))
}

/// Every removal the plan needs, and which of them delete entries.
struct Work<'a> {
    removals: Vec<Removal>,
    /// (record index, index of its `Removal::Entry`) for each entry to delete.
    entries: Vec<(usize, usize)>,
    /// Removals before this index delete entries (and their newest use records); then
    /// `uses` use records; then the leftovers.
    entries_removals: usize,
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
        let entries_removals = removals.len();
        removals.extend(inv.stale_uses.iter().cloned().map(Removal::Use));
        removals.extend(
            inv.orphan_uses
                .iter()
                .filter(|u| u.latest() < cutoff)
                .cloned()
                .map(Removal::Use),
        );
        let uses = removals.len() - entries_removals;
        let leftovers: Vec<_> = inv.leftovers.iter().filter(|l| l.since < cutoff).collect();
        removals.extend(leftovers.iter().map(|l| Removal::Leftover((*l).clone())));
        Work {
            removals,
            entries,
            entries_removals,
            leftovers,
            uses,
        }
    }
}

/// A prune run, decided and done: printed as lines, a summary or one JSON object.
struct Outcome<'a> {
    args: &'a PruneArgs,
    rules: &'a Rules,
    as_of: SystemTime,
    store: String,
    inv: &'a Inventory,
    plan: &'a Plan,
    work: &'a Work<'a>,
    /// One per `work.removals`; empty for a dry run.
    results: &'a [Result<(), StoreError>],
    /// Wall seconds of scan, plan and delete.
    seconds: [f64; 3],
}

/// The counts of an [`Outcome`]; a dry run counts what it would delete as deleted.
#[derive(Debug, Default)]
struct Totals {
    deleted: usize,
    by_reason: BTreeMap<&'static str, usize>,
    bytes_freed: u64,
    kept: usize,
    protected: BTreeMap<&'static str, usize>,
    entries_after: usize,
    bytes_after: u64,
    /// Entries, use records and leftovers that could not be deleted.
    failed: usize,
}

fn protection_str(p: Protection) -> &'static str {
    match p {
        Protection::MinAge => "min-age",
        Protection::KeepLast => "keep-last",
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
        Reason::MaxAgeUntrusted => format!(
            "created {} ago, over max-age-untrusted {}",
            ago(r.created),
            compact(rules.max_age_untrusted.unwrap_or_default())
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

impl Outcome<'_> {
    fn error_at(&self, slot: usize) -> Option<&StoreError> {
        self.results.get(slot).and_then(|r| r.as_ref().err())
    }

    /// Each entry to delete with its reason and, if its deletion failed, the error.
    fn deletions(&self) -> impl Iterator<Item = (&Record, Reason, Option<&StoreError>)> + '_ {
        self.work
            .entries
            .iter()
            .filter_map(|&(i, slot)| match self.plan.verdicts[i] {
                Verdict::Delete(reason) => {
                    Some((&self.inv.records[i], reason, self.error_at(slot)))
                }
                _ => None,
            })
    }

    fn totals(&self) -> Totals {
        let mut t = Totals::default();
        let (mut failed_entries, mut failed_bytes) = (0, 0);
        for (rec, reason, err) in self.deletions() {
            if err.is_some() {
                failed_entries += 1;
                failed_bytes += rec.size;
            } else {
                t.deleted += 1;
                t.bytes_freed += rec.size;
                *t.by_reason.entry(reason.as_str()).or_default() += 1;
            }
        }
        for v in &self.plan.verdicts {
            match v {
                Verdict::Delete(_) => {}
                Verdict::Protected(p) => {
                    t.kept += 1;
                    *t.protected.entry(protection_str(*p)).or_default() += 1;
                }
                Verdict::Keep => t.kept += 1,
            }
        }
        // An entry that failed to delete is still in the store.
        t.entries_after = self.plan.entries_after + failed_entries;
        t.bytes_after = self.plan.bytes_after + failed_bytes;
        t.failed = self.results.iter().filter(|r| r.is_err()).count();
        t
    }

    fn verb(&self, done: &'static str, would: &'static str) -> &'static str {
        if self.args.dry_run {
            would
        } else {
            done
        }
    }

    /// Errors always; one line per deletion with --verbose, or always for --dry-run.
    fn print_lines(&self) {
        let each = self.args.dry_run || verbosity() == Verbosity::Verbose;
        let verb = self.verb("deleted", "would delete");
        for (rec, reason, err) in self.deletions() {
            match err {
                Some(e) => output::error(&format!("delete {}", rec.name.key), e),
                None if each => say(&format!(
                    "{verb} {}{} [{}] {}: {}",
                    rec.name.key,
                    if rec.name.scope.is_trusted() {
                        String::new()
                    } else {
                        format!(" (scope {})", rec.name.scope)
                    },
                    rec.paths_label(),
                    human_bytes(rec.size),
                    why(rec, reason, self.rules, self.as_of)
                )),
                None => {}
            }
        }
        let first_leftover = self.work.removals.len() - self.work.leftovers.len();
        for (k, l) in self.work.leftovers.iter().enumerate() {
            match self.error_at(first_leftover + k) {
                Some(e) => output::error(&format!("remove {}", l.what), e),
                None if each => say(&format!(
                    "{} {} (left {} ago by an interrupted save)",
                    self.verb("removed", "would remove"),
                    l.what,
                    human_age(self.as_of.duration_since(l.since).unwrap_or_default())
                )),
                None => {}
            }
        }
        let first_use = self.work.entries_removals;
        for r in self.results.iter().skip(first_use).take(self.work.uses) {
            if let Err(e) = r {
                output::error("remove use record", e);
            }
        }
    }

    fn print_summary(&self, t: &Totals) {
        let reasons: Vec<String> = t
            .by_reason
            .iter()
            .map(|(k, v)| format!("{} {k}", thousands(*v as u64)))
            .collect();
        let protected: Vec<String> = t
            .protected
            .iter()
            .map(|(k, v)| format!("{} by {k}", thousands(*v as u64)))
            .collect();
        say(&format!(
            "prune {}{}: scanned {} ({}); {} {}{}, {} {}; kept {}{}; store {} {}, {}",
            self.store,
            self.verb("", " (dry run)"),
            count(self.inv.records.len() as u64, "entry", "entries"),
            human_bytes(self.inv.total_bytes()),
            self.verb("deleted", "would delete"),
            thousands(t.deleted as u64),
            if reasons.is_empty() {
                String::new()
            } else {
                format!(" ({})", reasons.join(", "))
            },
            self.verb("freed", "would free"),
            human_bytes(t.bytes_freed),
            thousands(t.kept as u64),
            if protected.is_empty() {
                String::new()
            } else {
                format!(" (protected: {})", protected.join(", "))
            },
            self.verb("now holds", "would hold"),
            count(t.entries_after as u64, "entry", "entries"),
            human_bytes(t.bytes_after),
        ));
        if !self.work.leftovers.is_empty() || self.work.uses > 0 {
            say(&format!(
                "prune: {} {} left by interrupted saves and {} no longer needed",
                self.verb("removed", "would remove"),
                count(self.work.leftovers.len() as u64, "leftover", "leftovers"),
                count(self.work.uses as u64, "use record", "use records"),
            ));
        }
        for w in &self.inv.warnings {
            output::warn("prune", w, None);
        }
        if self.plan.over_budget > 0 {
            output::warn(
                "prune",
                &format!(
                    "the store stays {} over max-total-size: only entries protected by min-age or keep-last remain",
                    human_bytes(self.plan.over_budget)
                ),
                Some("raise max-total-size or lower keep-last"),
            );
        }
        if t.failed > 0 {
            output::error_line(
                &format!(
                    "{} failed; each is listed above",
                    count(t.failed as u64, "deletion", "deletions")
                ),
                Some("the next prune retries them"),
            );
        }
    }

    /// Prints the `--json` object as one line, streaming `entries` (a prune of a million
    /// entries must not hold a million JSON values).
    fn print_json(&self, t: &Totals) -> Result<(), output::StdoutError> {
        let summary = self.json_summary(t).to_string();
        let open = summary
            .strip_suffix('}')
            .expect("a JSON object ends with }");
        output::stream(|out| {
            write!(out, "{open},\"entries\":[")?;
            for (n, (rec, reason, err)) in self.deletions().enumerate() {
                let mut j = rec.to_json();
                j["reason"] = json!(reason.as_str());
                j["why"] = json!(why(rec, reason, self.rules, self.as_of));
                if let Some(e) = err {
                    j["error"] = json!(chain(e));
                }
                if n > 0 {
                    out.write_all(b",")?;
                }
                serde_json::to_writer(&mut *out, &j)?;
            }
            out.write_all(b"]}\n")
        })
    }

    /// Everything in `--json` but the deleted entries.
    fn json_summary(&self, t: &Totals) -> serde_json::Value {
        let leftovers: Vec<_> = self
            .work
            .leftovers
            .iter()
            .map(|l| json!({ "what": l.what, "since": rfc3339(l.since) }))
            .collect();
        let rules = self.rules;
        json!({
            "store": self.store,
            "dry_run": self.args.dry_run,
            "as_of": rfc3339(self.as_of),
            "outcome": if t.failed == 0 { "ok" } else { "error" },
            "rules": {
                "max_age": rules.max_age.map(compact),
                "max_age_untrusted": rules.max_age_untrusted.map(compact),
                "max_unused": rules.max_unused.map(compact),
                "keep_last": rules.keep_last,
                "max_total_size": rules.max_total_size,
                "min_age": compact(rules.min_age()),
            },
            "scanned": self.inv.records.len(),
            "scanned_bytes": self.inv.total_bytes(),
            "deleted": t.deleted,
            "deleted_by_reason": t.by_reason,
            "bytes_freed": t.bytes_freed,
            "kept": t.kept,
            "protected": t.protected,
            "store_entries_after": t.entries_after,
            "store_bytes_after": t.bytes_after,
            "over_budget_bytes": self.plan.over_budget,
            "leftovers_removed": self.work.leftovers.len(),
            "leftovers": leftovers,
            "use_records_removed": self.work.uses,
            "failed": t.failed,
            "warnings": self.inv.warnings,
            "seconds": {
                "scan": self.seconds[0],
                "plan": self.seconds[1],
                "delete": self.seconds[2],
            },
        })
    }
}
