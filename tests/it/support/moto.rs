//! `moto_server` on 127.0.0.1, started once per test run, plus a small S3 client for fixtures.
//!
//! Statics are never dropped, so moto cannot be killed from a destructor. Instead it runs under
//! `sh`, which waits on its stdin: a pipe from this process. When the test process exits, for any
//! reason, the pipe closes and the shell kills moto.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{LazyLock, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;

/// Where to find moto: `CACHECTL_MOTO_SERVER`, else `moto_server` on PATH.
pub const MOTO_ENV: &str = "CACHECTL_MOTO_SERVER";

const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// An object to put: name, body and user metadata (`x-amz-meta-*` without the prefix).
pub type PlantedObject = (String, Vec<u8>, Vec<(String, String)>);

pub struct Moto {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    client: aws_sdk_s3::Client,
    /// Kept open for the life of the process; its closing kills moto.
    _lifeline: Mutex<ChildStdin>,
    _shell: Mutex<Child>,
}

static MOTO: OnceLock<Moto> = OnceLock::new();
static MOTO_AUTH: OnceLock<Moto> = OnceLock::new();

/// One multi-threaded runtime for every SDK call the harness makes: connection pools belong to
/// the runtime that opened them.
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
});

/// The shared moto for ordinary S3 tests: no auth checks, a bucket per test.
pub fn moto() -> &'static Moto {
    MOTO.get_or_init(|| Moto::start(&[]))
}

/// A second moto with `INITIAL_NO_AUTH_ACTION_COUNT=0`: it checks signatures against its own
/// IAM, so the test credentials are unknown and every S3 call gets a real 403.
pub fn moto_enforcing_auth() -> &'static Moto {
    MOTO_AUTH.get_or_init(|| Moto::start(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]))
}

/// A valid, unique bucket name for `test`: lowercase `[a-z0-9-]`, at most 63 bytes.
pub fn bucket_name(test: &str) -> String {
    let mut name: String = format!("it-{test}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    if name.len() > 63 {
        let digest = blake3::hash(test.as_bytes()).to_hex();
        name.truncate(54);
        name.push('-');
        name.push_str(&digest[..8]);
    }
    name.trim_end_matches('-').to_owned()
}

/// A port that was free a moment ago: bind port 0, read it, release it.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().unwrap().port()
}

impl Moto {
    fn start(env: &[(&str, &str)]) -> Moto {
        let exe = std::env::var_os(MOTO_ENV).unwrap_or_else(|| "moto_server".into());
        let mut last_error = String::new();
        // The port can be taken between free_port() and moto's bind: retry with another.
        for _ in 0..3 {
            let port = free_port();
            let log = std::env::temp_dir().join(format!("cachectl-it-moto-{port}.log"));
            // fd 3 keeps the pipe: background jobs of a non-interactive sh get /dev/null as stdin.
            let script = r#"exec 3<&0
"$0" -H 127.0.0.1 -p "$1" >"$2" 2>&1 </dev/null &
pid=$!
{ read -r _ <&3; kill "$pid" 2>/dev/null; } &
wait "$pid""#;
            let mut command = Command::new("sh");
            command
                .arg("-c")
                .arg(script)
                .arg(&exe)
                .arg(port.to_string())
                .arg(&log)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            for (name, value) in env {
                command.env(name, value);
            }
            let mut shell = command.spawn().expect("spawn sh for moto_server");
            let lifeline = shell.stdin.take().unwrap();
            let endpoint = format!("http://127.0.0.1:{port}");
            let started = Instant::now();
            loop {
                if answers_http(port) {
                    return Moto {
                        client: s3_client(&endpoint),
                        endpoint,
                        _lifeline: Mutex::new(lifeline),
                        _shell: Mutex::new(shell),
                    };
                }
                if let Some(status) = shell.try_wait().unwrap() {
                    let output = std::fs::read_to_string(&log).unwrap_or_default();
                    last_error = format!(
                        "moto_server ({}) exited with {status} on port {port}. Install it with \
                         `pip install 'moto[server]'` or set {MOTO_ENV}.\nlog {}:\n{output}",
                        exe.to_string_lossy(),
                        log.display()
                    );
                    break;
                }
                if started.elapsed() > STARTUP_TIMEOUT {
                    drop(lifeline);
                    let _ = shell.wait();
                    let output = std::fs::read_to_string(&log).unwrap_or_default();
                    panic!(
                        "moto_server did not answer on port {port} within {STARTUP_TIMEOUT:?}\n\
                         log {}:\n{output}",
                        log.display()
                    );
                }
                thread::sleep(Duration::from_millis(100));
            }
        }
        panic!("{last_error}");
    }

