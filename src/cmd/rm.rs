//! `cachectl rm KEY...` / `cachectl rm --prefix PREFIX` / `cachectl rm --scope SCOPE`: drop
//! entries on purpose (a bad cache, a poisoned one, a closed pull request's). Deletes every path
//! set (and, without `--scope`, every scope) saved under a key, and the entries' use records.

use super::{Error, ExitStatus};
use crate::cli::{GlobalArgs, RmArgs};
use crate::error::chain;
use crate::inventory::{self, Inventory};
use crate::output::{self, say};
use crate::store::Removal;
use crate::units::{count, human_bytes};
use std::collections::HashSet;

pub async fn run(g: &GlobalArgs, args: RmArgs) -> Result<ExitStatus, Error> {
    let store = super::open_store(g.store.as_deref()).await?;
    let keys: Vec<&str> = args.keys.iter().map(|k| k.as_str()).collect();
    // Listing is per store, not per key: one scan narrowed to what all the keys share.
    let scan_prefix = match &args.prefix {
        Some(p) => p.as_str().to_owned(),
        None => common_prefix(&keys),
    };
    let inv = Inventory::load(store.as_ref(), &scan_prefix).await?;
    let wanted: HashSet<&str> = keys.iter().copied().collect();
    let doomed: Vec<_> = inv
        .records
        .iter()
        .filter(|r| {
            args.prefix.is_some() || keys.is_empty() || wanted.contains(r.name.key.as_str())
        })
        .filter(|r| args.scope.as_ref().is_none_or(|s| &r.name.scope == s))
        .collect();
    let found: HashSet<&str> = doomed.iter().map(|r| r.name.key.as_str()).collect();
    let not_found: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|k| !found.contains(k))
        .collect();

    let mut removals = Vec::new();
    let mut entry_slots = Vec::new();
    if !args.dry_run {
        let names: HashSet<_> = doomed.iter().map(|r| &r.name).collect();
        for r in &doomed {
            entry_slots.push(removals.len());
            removals.extend(inv.removals_for(&r.name));
        }
        removals.extend(
            inv.stale_uses
                .iter()
                .filter(|u| names.contains(&u.name))
                .cloned()
                .map(Removal::Use),
        );
    }
    let results = inventory::remove_all(store.as_ref(), &removals).await;
    let mut deleted = Vec::new();
    let mut failed = Vec::new();
    let mut freed = 0;
    for (i, r) in doomed.iter().enumerate() {
        let outcome = entry_slots.get(i).map(|&slot| &results[slot]);
        match outcome {
            Some(Err(e)) => {
                output::error(&format!("delete {}", r.name.key), e);
                failed.push(serde_json::json!({ "key": r.name.key, "scope": r.name.scope.as_str(), "pathset": r.name.pathset, "error": chain(e) }));
            }
            _ => {
                let verb = if args.dry_run {
                    "would delete"
                } else {
                    "deleted"
                };
                say(&format!(
                    "{verb} {}{} ({}) {}",
                    r.name.key,
                    if r.name.scope.is_trusted() {
                        String::new()
                    } else {
                        format!(" [scope {}]", r.name.scope)
                    },
                    r.paths_label(),
                    human_bytes(r.size)
                ));
                freed += r.size;
                deleted.push(r.to_json());
            }
        }
    }
    let in_scope = args
        .scope
        .as_ref()
        .map_or_else(String::new, |s| format!(" of scope {s}"));
    for k in &not_found {
        output::error_line(
            &format!("no entry{in_scope} with key `{k}` in {}", store.describe()),
            Some("`cachectl ls PREFIX` lists the keys there are"),
        );
    }
    if args.prefix.is_some() && doomed.is_empty() {
        say(&format!(
            "no entry{in_scope} has a key starting `{scan_prefix}` in {}",
            store.describe()
        ));
    } else if keys.is_empty() && args.prefix.is_none() && doomed.is_empty() {
        say(&format!("no entry{in_scope} in {}", store.describe()));
    } else {
        say(&format!(
            "{} {}, {}",
            if args.dry_run {
                "would delete"
            } else {
                "deleted"
            },
            count(deleted.len() as u64, "entry", "entries"),
            human_bytes(freed)
        ));
    }
    let ok = failed.is_empty() && not_found.is_empty();
    if g.json {
        output::json(&serde_json::json!({
            "store": store.describe(),
            "dry_run": args.dry_run,
            "outcome": if ok { "ok" } else { "error" },
            "deleted": deleted,
            "bytes_freed": freed,
            "not_found": not_found,
            "failed": failed,
        }))?;
    }
    Ok(if ok {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}

/// The longest prefix all `keys` share (on a character boundary).
fn common_prefix(keys: &[&str]) -> String {
    let Some(first) = keys.first() else {
        return String::new();
    };
    let mut end = first.len();
    for k in &keys[1..] {
        end = first[..end]
            .char_indices()
            .zip(k.chars())
            .find(|((_, a), b)| a != b)
            .map_or(end.min(k.len()), |((i, _), _)| i);
    }
    while !first.is_char_boundary(end) {
        end -= 1;
    }
    first[..end].to_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn common_prefix() {
        assert_eq!(super::common_prefix(&[]), "");
        assert_eq!(super::common_prefix(&["npm-abc"]), "npm-abc");
        assert_eq!(
            super::common_prefix(&["npm-abc", "npm-abd", "npm-x"]),
            "npm-"
        );
        assert_eq!(super::common_prefix(&["npm-abc", "npm"]), "npm");
        assert_eq!(super::common_prefix(&["é1", "é2"]), "é");
        assert_eq!(super::common_prefix(&["a", "b"]), "");
    }
}
