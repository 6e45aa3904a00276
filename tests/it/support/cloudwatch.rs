//! CloudWatch on loopback for the tests: a bridge in front of moto, and clients aimed at it.
//!
//! aws-sdk-cloudwatch 1.100 and later speak Smithy RPC v2 CBOR, which moto 5.2.5 does not serve:
//! it serves CloudWatch's query and JSON protocols (getmoto/moto#9195). So the SDK (the tests'
//! and cachectl's, through `AWS_ENDPOINT_URL_CLOUDWATCH` or `AWS_ENDPOINT_URL`) talks to a
//! `Bridge` on loopback that re-sends each CBOR call to moto as the same call in the JSON
//! protocol and turns moto's JSON answer back into CBOR; moto still does the CloudWatch work.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{LazyLock, OnceLock};
use std::thread;
use std::time::Duration;

use aws_sdk_cloudwatch::config::{BehaviorVersion, Credentials, Region};
use serde_json::Value;

use super::moto;

/// One runtime for the tests' CloudWatch calls: connection pools belong to the runtime that
/// opened them.
pub static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
});

static BRIDGE: OnceLock<Bridge> = OnceLock::new();
static BRIDGE_AUTH: OnceLock<Bridge> = OnceLock::new();

/// The bridge to the shared moto: `http://127.0.0.1:PORT`.
pub fn bridge() -> &'static str {
    &BRIDGE
        .get_or_init(|| Bridge::start(&moto::moto().endpoint))
        .endpoint
}

/// The bridge to the moto that checks credentials (every call gets a 403).
pub fn bridge_enforcing_auth() -> &'static str {
    &BRIDGE_AUTH
        .get_or_init(|| Bridge::start(&moto::moto_enforcing_auth().endpoint))
        .endpoint
}

/// A CloudWatch client with the test credentials, aimed at the bridge.
pub fn client() -> aws_sdk_cloudwatch::Client {
    let http = aws_smithy_http_client::Builder::new().build_http();
    let config = aws_sdk_cloudwatch::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "it"))
        .endpoint_url(bridge())
        .http_client(http)
        // Past 10 KB the SDK gzips PutMetricData; the bridge reads plain bodies only.
        .disable_request_compression(true)
        .build();
    aws_sdk_cloudwatch::Client::from_conf(config)
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

/// CloudWatch's shapes between JSON (moto's side) and CBOR (the SDK's side), on ciborium. The
/// codec is ciborium's; what is ours is the model knowledge JSON lacks: which members are
/// timestamps (tag 1, epoch seconds) and which numbers are doubles.
pub mod cbor {
    use ciborium::value::Value as Cbor;
    use serde_json::{Number, Value};

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
        ciborium::into_writer(&to_cbor(value, ""), &mut out).expect("CBOR into memory");
        out
    }

    /// `key` is the member the value belongs to (array items inherit it).
    fn to_cbor(value: &Value, key: &str) -> Cbor {
        match value {
            Value::Null => Cbor::Null,
            Value::Bool(b) => Cbor::Bool(*b),
            Value::Number(n) => {
                let f = n.as_f64().unwrap_or(0.0);
                if TIMESTAMPS.contains(&key) {
                    Cbor::Tag(1, Box::new(Cbor::Float(f)))
                } else if DOUBLES.contains(&key) || n.is_f64() {
                    Cbor::Float(f)
                } else if let Some(u) = n.as_u64() {
                    Cbor::Integer(u.into())
                } else {
                    Cbor::Integer(n.as_i64().unwrap_or(0).into())
                }
            }
            Value::String(s) => Cbor::Text(s.clone()),
            Value::Array(items) => Cbor::Array(items.iter().map(|v| to_cbor(v, key)).collect()),
            // RPC v2 omits absent members rather than sending null.
            Value::Object(members) => Cbor::Map(
                members
                    .iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (Cbor::Text(k.clone()), to_cbor(v, k)))
                    .collect(),
            ),
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Value, String> {
        let value: Cbor = ciborium::from_reader(bytes).map_err(|e| e.to_string())?;
        from_cbor(value)
    }

    fn from_cbor(value: Cbor) -> Result<Value, String> {
        Ok(match value {
            Cbor::Null => Value::Null,
            Cbor::Bool(b) => Value::Bool(b),
            Cbor::Integer(i) => {
                let i = i128::from(i);
                match (u64::try_from(i), i64::try_from(i)) {
                    (Ok(u), _) => Value::from(u),
                    (_, Ok(n)) => Value::from(n),
                    _ => return Err(format!("integer {i} out of range")),
                }
            }
            Cbor::Float(f) => Number::from_f64(f)
                .map(Value::Number)
                .ok_or_else(|| format!("{f} has no JSON form"))?,
            Cbor::Text(s) => Value::String(s),
            Cbor::Array(items) => {
                Value::Array(items.into_iter().map(from_cbor).collect::<Result<_, _>>()?)
            }
            Cbor::Map(members) => {
                let mut object = serde_json::Map::new();
                for (k, v) in members {
                    let Cbor::Text(k) = k else {
                        return Err(format!("map key {k:?}"));
                    };
                    object.insert(k, from_cbor(v)?);
                }
                Value::Object(object)
            }
            // Epoch seconds: the JSON protocol sends timestamps as plain numbers.
            Cbor::Tag(1, inner) => from_cbor(*inner)?,
            Cbor::Tag(tag, _) => return Err(format!("unsupported tag {tag}")),
            Cbor::Bytes(_) => return Err("byte strings are not used by these calls".into()),
            other => return Err(format!("unsupported CBOR value {other:?}")),
        })
    }
}
