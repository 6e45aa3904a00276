//! CloudWatch metrics against moto: `cachectl stats` reads back what was put with the SDK, and
//! `cachectl::metrics::Metrics::publish` puts what stats reads. Each test owns a namespace and
//! cache names of its own (moto's GetMetricData ignores the namespace once dimensions are given).
//!
//! moto serves CloudWatch's JSON protocol and the SDK speaks RPC v2 CBOR, so every call goes
//! through the loopback bridge in `support::cloudwatch`.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use aws_sdk_cloudwatch::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use cachectl::metrics::{Event, Metrics, Published};
use cachectl::outcome::RestoreOutcome;
use serde_json::Value;

use crate::support::cloudwatch::{
    bridge, bridge_enforcing_auth, cbor, client as cloudwatch, RUNTIME,
};
use crate::support::{Fixture, Run};

/// What cachectl sends for one restore (the contract `stats` reads): four outcome counts with
/// exactly one 1, the seconds and the bytes.
fn restore(
    cache: &str,
    project: &str,
    outcome: RestoreOutcome,
    seconds: f64,
    bytes: f64,
) -> Vec<MetricDatum> {
    let outcomes = [
        ("CacheHit", RestoreOutcome::Hit),
        ("CachePartialHit", RestoreOutcome::Partial),
        ("CacheMiss", RestoreOutcome::Miss),
        ("CacheError", RestoreOutcome::Error),
    ];
    let mut out: Vec<MetricDatum> = outcomes
        .iter()
        .map(|(name, o)| {
            let value = if *o == outcome { 1.0 } else { 0.0 };
            datum(cache, project, name, value, StandardUnit::Count)
        })
        .collect();
    out.push(datum(
        cache,
        project,
        "RestoreSeconds",
        seconds,
        StandardUnit::Seconds,
    ));
    out.push(datum(
        cache,
        project,
        "BytesDownloaded",
        bytes,
        StandardUnit::Bytes,
    ));
    out
}

fn save(cache: &str, project: &str, seconds: f64, bytes: f64) -> Vec<MetricDatum> {
    vec![
        datum(
            cache,
            project,
            "SaveSeconds",
            seconds,
            StandardUnit::Seconds,
        ),
        datum(cache, project, "BytesUploaded", bytes, StandardUnit::Bytes),
    ]
}

fn datum(cache: &str, project: &str, name: &str, value: f64, unit: StandardUnit) -> MetricDatum {
    MetricDatum::builder()
        .metric_name(name)
        .value(value)
        .unit(unit)
        .dimensions(Dimension::builder().name("CacheName").value(cache).build())
        .dimensions(
            Dimension::builder()
                .name("ProjectName")
                .value(project)
                .build(),
        )
        .build()
}

/// PutMetricData straight through the SDK.
fn put(namespace: &str, datums: Vec<MetricDatum>) {
    let client = cloudwatch();
    for chunk in datums.chunks(1000) {
        RUNTIME
            .block_on(
                client
                    .put_metric_data()
                    .namespace(namespace)
                    .set_metric_data(Some(chunk.to_vec()))
                    .send(),
            )
            .unwrap_or_else(|e| {
                panic!(
                    "put metrics in {namespace}: {}",
                    aws_sdk_cloudwatch::error::DisplayErrorContext(&e)
                )
            });
    }
}

/// `cachectl stats --namespace NS ARGS...` against the bridge.
fn stats(namespace: &str, args: &[&str]) -> Run {
    stats_at(bridge(), namespace, args)
}

fn stats_at(endpoint: &str, namespace: &str, args: &[&str]) -> Run {
    let f = Fixture::bare();
    let mut cmd = f.cachectl();
    cmd.env("AWS_ENDPOINT_URL", endpoint)
        .args(["stats", "--namespace", namespace])
        .args(args)
        .timeout(Duration::from_secs(120));
    cmd.run()
}

fn stats_json(namespace: &str, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let run = stats(namespace, &all);
    run.assert_code(0);
    run.json()
}

/// The row of `cache` in a `--json` report.
fn row<'a>(report: &'a Value, cache: &str) -> &'a Value {
    report["caches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["cache"] == cache)
        .unwrap_or_else(|| panic!("no row for {cache} in {report:#}"))
}

/// (cache, project)
type Pair = (String, String);

