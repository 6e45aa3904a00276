//! CloudWatch metrics against moto: `cachectl stats` reads back what was put with the SDK, and
//! `cachectl::metrics::Metrics::publish` puts what stats reads. Each test owns a namespace and
//! cache names of its own (moto's GetMetricData ignores the namespace once dimensions are given).
//!
//! aws-sdk-cloudwatch 1.100 and later speak Smithy RPC v2 CBOR, which moto 5.2.5 does not serve:
//! it serves CloudWatch's query and JSON protocols (getmoto/moto#9195). So the SDK talks to a
//! `Bridge` on loopback that re-sends each CBOR call to moto as the same call in the JSON
//! protocol and turns moto's JSON answer back into CBOR; moto still does the CloudWatch work.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{LazyLock, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use aws_sdk_cloudwatch::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use cachectl::metrics::{Event, Metrics, Published};
use cachectl::output::RestoreOutcome;
use serde_json::Value;

use crate::support::{moto, Fixture, Run};

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
});

static BRIDGE: OnceLock<Bridge> = OnceLock::new();
static BRIDGE_AUTH: OnceLock<Bridge> = OnceLock::new();

/// The bridge to the shared moto.
fn bridge() -> &'static str {
    &BRIDGE
        .get_or_init(|| Bridge::start(&moto::moto().endpoint))
        .endpoint
}

/// The bridge to the moto that checks credentials (every call gets a 403).
fn bridge_enforcing_auth() -> &'static str {
    &BRIDGE_AUTH
        .get_or_init(|| Bridge::start(&moto::moto_enforcing_auth().endpoint))
        .endpoint
}

fn cloudwatch() -> aws_sdk_cloudwatch::Client {
    let http = aws_smithy_http_client::Builder::new().build_http();
    let config = aws_sdk_cloudwatch::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "it"))
        .endpoint_url(bridge())
        .http_client(http)
        .build();
    aws_sdk_cloudwatch::Client::from_conf(config)
}

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
    let saved = &report["time_saved"];
    assert!(
        saved["seconds"].is_null(),
        "time saved is not measurable\n{report:#}"
    );
    assert_eq!(saved["cached_restores"], 4);
    assert_close(&saved["cost_seconds"], 11.0 + 2.0 + 11.0, "cost_seconds");
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
        run.stdout.contains("Time saved: not measured"),
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
            Published::NotSent { warned, .. } => {
                // Warnings are for CodeBuild only.
                assert_eq!(warned, std::env::var_os("CODEBUILD_BUILD_ID").is_some());
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

/// A loopback server turning CloudWatch's RPC v2 CBOR calls into moto's JSON protocol.
struct Bridge {
    endpoint: String,
}

const CBOR_PATH: &str = "/service/GraniteServiceVersion20100801/operation/";
const JSON_TARGET: &str = "GraniteServiceVersion20100801";

impl Bridge {
    fn start(moto_endpoint: &str) -> Bridge {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the bridge");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let upstream = moto_endpoint
            .strip_prefix("http://")
            .expect("moto on http")
            .to_owned();
        thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let upstream = upstream.clone();
                thread::spawn(move || {
                    let _ = serve(conn, &upstream);
                });
            }
        });
        Bridge { endpoint }
    }
}

/// One request per connection (the answer says `Connection: close`).
fn serve(mut conn: TcpStream, upstream: &str) -> io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let (head, body) = read_message(&mut conn)?;
    let (status, headers, body) = match forward(&head, &body, upstream) {
        Ok(answer) => answer,
        Err(message) => (
            500,
            Vec::new(),
            cbor::encode(&serde_json::json!({"__type": "BridgeError", "message": message})),
        ),
    };
    let mut out = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/cbor\r\nsmithy-protocol: rpc-v2-cbor\r\n\
         Content-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    conn.write_all(out.as_bytes())?;
    conn.write_all(&body)?;
    conn.flush()
}