    /// An SDK configuration for this server (fixed test credentials, us-east-1), for
    /// building cachectl's own clients in-process (`S3Store::with_config`).
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "it"))
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .load()
            .await
    }

    pub fn create_bucket(&self, bucket: &str) {
        let result = RUNTIME.block_on(self.client.create_bucket().bucket(bucket).send());
        if let Err(e) = result {
            panic!(
                "create bucket {bucket} on {}: {}",
                self.endpoint,
                describe(&e)
            );
        }
    }

    /// Object names under `prefix`, in listing order (all pages).
    pub fn list(&self, bucket: &str, prefix: &str) -> Vec<String> {
        RUNTIME.block_on(async {
            let mut names = Vec::new();
            let mut pages = self
                .client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.unwrap_or_else(|e| panic!("list {bucket}: {}", describe(&e)));
                for object in page.contents() {
                    names.push(object.key().unwrap_or_default().to_owned());
                }
            }
            names
        })
    }

    pub fn get_object(&self, bucket: &str, name: &str) -> Vec<u8> {
        RUNTIME.block_on(async {
            let object = self
                .client
                .get_object()
                .bucket(bucket)
                .key(name)
                .send()
                .await
                .unwrap_or_else(|e| panic!("get {bucket}/{name}: {}", describe(&e)));
            object.body.collect().await.unwrap().into_bytes().to_vec()
        })
    }

    /// User metadata (`x-amz-meta-*` without the prefix) of an object.
    pub fn metadata(&self, bucket: &str, name: &str) -> Vec<(String, String)> {
        let head = RUNTIME
            .block_on(self.client.head_object().bucket(bucket).key(name).send())
            .unwrap_or_else(|e| panic!("head {bucket}/{name}: {}", describe(&e)));
        let mut pairs: Vec<(String, String)> = head
            .metadata()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        pairs.sort();
        pairs
    }

    /// Overwrites `name` with `bytes`, keeping its user metadata.
    pub fn replace_object(&self, bucket: &str, name: &str, bytes: &[u8]) {
        let metadata = self.metadata(bucket, name);
        let mut put = self
            .client
            .put_object()
            .bucket(bucket)
            .key(name)
            .body(ByteStream::from(bytes.to_vec()));
        for (key, value) in metadata {
            put = put.metadata(key, value);
        }
        RUNTIME
            .block_on(put.send())
            .unwrap_or_else(|e| panic!("put {bucket}/{name}: {}", describe(&e)));
    }

    /// A two-part multipart upload through the SDK, as cachectl makes for big archives.
    /// Err carries the SDK's whole error (moto 5.2.1 answers CompleteMultipartUpload with a
    /// root element the Rust SDK rejects: getmoto/moto#10055).
    pub fn multipart_upload(&self, bucket: &str, name: &str) -> Result<(), String> {
        use aws_sdk_s3::error::DisplayErrorContext;
        use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
        RUNTIME.block_on(async {
            let created = self
                .client
                .create_multipart_upload()
                .bucket(bucket)
                .key(name)
                .send()
                .await
                .map_err(|e| format!("create: {}", DisplayErrorContext(&e)))?;
            let upload_id = created.upload_id().unwrap_or_default().to_owned();
            let mut parts = Vec::new();
            for (number, len) in [(1, 5 << 20), (2, 100)] {
                let out = self
                    .client
                    .upload_part()
                    .bucket(bucket)
                    .key(name)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .body(ByteStream::from(vec![b'x'; len]))
                    .send()
                    .await
                    .map_err(|e| format!("part {number}: {}", DisplayErrorContext(&e)))?;
                parts.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(out.e_tag().map(str::to_owned))
                        .build(),
                );
            }
            self.client
                .complete_multipart_upload()
                .bucket(bucket)
                .key(name)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| format!("complete: {}", DisplayErrorContext(&e)))?;
            Ok(())
        })
    }

    /// Puts every `(name, body, user metadata)` object, 16 requests in flight.
    pub fn put_many(&self, bucket: &str, objects: Vec<PlantedObject>) {
        use futures_util::stream::{self, StreamExt};
        RUNTIME.block_on(async {
            stream::iter(objects)
                .map(|(name, body, metadata)| {
                    let mut put = self
                        .client
                        .put_object()
                        .bucket(bucket)
                        .key(&name)
                        .body(ByteStream::from(body));
                    for (k, v) in metadata {
                        put = put.metadata(k, v);
                    }
                    async move {
                        put.send()
                            .await
                            .unwrap_or_else(|e| panic!("put {bucket}/{name}: {}", describe(&e)));
                    }
                })
                .buffer_unordered(16)
                .collect::<Vec<()>>()
                .await;
        });
    }

    /// Starts a multipart upload of `name` and leaves it open, as a killed save does.
    pub fn start_upload(&self, bucket: &str, name: &str) -> String {
        RUNTIME
            .block_on(
                self.client
                    .create_multipart_upload()
                    .bucket(bucket)
                    .key(name)
                    .send(),
            )
            .unwrap_or_else(|e| panic!("create upload {bucket}/{name}: {}", describe(&e)))
            .upload_id()
            .unwrap_or_default()
            .to_owned()
    }

    /// Keys of the multipart uploads in progress.
    pub fn uploads(&self, bucket: &str) -> Vec<String> {
        let out = RUNTIME
            .block_on(self.client.list_multipart_uploads().bucket(bucket).send())
            .unwrap_or_else(|e| panic!("list uploads {bucket}: {}", describe(&e)));
        out.uploads()
            .iter()
            .filter_map(|u| u.key().map(str::to_owned))
            .collect()
    }

    /// Parts uploaded so far to each multipart upload in progress. ListParts is read as raw
    /// XML: moto 5.2.5 answers it with the root `ListPartsResponse`, which the Rust SDK rejects.
    pub fn upload_parts(&self, bucket: &str) -> Vec<usize> {
        let out = RUNTIME
            .block_on(self.client.list_multipart_uploads().bucket(bucket).send())
            .unwrap_or_else(|e| panic!("list uploads {bucket}: {}", describe(&e)));
        out.uploads()
            .iter()
            .map(|u| {
                let path = format!(
                    "/{bucket}/{}?uploadId={}",
                    u.key().unwrap_or_default(),
                    u.upload_id().unwrap_or_default()
                );
                self.raw_get(&path).matches("<Part>").count()
            })
            .collect()
    }

    /// The body of an unsigned GET (this moto checks no signatures).
    fn raw_get(&self, path: &str) -> String {
        let addr = self.endpoint.trim_start_matches("http://");
        let mut stream = TcpStream::connect(addr).expect("connect to moto");
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    }

    /// HTTP status of a ListObjectsV2 with the test credentials (Ok = 200).
    pub fn list_status(&self, bucket: &str) -> Result<(), u16> {
        match RUNTIME.block_on(self.client.list_objects_v2().bucket(bucket).send()) {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) => Err(e.raw().status().as_u16()),
            Err(e) => panic!("list {bucket}: {}", describe(&e)),
        }
    }
}

/// The whole error chain: the SDK's Display alone says only "service error".
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    let http = aws_smithy_http_client::Builder::new().build_http();
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "it"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .http_client(http)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// Whether something on `port` answers an HTTP request with a status line (any status).
fn answers_http(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let _ = stream.shutdown(Shutdown::Write);
    let mut head = [0u8; 5];
    stream.read_exact(&mut head).is_ok() && &head == b"HTTP/"
}
