//! The CloudWatch dashboard of the stack: restore outcomes, timings, bytes and prune results,
//! as metric search expressions over the metrics `metrics.rs` names.

use serde_json::{json, Value};

/// One dashboard widget: a metric search over `dims`, one line per dimension value.
fn widget(
    title: &str,
    namespace: &str,
    dims: &str,
    metrics: &[&str],
    stat: &str,
    y: u32,
    x: u32,
) -> Value {
    let series: Vec<Value> = metrics
        .iter()
        .enumerate()
        .map(|(i, m)| {
            json!([{
                // The namespace in double quotes: one with spaces or `/` is still one name.
                "expression": format!("SEARCH('{{\"{namespace}\",{dims}}} MetricName=\"{m}\"', '{stat}', 3600)"),
                "id": format!("m{i}"),
                "label": m,
            }])
        })
        .collect();
    json!({
        "type": "metric", "x": x, "y": y, "width": 12, "height": 6,
        "properties": {
            "title": title, "region": "${AWS::Region}", "view": "timeSeries",
            "stacked": false, "metrics": series, "period": 3600,
        },
    })
}

/// The dashboard body. Metric search expressions pick up new caches and projects as they
/// publish, without redeploying.
pub fn body(namespace: &str) -> String {
    use crate::metrics as m;
    let per_cache = format!("{},{}", m::CACHE_DIMENSION, m::PROJECT_DIMENSION);
    let widgets = vec![
        widget(
            "Restores: hit / partial / miss / error (per cache and project)",
            namespace,
            &per_cache,
            &m::OUTCOME_METRICS,
            "Sum",
            0,
            0,
        ),
        widget(
            "Restore and save seconds (average)",
            namespace,
            &per_cache,
            &[m::RESTORE_SECONDS, m::SAVE_SECONDS],
            "Average",
            0,
            12,
        ),
        widget(
            "Bytes downloaded and uploaded",
            namespace,
            &per_cache,
            &[m::BYTES_DOWNLOADED, m::BYTES_UPLOADED],
            "Sum",
            6,
            0,
        ),
        widget(
            "Store size after prune",
            namespace,
            m::STORE_DIMENSION,
            &[m::STORE_BYTES, m::STORE_ENTRIES],
            "Maximum",
            6,
            12,
        ),
        widget(
            "Pruned entries and bytes",
            namespace,
            m::STORE_DIMENSION,
            &[m::PRUNED_ENTRIES, m::PRUNED_BYTES],
            "Sum",
            12,
            0,
        ),
    ];
    serde_json::to_string(&json!({ "widgets": widgets })).expect("a JSON value serialises")
}