fn pairs(report: &Value) -> Vec<Pair> {
    report["caches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["cache"].as_str().unwrap().to_owned(),
                r["project"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn assert_close(value: &Value, want: f64, what: &str) {
    let got = value
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: {value} is not a number"));
    assert!((got - want).abs() < 1e-9, "{what}: got {got}, want {want}");
}

#[test]
fn stats_reads_back_counts_and_rates() {
    let ns = "it-stats-readback";
    let mut datums = Vec::new();
    for (outcome, seconds) in [
        (RestoreOutcome::Hit, 2.0),
        (RestoreOutcome::Hit, 2.0),
        (RestoreOutcome::Hit, 2.0),
        (RestoreOutcome::Partial, 4.0),
        (RestoreOutcome::Miss, 0.5),
        (RestoreOutcome::Error, 0.5),
    ] {
        let bytes = if outcome == RestoreOutcome::Miss {
            0.0
        } else {
            100.0
        };
        datums.extend(restore("readback-npm", "web", outcome, seconds, bytes));
    }
    datums.extend(save("readback-npm", "web", 6.0, 1000.0));
    datums.extend(save("readback-npm", "web", 5.0, 1000.0));
    for _ in 0..2 {
        datums.extend(restore(
            "readback-pip",
            "web",
            RestoreOutcome::Miss,
            1.0,
            0.0,
        ));
    }
    put(ns, datums);

    let report = stats_json(ns, &[]);
    assert_eq!(report["namespace"], ns);
    assert_eq!(
        pairs(&report),
        [
            ("readback-npm".to_owned(), "web".to_owned()),
            ("readback-pip".to_owned(), "web".to_owned())
        ]
    );
    let npm = row(&report, "readback-npm");
    for (field, want) in [
        ("restores", 6),
        ("hit", 3),
        ("partial", 1),
        ("miss", 1),
        ("error", 1),
        ("saves", 2),
        ("bytes_downloaded", 500),
        ("bytes_uploaded", 2000),
    ] {
        assert_eq!(npm[field], want, "npm {field}\n{report:#}");
    }
    assert_close(&npm["hit_rate"], 0.5, "npm hit_rate");
    assert_close(&npm["partial_rate"], 1.0 / 6.0, "npm partial_rate");
    assert_close(&npm["miss_rate"], 1.0 / 6.0, "npm miss_rate");
    assert_close(&npm["error_rate"], 1.0 / 6.0, "npm error_rate");
    assert_close(&npm["restore_seconds"], 11.0, "npm restore_seconds");
    assert_close(
        &npm["mean_restore_seconds"],
        11.0 / 6.0,
        "npm mean_restore_seconds",
    );
    assert_close(&npm["mean_save_seconds"], 5.5, "npm mean_save_seconds");

    let pip = row(&report, "readback-pip");
    assert_eq!(
        (pip["restores"].as_u64(), pip["miss"].as_u64()),
        (Some(2), Some(2))
    );
    assert_close(&pip["miss_rate"], 1.0, "pip miss_rate");
    assert_close(&pip["hit_rate"], 0.0, "pip hit_rate");
    assert_eq!(pip["saves"], 0);
    assert!(pip["mean_save_seconds"].is_null(), "{report:#}");

    let total = &report["total"];
    assert_eq!(
        (total["restores"].as_u64(), total["hit"].as_u64()),
        (Some(8), Some(3))
    );
    assert_close(&total["hit_rate"], 3.0 / 8.0, "total hit_rate");
    // No install was timed (`cachectl run`), so time saved is not known, and the report says
    // why instead of guessing; cachectl's own cost is known.
    let saved = &report["time_saved"];
    assert!(saved["seconds"].is_null(), "{report:#}");
    assert_close(&saved["cost_seconds"], 11.0 + 2.0 + 11.0, "cost_seconds");
    assert_eq!(
        saved["notes"],
        serde_json::json!(["2 of 2 caches left out: their cold install is not known"]),
        "{report:#}"
    );
    assert_eq!(
        npm["time_saved"]["notes"],
        serde_json::json!([
            "no install of cache readback-npm was timed: run it with `cachectl run --cache readback-npm -- ...`"
        ]),
        "{report:#}"
    );
}

/// `InstallSeconds` as `cachectl run` sends it, `minutes_ago` minutes before now (each install
/// in a minute of its own, as builds are).
fn install(
    cache: &str,
    project: &str,
    outcome: &str,
    seconds: f64,
    minutes_ago: u64,
) -> MetricDatum {
    let at = std::time::SystemTime::now() - Duration::from_secs(60 * minutes_ago);
    MetricDatum::builder()
        .metric_name("InstallSeconds")
        .value(seconds)
        .unit(StandardUnit::Seconds)
        .timestamp(aws_sdk_cloudwatch::primitives::DateTime::from(at))
        .dimensions(Dimension::builder().name("CacheName").value(cache).build())
        .dimensions(
            Dimension::builder()
                .name("ProjectName")
                .value(project)
                .build(),
        )
        .dimensions(
            Dimension::builder()
                .name("RestoreOutcome")
                .value(outcome)
                .build(),
        )
        .build()
}

#[test]
fn stats_time_saved_from_planted_install_seconds() {
    let ns = "it-stats-time-saved";
    let cache = "saved-npm";
    let mut datums = Vec::new();
    // 10 exact hits of 2 s, 3 partial hits of 1 s, 3 misses of 0.5 s: 24.5 restore seconds.
    for _ in 0..10 {
        datums.extend(restore(cache, "web", RestoreOutcome::Hit, 2.0, 10.0));
    }
    for _ in 0..3 {
        datums.extend(restore(cache, "web", RestoreOutcome::Partial, 1.0, 10.0));
        datums.extend(restore(cache, "web", RestoreOutcome::Miss, 0.5, 0.0));
    }
    // Two saves of 5 s.
    datums.extend(save(cache, "web", 5.0, 100.0));
    datums.extend(save(cache, "web", 5.0, 100.0));
    // Cold installs 30, 50, 40 s; warm 14, 10, 12 s; none on exact hits (run skipped them).
    for (i, s) in [30.0, 50.0, 40.0].into_iter().enumerate() {
        datums.push(install(cache, "web", "miss", s, 2 + i as u64));
    }
    for (i, s) in [14.0, 10.0, 12.0].into_iter().enumerate() {
        datums.push(install(cache, "web", "partial", s, 10 + i as u64));
    }
    // The 10 exact hits skipped the install: 0 s each.
    for i in 0..10 {
        datums.push(install(cache, "web", "hit", 0.0, 20 + i));
    }
    // Another project with two timed misses only: too few to know its cold install.
    datums.extend(restore(cache, "api", RestoreOutcome::Hit, 1.0, 10.0));
    datums.push(install(cache, "api", "miss", 100.0, 3));
    datums.push(install(cache, "api", "miss", 120.0, 5));
    put(ns, datums);

    let report = stats_json(ns, &["--cache", cache]);
    let web = report["caches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["project"] == "web")
        .unwrap_or_else(|| panic!("{report:#}"));
    let installs = &web["installs"];
    assert_eq!(installs["cold"]["installs"], 3, "{report:#}");
    assert_close(&installs["cold"]["median_seconds"], 40.0, "cold median");
    assert_close(&installs["cold"]["p90_seconds"], 50.0, "cold p90");
    assert_close(&installs["cold"]["seconds"], 120.0, "cold total");
    assert_eq!(installs["warm"]["installs"], 3, "{report:#}");
    assert_close(&installs["warm"]["median_seconds"], 12.0, "warm median");
    assert_close(&installs["warm"]["p90_seconds"], 14.0, "warm p90");
    assert_eq!(installs["hot"]["installs"], 10, "{report:#}");
    assert_close(&installs["hot"]["median_seconds"], 0.0, "hot median");
    let saved = &web["time_saved"];
    // 10 × (40 − 0) + 3 × (40 − 12) − (24.5 + 10) = 400 + 84 − 34.5 = 449.5 s.
    assert_close(&saved["exact_hits_seconds"], 400.0, "exact hits");
    assert_close(&saved["partial_hits_seconds"], 84.0, "partial hits");
    assert_close(&saved["cost_seconds"], 34.5, "cost");
    assert_close(&saved["seconds"], 449.5, "saved");
    assert_close(&saved["minutes"], 449.5 / 60.0, "saved minutes");
    // Of 16 restores × 40 s cold = 640 s the builds would have spent.
    assert_close(&saved["share"], 449.5 / 640.0, "share");
    assert_eq!(saved["notes"], serde_json::json!([]), "{report:#}");

    let api = report["caches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["project"] == "api")
        .unwrap_or_else(|| panic!("{report:#}"));
    assert!(api["time_saved"]["seconds"].is_null(), "{report:#}");
    assert_eq!(
        api["time_saved"]["notes"],
        serde_json::json!(["too few misses to know the cold install: 2 timed, 3 needed"]),
        "{report:#}"
    );
    // The total counts the known pair and names the other.
    assert_close(&report["time_saved"]["seconds"], 449.5, "total saved");
    assert_close(&report["time_saved"]["share"], 449.5 / 640.0, "total share");
    assert_eq!(
        report["time_saved"]["notes"],
        serde_json::json!(["1 of 2 caches left out: their cold install is not known"]),
        "{report:#}"
    );

    let table = stats(ns, &["--cache", cache]);
    table.assert_code(0);
    assert!(
        table
            .stdout
            .contains("Time saved: 7.5 minutes (70% of the install time these builds would have spent without the cache)."),
        "{}",
        table.context()
    );
}

#[test]
fn stats_filters_by_cache_and_project() {
    let ns = "it-stats-filters";
    let mut datums = Vec::new();
    for (cache, project) in [
        ("filters-a", "filters-p1"),
        ("filters-a", "filters-p2"),
        ("filters-b", "filters-p1"),
    ] {
        datums.extend(restore(cache, project, RestoreOutcome::Hit, 1.0, 10.0));
    }
    put(ns, datums);

    let pair = |c: &str, p: &str| (c.to_owned(), p.to_owned());
    let cases: &[(&str, &[&str], Vec<Pair>)] = &[
        (
            "no filter",
            &[],
            vec![
                pair("filters-a", "filters-p1"),
                pair("filters-a", "filters-p2"),
                pair("filters-b", "filters-p1"),
            ],
        ),
        (
            "cache",
            &["--cache", "filters-a"],
            vec![
                pair("filters-a", "filters-p1"),
                pair("filters-a", "filters-p2"),
            ],
        ),
        (
            "project",
            &["--project", "filters-p1"],
            vec![
                pair("filters-a", "filters-p1"),
                pair("filters-b", "filters-p1"),
            ],
        ),
        (
            "both",
            &["--cache", "filters-b", "--project", "filters-p1"],
            vec![pair("filters-b", "filters-p1")],
        ),
        ("unknown cache", &["--cache", "filters-none"], vec![]),
    ];
    for (name, args, want) in cases {
        let report = stats_json(ns, args);
        assert_eq!(&pairs(&report), want, "case {name}\n{report:#}");
        assert_eq!(
            report["total"]["restores"].as_u64(),
            Some(want.len() as u64),
            "case {name}\n{report:#}"
        );
    }
}

#[test]
fn stats_empty_namespace_is_zero_restores() {
    let ns = "it-stats-empty";
    let report = stats_json(ns, &["--since", "24h"]);
    assert_eq!(report["caches"], serde_json::json!([]), "{report:#}");
    assert_eq!(report["total"]["restores"], 0);
    assert!(report["total"]["hit_rate"].is_null(), "{report:#}");
    assert_eq!(report["since_seconds"], 86_400);

    let run = stats(ns, &[]);
    run.assert_code(0);
    assert!(
        run.stdout.contains("no restores or saves recorded"),
        "{}",
        run.context()
    );
}

#[test]
fn stats_table_is_aligned() {
    let ns = "it-stats-table";
    let mut datums = restore("table-npm", "table-web", RestoreOutcome::Hit, 3.0, 10.0);
    datums.extend(restore(
        "table-cargo-registry",
        "table-api",
        RestoreOutcome::Miss,
        1.0,
        0.0,
    ));
    datums.extend(save("table-cargo-registry", "table-api", 20.0, 10.0));
    put(ns, datums);

    let run = stats(ns, &[]);
    run.assert_code(0);
    eprintln!("[stats table]\n{}", run.stdout);
    let lines: Vec<&str> = run.stdout.lines().collect();
    let header = lines
        .iter()
        .position(|l| l.starts_with("CACHE "))
        .unwrap_or_else(|| panic!("no header\n{}", run.context()));
    let table: Vec<&str> = lines[header..]
        .iter()
        .take_while(|l| !l.is_empty())
        .copied()
        .collect();
    assert_eq!(table.len(), 4, "header, two rows, total\n{}", run.context());
    assert!(
        table[1].starts_with("table-cargo-registry  table-api"),
        "{}",
        run.context()
    );
    assert!(
        table[2].starts_with("table-npm             table-web"),
        "{}",
        run.context()
    );
    assert!(table[3].starts_with("total "), "{}", run.context());
    // The last column is right-aligned, so aligned rows all end at the same column.
    let width = table[0].chars().count();
    for line in &table {
        assert_eq!(line.chars().count(), width, "ragged table\n{}", run.stdout);
    }
    assert!(
        run.stdout.contains("Time saved: not known yet"),
        "{}",
        run.context()
    );
}

#[test]
fn stats_without_credentials_is_one_error_line() {
    let f = Fixture::bare();
    let mut cmd = f.cachectl();
    cmd.env("AWS_ENDPOINT_URL", bridge())
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .args(["stats", "--json", "--namespace", "it-stats-nocreds"]);
    let run = cmd.run();
    eprintln!("[stats without credentials]\n{}", run.stderr);
    run.assert_code(1);
    assert_eq!(run.stdout, "", "{}", run.context());
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        2,
        "one error line and one hint\n{}",
        run.context()
    );
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains("no AWS credentials"),
        "{}",
        run.context()
    );
    assert!(lines[1].starts_with("hint: "), "{}", run.context());
}

#[test]
fn stats_denied_is_one_error_line() {
    let run = stats_at(bridge_enforcing_auth(), "it-stats-denied", &["--json"]);
    eprintln!("[stats denied]\n{}", run.stderr);
    run.assert_code(1);
    assert_eq!(run.stdout, "", "{}", run.context());
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        2,
        "one error line and one hint\n{}",
        run.context()
    );
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains("access denied"),
        "{}",
        run.context()
    );
    assert!(
        lines[1].starts_with("hint: ") && lines[1].contains("cloudwatch:ListMetrics"),
        "{}",
        run.context()
    );
}

/// An SDK configuration like `sdk_config()` builds, aimed at the bridge with test credentials.
fn sdk_config(endpoint: &str, credentials: bool) -> aws_config::SdkConfig {
    let http = aws_smithy_http_client::Builder::new().build_http();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .http_client(http)
        // The bridge reads plain CBOR; PutMetricData bodies over 10 KiB are gzipped otherwise.
        .disable_request_compression(true);
    loader = if credentials {
        loader.credentials_provider(Credentials::new("testing", "testing", None, None, "it"))
    } else {
        loader.no_credentials()
    };
    RUNTIME.block_on(loader.load())
}

#[test]
fn publish_round_trip_through_library() {
    let ns = "it-publish-round-trip";
    let events = [
        Event::Restore {
            cache: "roundtrip-npm".into(),
            outcome: RestoreOutcome::Hit,
            seconds: 1.5,
            bytes: 100,
        },
        Event::Restore {
            cache: "roundtrip-pip".into(),
            outcome: RestoreOutcome::Partial,
            seconds: 2.0,
            bytes: 50,
        },
        Event::Save {
            cache: "roundtrip-pip".into(),
            seconds: 3.0,
            bytes: 1000,
        },
    ];
    let conf = sdk_config(bridge(), true);
    let published = RUNTIME.block_on(async {
        let metrics = Metrics::with_config(conf, ns.into(), "roundtrip-project".into());
        metrics.publish(&events).await
    });
    assert_eq!(
        published,
        Published::Sent {
            datums: 14,
            calls: 1
        }
    );

    let report = stats_json(ns, &[]);
    assert_eq!(
        pairs(&report),
        [
            ("roundtrip-npm".to_owned(), "roundtrip-project".to_owned()),
            ("roundtrip-pip".to_owned(), "roundtrip-project".to_owned())
        ]
    );
    let npm = row(&report, "roundtrip-npm");
    assert_eq!(
        (npm["restores"].as_u64(), npm["hit"].as_u64()),
        (Some(1), Some(1))
    );
    assert_close(
        &npm["mean_restore_seconds"],
        1.5,
        "npm mean_restore_seconds",
    );
    assert_eq!(npm["bytes_downloaded"], 100);
    let pip = row(&report, "roundtrip-pip");
    assert_eq!(
        (pip["restores"].as_u64(), pip["partial"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        (pip["saves"].as_u64(), pip["bytes_uploaded"].as_u64()),
        (Some(1), Some(1000))
    );
    assert_close(&pip["mean_save_seconds"], 3.0, "pip mean_save_seconds");
}

#[test]
fn publish_splits_past_the_datum_limit() {
    let ns = "it-publish-split";
    // 170 restores make 1,020 datums: more than one PutMetricData may carry.
    let events: Vec<Event> = (0..170)
        .map(|i| Event::Restore {
            cache: "split-npm".into(),
            outcome: if i < 100 {
                RestoreOutcome::Hit
            } else {
                RestoreOutcome::Miss
            },
            seconds: 1.0,
            bytes: 1,
        })
        .collect();
    let conf = sdk_config(bridge(), true);
    let published = RUNTIME.block_on(async {
        Metrics::with_config(conf, ns.into(), "split-project".into())
            .publish(&events)
            .await
    });
    assert_eq!(
        published,
        Published::Sent {
            datums: 1020,
            calls: 2
        }
    );
    let report = stats_json(ns, &[]);
    let npm = row(&report, "split-npm");
    assert_eq!(
        (
            npm["restores"].as_u64(),
            npm["hit"].as_u64(),
            npm["miss"].as_u64()
        ),
        (Some(170), Some(100), Some(70)),
        "{report:#}"
    );
}

fn one_save() -> [Event; 1] {
    [Event::Save {
        cache: "npm".into(),
        seconds: 1.0,
        bytes: 1,
    }]
}

#[test]
fn publish_without_credentials_is_skipped_quietly() {
    let conf = sdk_config(bridge(), false);
    RUNTIME.block_on(async {
        let metrics = Metrics::with_config(conf, "it-publish-nocreds".into(), "p".into());
        assert!(!metrics.ready().await);
        match metrics.publish(&one_save()).await {
            Published::NotSent { warn, .. } => {
                // Warnings are for CodeBuild only.
                assert_eq!(warn, std::env::var_os("CODEBUILD_BUILD_ID").is_some());
            }
            other => panic!("published without credentials: {other:?}"),
        }
    });
}

#[test]
fn publish_gives_up_within_its_budget() {
    // Accepts connections (the kernel does) but never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let conf = sdk_config(&endpoint, true);
    let (published, elapsed) = RUNTIME.block_on(async {
        let metrics = Metrics::with_config(conf, "it-publish-silent".into(), "p".into());
        let started = Instant::now();
        let published = metrics.publish(&one_save()).await;
        (published, started.elapsed())
    });
    assert!(
        matches!(published, Published::NotSent { .. }),
        "{published:?}"
    );
    assert!(
        elapsed < cachectl::metrics::PUBLISH_BUDGET + Duration::from_millis(500),
        "publish took {elapsed:?}"
    );
    drop(silent);
}

#[test]
fn bridge_cbor_round_trip() {
    let value = serde_json::json!({
        "Namespace": "n",
        "Count": 3,
        "Negative": -7,
        "Big": 4_000_000_000u64,
        "Ratio": 0.25,
        "Flag": true,
        "List": ["a", "b", {"Nested": []}],
    });
    assert_eq!(cbor::decode(&cbor::encode(&value)).unwrap(), value);
    // Timestamps go out as tag 1 and come back as epoch seconds; doubles stay doubles.
    let answer = serde_json::json!({"Timestamps": [1795702109], "Values": [2]});
    let bytes = cbor::encode(&answer);
    assert!(bytes.windows(2).any(|w| w == [0x81, 0xc1]), "{bytes:02x?}");
    assert_eq!(
        cbor::decode(&bytes).unwrap(),
        serde_json::json!({"Timestamps": [1795702109.0], "Values": [2.0]})
    );
}

/// A project with one configured cache `name`, its builds sharing a state directory, metrics
/// on and aimed at `endpoint` (CloudWatch only: the store is local).
fn run_project(name: &str) -> (Fixture, std::path::PathBuf) {
    let f = Fixture::new(crate::support::StoreKind::Local, name);
    let src = f.dir("src");
    crate::support::write(&src.join("deps.lock"), "v1\n");
    crate::support::write(
        &src.join("cachectl.toml"),
        format!("[cache.{name}]\nkey = \"{name}-{{{{ hashFiles 'deps.lock' }}}}\"\npaths = [\"deps\"]\n"),
    );
    (f, src)
}

fn in_build(
    f: &Fixture,
    src: &std::path::Path,
    build: &str,
    ns: &str,
    endpoint: &str,
) -> crate::support::Cachectl {
    let mut cmd = f.cachectl();
    cmd.cwd(src)
        .env_remove("CACHECTL_NO_METRICS")
        .env("CACHECTL_METRICS_NAMESPACE", ns)
        .env("AWS_ENDPOINT_URL_CLOUDWATCH", endpoint)
        .env("CACHECTL_STORE", &f.store)
        .env("CACHECTL_STATE_DIR", f.root().join("state"))
        .env("CODEBUILD_BUILD_ID", format!("run-metrics:{build}"));
    cmd
}

#[test]
fn run_publishes_install_seconds_that_stats_reads_back() {
    let ns = "it-run-install-seconds";
    let cache = "run-published";
    let (f, src) = run_project(cache);
    let step = |build: &str, args: &[&str], code: i32| {
        in_build(&f, &src, build, ns, bridge())
            .args(args)
            .run()
            .assert_code(code);
    };
    // Build 1: a miss, the install runs (0.3 s) and publishes; a failing command publishes
    // nothing (its time is not an install's).
    step("b1", &["restore"], 0);
    let run = in_build(&f, &src, "b1", ns, bridge())
        .args([
            "run",
            "--cache",
            cache,
            "--",
            "sh",
            "-c",
            "sleep 0.3; mkdir -p deps; echo x > deps/x",
        ])
        .run();
    run.assert_code(0);
    assert!(!run.stderr.contains("warning"), "{}", run.context());
    step(
        "b1",
        &["run", "--cache", cache, "--", "sh", "-c", "exit 3"],
        3,
    );
    step("b1", &["save"], 0);
    // Build 2: an exact hit, `--always` runs the step anyway: a hot install.
    step("b2", &["restore"], 0);
    step(
        "b2",
        &["run", "--cache", cache, "--always", "--", "sleep", "0.1"],
        0,
    );

    // Build 3: an exact hit, the step skipped: a hot install of 0 s.
    step("b3", &["restore"], 0);
    step(
        "b3",
        &["run", "--cache", cache, "--", "sh", "-c", "exit 99"],
        0,
    );

    let report = stats_json(ns, &["--cache", cache]);
    let row = row(&report, cache);
    assert_eq!(row["project"], "run-metrics", "{report:#}");
    let installs = &row["installs"];
    assert_eq!(
        (
            installs["cold"]["installs"].as_u64(),
            installs["warm"]["installs"].as_u64(),
            installs["hot"]["installs"].as_u64()
        ),
        (Some(1), Some(0), Some(2)),
        "{report:#}"
    );
    let cold = installs["cold"]["median_seconds"].as_f64().unwrap();
    assert!((0.3..30.0).contains(&cold), "cold {cold}\n{report:#}");
    // Hot: the skip's 0 s and the --always step's time (both in one CloudWatch minute, so
    // their medians are its average; the seconds add up exactly, checked below).
    // What the state recorded is what was published.
    let state: Value = serde_json::from_str(
        &std::fs::read_to_string(f.root().join("state/cachectl-state-run-metrics_b2.json"))
            .unwrap(),
    )
    .unwrap();
    assert_close(
        &installs["hot"]["seconds"],
        state["runs"][cache]["seconds"].as_f64().unwrap(),
        "hot seconds",
    );
    assert_eq!(state["runs"][cache]["published"], true, "{state:#}");
}

#[test]
fn save_publishes_the_install_seconds_run_could_not() {
    let ns = "it-run-pending-install";
    let cache = "run-pending";
    let (f, src) = run_project(cache);
    // CloudWatch unreachable while the install runs (inside CodeBuild: a warning, exit 0).
    let dead = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let run = in_build(&f, &src, "b1", ns, &dead)
        .args(["run", "--cache", cache, "--", "sh", "-c", "sleep 0.2"])
        .run();
    run.assert_code(0);
    assert!(
        run.stderr
            .contains("warning: CloudWatch metrics not published"),
        "{}",
        run.context()
    );
    let state_file = f.root().join("state/cachectl-state-run-metrics_b1.json");
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap();
    assert_eq!(state["runs"][cache]["published"], false, "{state:#}");
    let seconds = state["runs"][cache]["seconds"].as_f64().unwrap();
    // A second run of the cache fails (nothing of its own to send): the first one's time
    // stays pending.
    in_build(&f, &src, "b1", ns, &dead)
        .args(["run", "--cache", cache, "--", "sh", "-c", "exit 4"])
        .run()
        .assert_code(4);
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap();
    assert_eq!(
        state["pending"],
        serde_json::json!([{"cache": cache, "restore": null, "seconds": seconds}]),
        "{state:#}"
    );
    // The save, with CloudWatch back, sends it.
    std::fs::create_dir_all(src.join("deps")).unwrap();
    in_build(&f, &src, "b1", ns, bridge())
        .args(["save"])
        .run()
        .assert_code(0);
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap();
    assert_eq!(state["pending"], serde_json::json!([]), "{state:#}");
    let report = stats_json(ns, &["--cache", cache]);
    let cold = &row(&report, cache)["installs"]["cold"];
    assert_eq!(cold["installs"], 1, "{report:#}");
    assert_close(
        &cold["seconds"],
        seconds,
        "the recorded seconds, published by save",
    );
    // A second save does not send it again.
    in_build(&f, &src, "b1", ns, bridge())
        .args(["save"])
        .run()
        .assert_code(0);
    let report = stats_json(ns, &["--cache", cache]);
    assert_eq!(
        row(&report, cache)["installs"]["cold"]["installs"],
        1,
        "{report:#}"
    );
}

/// `datums` stamped `at`.
fn stamped(datums: Vec<MetricDatum>, at: std::time::SystemTime) -> Vec<MetricDatum> {
    datums
        .into_iter()
        .map(|d| {
            MetricDatum::builder()
                .metric_name(d.metric_name().unwrap())
                .value(d.value().unwrap())
                .set_unit(d.unit().cloned())
                .set_dimensions(Some(d.dimensions().to_vec()))
                .timestamp(aws_sdk_cloudwatch::primitives::DateTime::from(at))
                .build()
        })
        .collect()
}

/// `stat` of `TimeSavedSeconds` of `project` over the UTC day starting `day`.
fn time_saved_datum(ns: &str, project: &str, day: std::time::SystemTime, stat: &str) -> Vec<f64> {
    use aws_sdk_cloudwatch::types::{Metric, MetricDataQuery, MetricStat};
    let metric = Metric::builder()
        .namespace(ns)
        .metric_name("TimeSavedSeconds")
        .dimensions(
            Dimension::builder()
                .name("ProjectName")
                .value(project)
                .build(),
        )
        .build();
    let query = MetricDataQuery::builder()
        .id("t")
        .metric_stat(
            MetricStat::builder()
                .metric(metric)
                .period(86_400)
                .stat(stat)
                .build(),
        )
        .build();
    let out = RUNTIME
        .block_on(
            cloudwatch()
                .get_metric_data()
                .metric_data_queries(query)
                .start_time(aws_sdk_cloudwatch::primitives::DateTime::from(day))
                .end_time(aws_sdk_cloudwatch::primitives::DateTime::from(
                    day + Duration::from_secs(86_400),
                ))
                .send(),
        )
        .unwrap();
    out.metric_data_results()[0].values().to_vec()
}

#[test]
fn stats_publish_sends_each_projects_time_saved_for_one_day_once() {
    let ns = "it-stats-publish";
    let now = std::time::SystemTime::now();
    let today = now.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() / 86_400 * 86_400;
    let day = std::time::UNIX_EPOCH + Duration::from_secs(today - 3 * 86_400);
    let hour = |h: u64| day + Duration::from_secs(h * 3600);
    let day_text = cachectl_day(day);
    let mut datums = Vec::new();
    // The day: 4 exact hits of 1 s and a miss of 0.5 s, one save of 2 s.
    for h in 0..4 {
        datums.extend(stamped(
            restore("pub-npm", "pub-web", RestoreOutcome::Hit, 1.0, 10.0),
            hour(1 + h),
        ));
    }
    datums.extend(stamped(
        restore("pub-npm", "pub-web", RestoreOutcome::Miss, 0.5, 0.0),
        hour(6),
    ));
    datums.extend(stamped(save("pub-npm", "pub-web", 2.0, 10.0), hour(6)));
    // The days before: three timed cold installs, median 40 s.
    for (i, s) in [30.0, 50.0, 40.0].into_iter().enumerate() {
        let at = day - Duration::from_secs(86_400 * (2 + i as u64));
        datums.extend(stamped(
            vec![install("pub-npm", "pub-web", "miss", s, 0)],
            at,
        ));
        // And three exact hits that skipped the install.
        let at = at + Duration::from_secs(3600);
        datums.extend(stamped(
            vec![install("pub-npm", "pub-web", "hit", 0.0, 0)],
            at,
        ));
    }
    // A project whose cold install is not known that day: reported, not published.
    datums.extend(stamped(
        restore("pub-pip", "pub-api", RestoreOutcome::Hit, 1.0, 10.0),
        hour(2),
    ));
    // The day after: not that day's.
    datums.extend(stamped(
        restore("pub-npm", "pub-web", RestoreOutcome::Hit, 9.0, 10.0),
        hour(25),
    ));
    put(ns, datums);

    let publish = || {
        let f = Fixture::bare();
        let mut cmd = f.cachectl();
        cmd.env("AWS_ENDPOINT_URL", bridge())
            .env_remove("CACHECTL_NO_METRICS")
            .args([
                "stats",
                "--json",
                "--publish",
                "--namespace",
                ns,
                "--day",
                &day_text,
            ]);
        let run = cmd.run();
        run.assert_code(0);
        run.json()
    };
    let report = publish();
    // 4 hits × 40 s − (4 × 1 + 0.5) s restores − 2 s save = 153.5 s.
    assert_eq!(
        report,
        serde_json::json!({
            "namespace": ns,
            "day": day_text,
            "projects": [
                {"project": "pub-api", "seconds": null, "minutes": null, "caches": 1, "caches_counted": 0},
                {"project": "pub-web", "seconds": 153.5, "minutes": 153.5 / 60.0, "caches": 1, "caches_counted": 1},
            ],
            "published": 1,
        }),
        "{report:#}"
    );
    assert_eq!(time_saved_datum(ns, "pub-web", day, "Maximum"), [153.5]);
    assert!(time_saved_datum(ns, "pub-api", day, "Maximum").is_empty());
    // Published again (a retried schedule): the day's maximum, which the dashboard reads,
    // stays the same.
    publish();
    assert_eq!(time_saved_datum(ns, "pub-web", day, "SampleCount"), [2.0]);
    assert_eq!(time_saved_datum(ns, "pub-web", day, "Maximum"), [153.5]);
}

/// `YYYY-MM-DD` of a UTC midnight.
fn cachectl_day(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()[..10].to_owned()
}
