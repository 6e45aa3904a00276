//! `cachectl ls [PREFIX] [--scope SCOPE]`: every entry with its scope, size, creation, last use,
//! family and paths.

use super::{Error, ExitStatus};
use crate::cli::{GlobalArgs, LsArgs};
use crate::inventory::Inventory;
use crate::output::{self, Align};
use crate::units::{count, human_age, human_bytes};
use std::time::SystemTime;

pub async fn run(g: &GlobalArgs, args: LsArgs) -> Result<ExitStatus, Error> {
    let store = super::open_store(g.store.as_deref()).await?;
    let mut inv = Inventory::load(store.as_ref(), &args.prefix).await?;
    if let Some(scope) = &args.scope {
        inv.records.retain(|r| &r.name.scope == scope);
    }
    let now = crate::time::now();
    if g.json {
        let entries: Vec<_> = inv.records.iter().map(|r| r.to_json()).collect();
        output::json(&serde_json::json!({
            "store": store.describe(),
            "entries": entries,
            "total_entries": inv.records.len(),
            "total_bytes": inv.total_bytes(),
        }))?;
        return Ok(ExitStatus::Success);
    }
    if inv.records.is_empty() {
        output::say(&format!(
            "no entries{} in {}",
            if args.prefix.is_empty() {
                String::new()
            } else {
                format!(" with keys starting `{}`", args.prefix)
            },
            store.describe()
        ));
        return Ok(ExitStatus::Success);
    }
    let ago = |t: SystemTime| {
        format!(
            "{} ago",
            human_age(now.duration_since(t).unwrap_or_default())
        )
    };
    let header = [
        "KEY",
        "SCOPE",
        "SIZE",
        "CREATED",
        "LAST USED",
        "FAMILY",
        "PATHS",
    ];
    let rows: Vec<Vec<String>> = std::iter::once(header.map(String::from).to_vec())
        .chain(inv.records.iter().map(|r| {
            vec![
                r.name.key.clone(),
                r.name.scope.to_string(),
                human_bytes(r.size),
                ago(r.created),
                r.used.map_or_else(|| "never".to_owned(), ago),
                r.family.clone(),
                r.paths.join(" "),
            ]
        }))
        .collect();
    output::print(&output::table(
        &rows,
        &[Align::Left, Align::Left, Align::Right],
    ))?;
    output::say(&format!(
        "{}, {} in {}",
        count(inv.records.len() as u64, "entry", "entries"),
        human_bytes(inv.total_bytes()),
        store.describe()
    ));
    Ok(ExitStatus::Success)
}