/// Head (up to the blank line) and body (`Content-Length` bytes, else to EOF).
fn read_message(stream: &mut TcpStream) -> io::Result<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let split = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "no message head",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let mut body = buf[split + 4..].to_vec();
    match header(&head, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        Some(len) => {
            while body.len() < len {
                let n = stream.read(&mut chunk)?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
            body.truncate(len);
        }
        None if head.starts_with("HTTP/") => {
            stream.read_to_end(&mut body)?;
        }
        None => {}
    }
    Ok((head, body))
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

type Answer = (u16, Vec<(String, String)>, Vec<u8>);

fn forward(head: &str, body: &[u8], upstream: &str) -> Result<Answer, String> {
    let path = head.split(' ').nth(1).unwrap_or_default();
    let op = path
        .strip_prefix(CBOR_PATH)
        .ok_or_else(|| format!("not a CloudWatch RPC v2 path: {path}"))?;
    if header(head, "content-encoding").is_some_and(|e| e != "identity") {
        return Err("the test bridge reads uncompressed bodies only".into());
    }
    let request = if body.is_empty() {
        serde_json::json!({})
    } else {
        cbor::decode(body)?
    };
    let json = serde_json::to_vec(&request).unwrap();
    let mut out = format!(
        "POST / HTTP/1.1\r\nHost: {upstream}\r\nContent-Type: application/x-amz-json-1.0\r\n\
         X-Amz-Target: {JSON_TARGET}.{op}\r\nx-amzn-query-mode: true\r\nContent-Length: {}\r\n\
         Connection: close\r\n",
        json.len()
    );
    for name in ["authorization", "x-amz-date", "x-amz-security-token"] {
        if let Some(value) = header(head, name) {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    out.push_str("\r\n");
    let mut moto = TcpStream::connect(upstream).map_err(|e| format!("connect to moto: {e}"))?;
    moto.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    moto.write_all(out.as_bytes())
        .and_then(|()| moto.write_all(&json))
        .map_err(|e| format!("send to moto: {e}"))?;
    let (answer_head, answer) = read_message(&mut moto).map_err(|e| format!("moto: {e}"))?;
    let status: u16 = answer_head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("moto answered {answer_head:?}"))?;
    let value = if answer.iter().all(u8::is_ascii_whitespace) {
        serde_json::json!({})
    } else {
        serde_json::from_slice(&answer).unwrap_or_else(|_| xml_error(&answer))
    };
    let headers = ["x-amzn-query-error", "x-amzn-requestid"]
        .iter()
        .filter_map(|name| header(&answer_head, name).map(|v| (name.to_string(), v.to_owned())))
        .collect();
    Ok((status, headers, cbor::encode(&value)))
}

/// moto answers some errors (its auth checks) in the query protocol's XML whatever protocol
/// was asked: keep their code and message.
fn xml_error(body: &[u8]) -> Value {
    let text = String::from_utf8_lossy(body);
    let element = |name: &str| {
        let start = text.find(&format!("<{name}>"))? + name.len() + 2;
        let end = start + text[start..].find(&format!("</{name}>"))?;
        Some(text[start..end].to_owned())
    };
    serde_json::json!({
        "__type": element("Code").unwrap_or_else(|| "NotJson".into()),
        "message": element("Message").unwrap_or_else(|| text.trim().to_owned()),
    })
}

/// Just enough CBOR (RFC 8949) for CloudWatch's shapes: maps, arrays, text, numbers, booleans,
/// null, and timestamps (tag 1, epoch seconds).
mod cbor {
    use serde_json::{Map, Number, Value};

    /// Answer members that are timestamps (tag 1) and doubles in CloudWatch's model; JSON
    /// cannot tell `2` the double from `2` the integer, CBOR decoders can.
    const TIMESTAMPS: [&str; 2] = ["Timestamp", "Timestamps"];
    const DOUBLES: [&str; 7] = [
        "Value",
        "Values",
        "Sum",
        "SampleCount",
        "Average",
        "Minimum",
        "Maximum",
    ];

    pub fn encode(value: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        put(&mut out, value, "");
        out
    }

    fn head(out: &mut Vec<u8>, major: u8, n: u64) {
        let m = major << 5;
        match n {
            0..=23 => out.push(m | n as u8),
            24..=0xff => out.extend([m | 24, n as u8]),
            0x100..=0xffff => {
                out.push(m | 25);
                out.extend((n as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                out.push(m | 26);
                out.extend((n as u32).to_be_bytes());
            }
            _ => {
                out.push(m | 27);
                out.extend(n.to_be_bytes());
            }
        }
    }

    fn double(out: &mut Vec<u8>, v: f64) {
        out.push(0xfb);
        out.extend(v.to_be_bytes());
    }

    /// `key` is the member the value belongs to (array items inherit it).
    fn put(out: &mut Vec<u8>, value: &Value, key: &str) {
        match value {
            Value::Null => out.push(0xf6),
            Value::Bool(b) => out.push(if *b { 0xf5 } else { 0xf4 }),
            Value::Number(n) => {
                let f = n.as_f64().unwrap_or(0.0);
                if TIMESTAMPS.contains(&key) {
                    out.push(0xc1);
                    double(out, f);
                } else if DOUBLES.contains(&key) || n.is_f64() {
                    double(out, f);
                } else if let Some(u) = n.as_u64() {
                    head(out, 0, u);
                } else {
                    let i = n.as_i64().unwrap_or(0);
                    head(out, 1, (-1 - i) as u64);
                }
            }
            Value::String(s) => {
                head(out, 3, s.len() as u64);
                out.extend(s.as_bytes());
            }
            Value::Array(items) => {
                head(out, 4, items.len() as u64);
                for item in items {
                    put(out, item, key);
                }
            }
            Value::Object(members) => {
                // RPC v2 omits absent members rather than sending null.
                let present: Vec<_> = members.iter().filter(|(_, v)| !v.is_null()).collect();
                head(out, 5, present.len() as u64);
                for (k, v) in present {
                    head(out, 3, k.len() as u64);
                    out.extend(k.as_bytes());
                    put(out, v, k);
                }
            }
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Value, String> {
        let mut d = Decoder { bytes, pos: 0 };
        let value = d.item()?.ok_or("a break where a value belongs")?;
        if d.pos != bytes.len() {
            return Err(format!("{} bytes after the value", bytes.len() - d.pos));
        }
        Ok(value)
    }

    struct Decoder<'a> {
        bytes: &'a [u8],
        pos: usize,
    }

    impl Decoder<'_> {
        fn take(&mut self, n: usize) -> Result<&[u8], String> {
            let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
            let end = end.ok_or_else(|| format!("truncated at byte {}", self.pos))?;
            let out = &self.bytes[self.pos..end];
            self.pos = end;
            Ok(out)
        }

        fn be(&mut self, n: usize) -> Result<u64, String> {
            Ok(self
                .take(n)?
                .iter()
                .fold(0, |acc, b| acc << 8 | u64::from(*b)))
        }

        /// The argument of a head; None for indefinite length.
        fn argument(&mut self, info: u8) -> Result<Option<u64>, String> {
            Ok(Some(match info {
                0..=23 => u64::from(info),
                24 => self.be(1)?,
                25 => self.be(2)?,
                26 => self.be(4)?,
                27 => self.be(8)?,
                31 => return Ok(None),
                _ => return Err(format!("reserved additional info {info}")),
            }))
        }

        /// The next data item; None for a break (end of an indefinite item).
        fn item(&mut self) -> Result<Option<Value>, String> {
            let initial = self.take(1)?[0];
            let (major, info) = (initial >> 5, initial & 0x1f);
            if major == 7 {
                return self.simple(info);
            }
            let arg = self.argument(info)?;
            let value = match (major, arg) {
                (0, Some(n)) => Value::from(n),
                (1, Some(n)) => Value::from(-1 - i64::try_from(n).map_err(|e| e.to_string())?),
                (3, Some(n)) => Value::String(self.text(n)?),
                (3, None) => {
                    let mut s = String::new();
                    while let Some(chunk) = self.item()? {
                        s.push_str(chunk.as_str().ok_or("non-text chunk in a text string")?);
                    }
                    Value::String(s)
                }
                (4, n) => {
                    let mut items = Vec::new();
                    loop {
                        if n.is_some_and(|n| items.len() as u64 == n) {
                            break;
                        }
                        match self.item()? {
                            Some(v) => items.push(v),
                            None if n.is_none() => break,
                            None => return Err("break in a definite array".into()),
                        }
                    }
                    Value::Array(items)
                }
                (5, n) => {
                    let mut members = Map::new();
                    let mut count = 0u64;
                    loop {
                        if n.is_some_and(|n| count == n) {
                            break;
                        }
                        let key = match self.item()? {
                            Some(Value::String(k)) => k,
                            Some(other) => return Err(format!("map key {other}")),
                            None if n.is_none() => break,
                            None => return Err("break in a definite map".into()),
                        };
                        let value = self.item()?.ok_or("break where a map value belongs")?;
                        members.insert(key, value);
                        count += 1;
                    }
                    Value::Object(members)
                }
                // Epoch seconds: the JSON protocol sends timestamps as plain numbers.
                (6, Some(1)) => self.item()?.ok_or("empty timestamp")?,
                (6, Some(tag)) => return Err(format!("unsupported tag {tag}")),
                (2, _) => return Err("byte strings are not used by these calls".into()),
                _ => return Err(format!("malformed head byte {initial:#04x}")),
            };
            Ok(Some(value))
        }

        fn text(&mut self, n: u64) -> Result<String, String> {
            let bytes = self.take(usize::try_from(n).map_err(|e| e.to_string())?)?;
            String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string())
        }

        fn simple(&mut self, info: u8) -> Result<Option<Value>, String> {
            let float = |v: f64| {
                Number::from_f64(v)
                    .map(Value::Number)
                    .ok_or_else(|| format!("{v} has no JSON form"))
            };
            Ok(Some(match info {
                20 => Value::Bool(false),
                21 => Value::Bool(true),
                22 | 23 => Value::Null,
                25 => float(half(self.be(2)? as u16))?,
                26 => float(f64::from(f32::from_bits(self.be(4)? as u32)))?,
                27 => float(f64::from_bits(self.be(8)?))?,
                31 => return Ok(None),
                _ => return Err(format!("unsupported simple value {info}")),
            }))
        }
    }

    /// IEEE 754 binary16 to f64.
    fn half(h: u16) -> f64 {
        let sign = if h >> 15 == 1 { -1.0 } else { 1.0 };
        let exponent = i32::from((h >> 10) & 0x1f);
        let fraction = f64::from(h & 0x3ff);
        match exponent {
            0 => sign * fraction * 2f64.powi(-24),
            31 if fraction == 0.0 => sign * f64::INFINITY,
            31 => f64::NAN,
            e => sign * (1.0 + fraction / 1024.0) * 2f64.powi(e - 15),
        }
    }
}
