//! `cachectl ls [PREFIX]`: every entry with size, creation, last use, family and paths.

use crate::cli::LsArgs;
use crate::error::code;
use crate::inventory::{Inventory, Record};
use crate::output::{count, human_age, human_bytes};
use crate::time::rfc3339;
use std::process::ExitCode;
use std::time::SystemTime;

pub async fn run(args: LsArgs) -> ExitCode {
    let store = match super::open_store(args.store.store.as_deref()).await {
        Ok(s) => s,
        Err(f) => return super::fail(&f),
    };
    let inv = match Inventory::load(store.as_ref(), &args.prefix).await {
        Ok(inv) => inv,
        Err(e) => return super::fail(&e.into()),
    };
    let now = crate::time::now();
    if args.json {
        let entries: Vec<_> = inv.records.iter().map(record_json).collect();
        let out = serde_json::json!({
            "store": store.describe(),
            "entries": entries,
            "total_entries": inv.records.len(),
            "total_bytes": inv.total_bytes(),
        });
        println!("{out}");
        return ExitCode::from(code::OK);
    }
    if inv.records.is_empty() {
        eprintln!(
            "no entries{} in {}",
            if args.prefix.is_empty() {
                String::new()
            } else {
                format!(" with keys starting `{}`", args.prefix)
            },
            store.describe()
        );
        return ExitCode::from(code::OK);
    }
    let ago = |t: SystemTime| {
        format!(
            "{} ago",
            human_age(now.duration_since(t).unwrap_or_default())
        )
    };
    let rows: Vec<[String; 6]> = inv
        .records
        .iter()
        .map(|r| {
            [
                r.name.key.clone(),
                human_bytes(r.size),
                ago(r.created),
                r.used.map_or_else(|| "never".to_owned(), ago),
                r.family.clone(),
                r.paths.join(" "),
            ]
        })
        .collect();
    let header = ["KEY", "SIZE", "CREATED", "LAST USED", "FAMILY", "PATHS"].map(String::from);
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i == row.len() - 1 {
                line.push_str(cell);
            } else if i == 1 {
                line.push_str(&format!("{cell:>w$}  "));
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        println!("{}", line.trim_end());
    }
    eprintln!(
        "{}, {} in {}",
        count(inv.records.len() as u64, "entry", "entries"),
        human_bytes(inv.total_bytes()),
        store.describe()
    );
    ExitCode::from(code::OK)
}

/// One entry as JSON (shared with `rm` and `prune`).
pub fn record_json(r: &Record) -> serde_json::Value {
    serde_json::json!({
        "key": r.name.key,
        "pathset": r.name.pathset,
        "size": r.size,
        "created": rfc3339(r.created),
        "last_used": r.used.map(rfc3339),
        "family": r.family,
        "paths": r.paths,
        "metadata_inferred": r.inferred,
    })
}
