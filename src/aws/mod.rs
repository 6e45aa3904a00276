//! Everything cachectl needs to call AWS: one SDK configuration (HTTP client, timeouts,
//! retries, region, endpoint overrides), one error type for every service, and the IAM actions
//! each feature needs. A new AWS-using feature starts from [`sdk_config`], maps failures with
//! [`Error::from_sdk`], and adds its actions to [`iam`].

mod error;
pub mod iam;

pub use error::{one_line, CallError, Error, Kind, Service};

use aws_config::SdkConfig;
use std::time::Duration;

/// Connect fast, but let a slow link finish a part: a socket silent for `READ_TIMEOUT` is a
/// stall, and an attempt longer than `ATTEMPT_TIMEOUT` (an 8 MiB part at under ~70 KB/s) is
/// given up; either way the SDK retries it (hanging restores are the top complaint about
/// other caches).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const READ_TIMEOUT: Duration = Duration::from_secs(30);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(120);
const MAX_ATTEMPTS: u32 = 4;

/// The SDK configuration every cachectl command shares; service clients start from it and may
/// tighten its timeouts (metrics publishing does).
///
/// TLS is rustls with ring (see Cargo.toml). Credentials and region come from the default chain
/// (env, profile, CodeBuild's container credentials, IMDS); without a region, us-east-1.
/// `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>` are honoured by the SDK itself.
pub async fn sdk_config() -> SdkConfig {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let loader = || {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(http.clone())
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .read_timeout(READ_TIMEOUT)
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                    .build(),
            )
            .retry_config(
                aws_config::retry::RetryConfig::standard()
                    .with_max_attempts(MAX_ATTEMPTS)
                    .with_initial_backoff(Duration::from_millis(200)),
            )
    };
    let conf = loader().load().await;
    if conf.region().is_some() {
        return conf;
    }
    // S3 needs some region to sign with; outside AWS with none configured, us-east-1 is S3's home.
    loader()
        .region(aws_config::Region::from_static("us-east-1"))
        .load()
        .await
}

/// Whether `service` is pointed at another endpoint (`AWS_ENDPOINT_URL` or the service's own
/// variable, or an endpoint in `conf`): S3-compatible servers then need path-style addressing.
pub fn endpoint_overridden(conf: &SdkConfig, service: Service) -> bool {
    conf.endpoint_url().is_some()
        || [service.endpoint_var(), crate::env::AWS_ENDPOINT_URL]
            .iter()
            .any(|v| std::env::var(v).is_ok_and(|s| !s.is_empty()))
}
