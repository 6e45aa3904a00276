//! The CloudWatch dashboard of the stack: restore outcomes, timings, bytes, install times and
//! prune results, as metric search expressions over the metrics `metrics.rs` names.

use serde_json::{json, Value};

/// One dashboard widget: a metric search over `dims`, one line per dimension value, at hourly
/// points.
fn widget(
    title: &str,
    namespace: &str,
    dims: &str,
    metrics: &[&str],
    stat: &str,
    y: u32,
    x: u32,
) -> Value {
    search_widget(title, namespace, dims, metrics, stat, 3600, (y, x))
}

/// [`widget`] with the period (seconds) of its points.
fn search_widget(
    title: &str,
    namespace: &str,
    dims: &str,
    metrics: &[&str],
    stat: &str,
    period: u32,
    (y, x): (u32, u32),
) -> Value {
    let series: Vec<Value> = metrics
        .iter()
        .enumerate()
        .map(|(i, m)| {
            json!([{
                // The namespace in double quotes: one with spaces or `/` is still one name.
                "expression": format!("SEARCH('{{\"{namespace}\",{dims}}} MetricName=\"{m}\"', '{stat}', {period})"),
                "id": format!("m{i}"),
                "label": m,
            }])
        })
        .collect();
    json!({
        "type": "metric", "x": x, "y": y, "width": 12, "height": 6,
        "properties": {
            "title": title, "region": "${AWS::Region}", "view": "timeSeries",
            "stacked": false, "metrics": series, "period": period,
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
        // Time saved per project and day, as the prune project's `cachectl stats --publish`
        // reckons it (metric math cannot pair one search's series with another's by
        // dimension). The daily maximum: a day published twice counts once.
        search_widget(
            "Time saved per project and day (seconds; negative: the cache cost more than it saved)",
            namespace,
            m::PROJECT_DIMENSION,
            &[m::TIME_SAVED_SECONDS],
            "Maximum",
            86_400,
            (24, 0),
        ),
        // And its inputs, day by day.
        search_widget(
            "Install seconds (median per day): cold, warm and hot installs per cache and project",
            namespace,
            &format!("{per_cache},{}", m::OUTCOME_DIMENSION),
            &[m::INSTALL_SECONDS],
            "p50",
            86_400,
            (12, 12),
        ),
        search_widget(
            "Installs skipped per day: exact hits per cache and project",
            namespace,
            &per_cache,
            &[m::CACHE_HIT],
            "Sum",
            86_400,
            (18, 0),
        ),
        json!({
            "type": "text", "x": 12, "y": 18, "width": 12, "height": 6,
            "properties": {
                "markdown": "## Time saved\nEach exact hit skips a cold install; a partial hit shortens it to a warm one. Per cache and project:\n\n`saved = hits × (cold − hot) + partial hits × (cold − warm) − restore − save seconds`\n\nwith cold, warm and hot the median install seconds. The scheduled prune project publishes each day's figure per project (`cachectl stats --publish`, medians over 30 days); `cachectl stats --since 30d` gives minutes and shares for any window. Install seconds come from `cachectl run --cache NAME -- <install command>` in the buildspec.",
            },
        }),
    ];
    serde_json::to_string(&json!({ "widgets": widgets })).expect("a JSON value serialises")
}
