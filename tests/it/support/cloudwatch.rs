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

/// Just enough CBOR (RFC 8949) for CloudWatch's shapes: maps, arrays, text, numbers, booleans,
/// null, and timestamps (tag 1, epoch seconds).
pub mod cbor {
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
