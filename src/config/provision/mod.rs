//! `[provision]` and `[provision.project.NAME]`: the account set-up `cachectl provision` deploys,
//! read strictly like the rest of the file (the project tables in [`project`]). Pure data: the
//! template is rendered elsewhere.
//!
//! ```toml
//! [provision]
//! stack = "cachectl"                 # CloudFormation stack name
//! bucket = "my-team-caches"          # default <stack>-<account>-<region>
//! prefix = "cache"                   # the store is s3://<bucket>/<prefix>
//! kms-key = "arn:aws:kms:…:key/…"    # SSE-KMS with this key (default SSE-S3)
//! expire-after-days = 90             # lifecycle backstop on the prefix; 0 turns it off
//! read-accounts = ["111122223333"]   # other accounts that may restore
//! write-accounts = []                # other accounts that may also save
//! attach-roles = ["ci-build"]        # existing roles given the read-write policy
//! attach-read-only-roles = ["ci-ro"] # existing roles given the read-only policy
//! attach-pull-request-roles = ["ci-pr"] # existing roles given the pull-request policy
//! signing-key-secret = "arn:aws:secretsmanager:…:secret:…" # CACHECTL_SIGNING_KEY of trusted projects
//! schedule = "rate(1 day)"           # when the prune project runs (EventBridge)
//! log-retention-days = 30            # of the prune project's logs
//! alarm-topic = "arn:aws:sns:…"      # told when a prune build fails
//!
//! [provision.project.web]
//! source-type = "GITHUB"
//! source-location = "https://github.com/org/web.git"
//! arch = "arm64"                     # or x86_64 (default)
//! environment = { NODE_ENV = "test" }
//! pull-requests = true               # the pull-request policy, and no signing key
//! ```

mod project;

use super::source::{kind, Source};
use super::Error;
// Arch is read by the template, behind the `provision` feature.
#[cfg_attr(not(feature = "provision"), allow(unused_imports))]
pub use project::{Arch, ProjectSettings};

/// The stack name when none is given.
pub const DEFAULT_STACK: &str = "cachectl";
/// The store's prefix in the bucket when none is given.
pub const DEFAULT_PREFIX: &str = "cache";
/// Where install.sh and the binaries live in the bucket (buildspecs/README.md, "Bucket layout");
/// a store prefix may not overlap it.
pub const INSTALL_PREFIX: &str = "cachectl";
pub const DEFAULT_EXPIRE_AFTER_DAYS: u32 = 90;
pub const DEFAULT_SCHEDULE: &str = "rate(1 day)";
pub const DEFAULT_LOG_RETENTION_DAYS: u32 = 30;

const KEYS: &[&str] = &[
    "stack",
    "bucket",
    "prefix",
    "region",
    "role-arn",
    "kms-key",
    "expire-after-days",
    "read-accounts",
    "write-accounts",
    "attach-roles",
    "attach-read-only-roles",
    "attach-pull-request-roles",
    "signing-key-secret",
    "schedule",
    "log-retention-days",
    "alarm-topic",
    "project",
];
/// The retention periods CloudWatch Logs accepts (`PutRetentionPolicy`), in days.
pub const LOG_RETENTION_DAYS: &[u32] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// `[provision]`: every field has a default, so an absent table provisions the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionSettings {
    pub stack: String,
    /// None: `<stack>-<account>-<region>`, lowercased.
    pub bucket: Option<String>,
    /// Without slashes at either end.
    pub prefix: String,
    pub region: Option<String>,
    /// The CloudFormation service role the stack operations run as.
    pub role_arn: Option<String>,
    /// A KMS key ARN: SSE-KMS with a bucket key; None: SSE-S3.
    pub kms_key: Option<String>,
    /// None: no expiry rule.
    pub expire_after_days: Option<u32>,
    /// 12-digit AWS account ids.
    pub read_accounts: Vec<String>,
    pub write_accounts: Vec<String>,
    /// IAM role names.
    pub attach_roles: Vec<String>,
    pub attach_read_only_roles: Vec<String>,
    pub attach_pull_request_roles: Vec<String>,
    /// A Secrets Manager secret's full ARN ([`valid_secret_arn`]): every declared project that
    /// does not build pull requests gets it as `CACHECTL_SIGNING_KEY`, and its role may read it.
    pub signing_key_secret: Option<String>,
    /// An EventBridge schedule expression, `rate(...)` or `cron(...)`.
    pub schedule: String,
    pub log_retention_days: u32,
    /// An SNS topic ARN told when a prune build fails; None: the alarm only shows in CloudWatch.
    pub alarm_topic: Option<String>,
    /// In file order.
    pub projects: Vec<ProjectSettings>,
}

impl Default for ProvisionSettings {
    fn default() -> Self {
        ProvisionSettings {
            stack: DEFAULT_STACK.to_owned(),
            bucket: None,
            prefix: DEFAULT_PREFIX.to_owned(),
            region: None,
            role_arn: None,
            kms_key: None,
            expire_after_days: Some(DEFAULT_EXPIRE_AFTER_DAYS),
            read_accounts: Vec::new(),
            write_accounts: Vec::new(),
            attach_roles: Vec::new(),
            attach_read_only_roles: Vec::new(),
            attach_pull_request_roles: Vec::new(),
            signing_key_secret: None,
            schedule: DEFAULT_SCHEDULE.to_owned(),
            log_retention_days: DEFAULT_LOG_RETENTION_DAYS,
            alarm_topic: None,
            projects: Vec::new(),
        }
    }
}

/// Stack names: a letter, then letters, digits and hyphens (CloudFormation `CreateStack`), at
/// most 50 characters here (CloudFormation allows 128): names made from it must fit their own
/// services' limits, the tightest being EventBridge's 64 for the rule `<stack>-prune`.
pub const MAX_STACK_NAME: usize = 50;

pub fn valid_stack_name(s: &str) -> bool {
    s.len() <= MAX_STACK_NAME
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// S3's general purpose bucket naming rules: 3-63 characters of lowercase letters, digits,
/// dots and hyphens, starting and ending with a letter or digit, no `..`, not an IP address.
pub fn bucket_name_problem(s: &str) -> Option<&'static str> {
    if !(3..=63).contains(&s.len()) {
        return Some("must be 3 to 63 characters long");
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return Some("may hold only lowercase letters, digits, `.` and `-`");
    }
    let edge = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !edge(s.as_bytes()[0]) || !edge(s.as_bytes()[s.len() - 1]) {
        return Some("must start and end with a letter or digit");
    }
    if s.contains("..") || s.parse::<std::net::Ipv4Addr>().is_ok() {
        return Some("must not hold `..` or be an IP address");
    }
    None
}

/// The default bucket name, `<stack>-<account>-<region>` lowercased, if it is a valid name.
#[cfg_attr(not(feature = "provision"), allow(dead_code))]
pub fn default_bucket(stack: &str, account: &str, region: &str) -> Result<String, String> {
    let name = format!("{stack}-{account}-{region}").to_ascii_lowercase();
    match bucket_name_problem(&name) {
        None => Ok(name),
        Some(p) => Err(format!("the default bucket name `{name}` {p}")),
    }
}

/// An IAM role ARN: `arn:<partition>:iam::<account>:role/<path/name>`.
pub fn valid_role_arn(s: &str) -> bool {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    matches!(parts.as_slice(), ["arn", p, "iam", "", account, res]
        if !p.is_empty() && account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) && res.starts_with("role/") && res.len() > 5)
}

/// A region name as AWS spells them: lowercase letters, digits and `-` (`eu-west-1`).
pub fn valid_region(s: &str) -> bool {
    (4..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.contains('-')
}

/// A Secrets Manager secret's full ARN, `arn:<partition>:secretsmanager:<region>:<account>:secret:<name>-<6 characters>`:
/// the IAM statement names exactly this ARN, and a partial one (without the suffix Secrets
/// Manager adds) would never match the secret.
pub fn valid_secret_arn(s: &str) -> bool {
    let parts: Vec<&str> = s.splitn(7, ':').collect();
    let ["arn", partition, "secretsmanager", region, account, "secret", name] = parts.as_slice()
    else {
        return false;
    };
    let Some((base, suffix)) = name.rsplit_once('-') else {
        return false;
    };
    !partition.is_empty()
        && valid_region(region)
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && !base.is_empty()
        && name.len() <= 512
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b))
        && suffix.len() == 6
        && suffix.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn valid_role_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

/// [`super::parse`] for the `[provision]` table.
pub(super) fn parse(src: &Source<'_>, t: &toml::Table) -> Result<ProvisionSettings, Error> {
    let path = ["provision"];
    let label = "[provision]";
    let mut s = ProvisionSettings::default();
    for (key, value) in src.ordered(t, &path) {
        let invalid = |problem: &str| src.invalid(&path, key, label, problem);
        let string = || -> Result<String, Error> {
            match value.as_str() {
                Some("") => Err(invalid("must not be empty")),
                Some(v) => Ok(v.to_owned()),
                None => Err(invalid(&format!("must be a string, not {}", kind(value)))),
            }
        };
        let strings = |check: &dyn Fn(&str) -> bool, what: &str| -> Result<Vec<String>, Error> {
            let items = value
                .as_array()
                .ok_or_else(|| invalid(&format!("must be an array of {what}s")))?;
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(v) if check(v) => out.push(v.to_owned()),
                    Some(v) => {
                        return Err(invalid(&format!("index {i}: `{v}` is not a valid {what}")))
                    }
                    None => return Err(invalid(&format!("index {i} must be a {what} string"))),
                }
            }
            Ok(out)
        };
        // A string `ok` accepts, else `problem`.
        let checked = |ok: &dyn Fn(&str) -> bool, problem: &str| -> Result<String, Error> {
            let v = string()?;
            if ok(&v) {
                Ok(v)
            } else {
                Err(invalid(problem))
            }
        };
        let days = || -> Result<u32, Error> {
            value
                .as_integer()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| invalid("must be a whole number of days"))
        };
        let account = |v: &str| v.len() == 12 && v.bytes().all(|b| b.is_ascii_digit());
        match key.as_str() {
            "stack" => {
                s.stack = string()?;
                if !valid_stack_name(&s.stack) {
                    return Err(invalid(
                        "must start with a letter and hold only letters, digits and `-` (at most 50)",
                    ));
                }
            }
            "bucket" => {
                let b = string()?;
                if let Some(p) = bucket_name_problem(&b) {
                    return Err(invalid(p));
                }
                s.bucket = Some(b);
            }
            "prefix" => {
                let p = string()?;
                let trimmed = p.trim_matches('/');
                if trimmed.is_empty() || trimmed.contains("//") {
                    return Err(invalid("must name a folder like \"cache\" or \"ci/cache\""));
                }
                if trimmed == INSTALL_PREFIX || trimmed.starts_with(&format!("{INSTALL_PREFIX}/")) {
                    return Err(invalid(&format!(
                        "must not be `{INSTALL_PREFIX}`: that folder holds install.sh and the binaries"
                    )));
                }
                if !trimmed
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b))
                {
                    return Err(invalid(
                        "may hold only letters, digits, `/`, `-`, `_` and `.`",
                    ));
                }
                s.prefix = trimmed.to_owned();
            }
            "region" => {
                s.region = Some(checked(
                    &valid_region,
                    "must be a region name like \"eu-west-1\"",
                )?)
            }
            "role-arn" => {
                s.role_arn = Some(checked(
                    &valid_role_arn,
                    "must be an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)",
                )?)
            }
            "kms-key" => {
                let k = string()?;
                if !k.starts_with("arn:") || !k.contains(":kms:") || !k.contains(":key/") {
                    return Err(invalid(
                        "must be a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID): IAM policies name keys by ARN",
                    ));
                }
                s.kms_key = Some(k);
            }
            "expire-after-days" => {
                s.expire_after_days = Some(days()?).filter(|&d| d > 0);
            }
            "read-accounts" => s.read_accounts = strings(&account, "12-digit account id")?,
            "write-accounts" => s.write_accounts = strings(&account, "12-digit account id")?,
            "attach-roles" => s.attach_roles = strings(&valid_role_name, "IAM role name")?,
            "attach-read-only-roles" => {
                s.attach_read_only_roles = strings(&valid_role_name, "IAM role name")?
            }
            "attach-pull-request-roles" => {
                s.attach_pull_request_roles = strings(&valid_role_name, "IAM role name")?
            }
            "signing-key-secret" => {
                s.signing_key_secret = Some(checked(
                    &valid_secret_arn,
                    "must be a Secrets Manager secret's full ARN, as `aws secretsmanager describe-secret --secret-id NAME --query ARN` prints it (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-AbCdEf)",
                )?)
            }
            "schedule" => {
                let e = string()?;
                let shaped = |f: &str| e.starts_with(&format!("{f}(")) && e.ends_with(')');
                if !shaped("rate") && !shaped("cron") {
                    return Err(invalid(
                        "must be an EventBridge schedule: \"rate(1 day)\" or \"cron(0 3 * * ? *)\"",
                    ));
                }
                s.schedule = e;
            }
            "log-retention-days" => {
                let d = days()?;
                if !LOG_RETENTION_DAYS.contains(&d) {
                    return Err(invalid(&format!(
                        "must be one of CloudWatch Logs' periods: {}",
                        LOG_RETENTION_DAYS
                            .iter()
                            .map(u32::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                s.log_retention_days = d;
            }
            "alarm-topic" => {
                let t = string()?;
                if !t.starts_with("arn:") || !t.contains(":sns:") {
                    return Err(invalid(
                        "must be an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)",
                    ));
                }
                s.alarm_topic = Some(t);
            }
            "project" => {
                let projects =
                    src.table(value, &path, label, "project", "[provision.project.NAME]")?;
                for (name, v) in src.ordered(projects, &["provision", "project"]) {
                    s.projects.push(project::parse(src, name, v)?);
                }
            }
            _ => return Err(src.unknown_key(&path, key, label, KEYS)),
        }
    }
    // Attached to one role, the read-write policy would hand a pull-request build everything
    // the pull-request policy withholds.
    if let Some(r) = s
        .attach_pull_request_roles
        .iter()
        .find(|r| s.attach_roles.contains(r))
    {
        return Err(src.invalid(
            &path,
            "attach-pull-request-roles",
            label,
            &format!("role `{r}` is also in `attach-roles`; list a pull-request role in one of them only"),
        ));
    }
    // Projects become CloudFormation logical ids of letters and digits, words capitalised; two
    // names that differ only in `-`, `_` or a word's first letter's case would collide.
    for (i, p) in s.projects.iter().enumerate() {
        if let Some(q) = s.projects[..i]
            .iter()
            .find(|q| logical_id_part(&q.name) == logical_id_part(&p.name))
        {
            return Err(src.invalid(
                &["provision", "project"],
                &p.name,
                "[provision.project]",
                &format!(
                    "gives the same CloudFormation logical id as project `{}` (ids keep only letters and digits, words capitalised); rename one",
                    q.name
                ),
            ));
        }
    }
    Ok(s)
}

/// A name's part of a CloudFormation logical id: letters and digits only, each `-`/`_`-separated
/// word capitalised (`web-app` -> `WebApp`).
pub fn logical_id_part(name: &str) -> String {
    name.split(['-', '_'])
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Option<ProvisionSettings>, String> {
        crate::config::parse(text, "cachectl.toml")
            .map(|c| c.provision)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn settings_read_with_their_defaults() {
        let s = parse("[provision]\n").unwrap().unwrap();
        assert_eq!(s, ProvisionSettings::default());
        let s = parse(
            "[provision]\nstack = \"team-a\"\nprefix = \"/ci/cache/\"\nexpire-after-days = 0\n\
             read-accounts = [\"111122223333\"]\n\n[provision.project.web-app]\n\
             source-type = \"GITHUB\"\nsource-location = \"https://github.com/o/r.git\"\narch = \"arm64\"\n\
             environment = { B = \"2\", A = \"1\" }\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.stack, "team-a");
        assert_eq!(s.prefix, "ci/cache");
        assert_eq!(s.expire_after_days, None);
        assert_eq!(s.read_accounts, ["111122223333"]);
        assert_eq!(s.projects[0].arch, Arch::Arm64);
        assert_eq!(
            s.projects[0].environment,
            [
                ("B".to_owned(), "2".to_owned()),
                ("A".to_owned(), "1".to_owned())
            ],
            "file order"
        );
        assert_eq!(parse("").unwrap(), None);

        let s = parse(
            "[provision]\nattach-pull-request-roles = [\"ci-pr\"]\n\
             signing-key-secret = \"arn:aws:secretsmanager:eu-west-1:111122223333:secret:ci/signing-AbC123\"\n\n\
             [provision.project.web-pr]\nsource-type = \"NO_SOURCE\"\nbuildspec = \"x\"\npull-requests = true\n\n\
             [provision.project.web]\nsource-type = \"NO_SOURCE\"\nbuildspec = \"x\"\npull-requests = false\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.attach_pull_request_roles, ["ci-pr"]);
        assert_eq!(
            s.signing_key_secret.as_deref(),
            Some("arn:aws:secretsmanager:eu-west-1:111122223333:secret:ci/signing-AbC123")
        );
        let flags: Vec<(&str, bool)> = s
            .projects
            .iter()
            .map(|p| (p.name.as_str(), p.pull_requests))
            .collect();
        assert_eq!(flags, [("web-pr", true), ("web", false)]);
        let s = parse("[provision.project.web]\nsource-type = \"NO_SOURCE\"\nbuildspec = \"x\"\n")
            .unwrap()
            .unwrap();
        assert!(!s.projects[0].pull_requests, "trusted unless told");
    }

    #[test]
    fn bad_settings_name_the_place_and_the_fix() {
        let cases = [
            ("typo", "[provision]\nbuckt = \"b\"\n", "cachectl.toml:2:1: unknown key `buckt` in [provision]; did you mean `bucket`?"),
            ("bucket", "[provision]\nbucket = \"My_Bucket\"\n", "cachectl.toml:2:10: [provision]: `bucket` may hold only lowercase letters, digits, `.` and `-`"),
            ("prefix", "[provision]\nprefix = \"cachectl\"\n", "cachectl.toml:2:10: [provision]: `prefix` must not be `cachectl`: that folder holds install.sh and the binaries"),
            ("account", "[provision]\nread-accounts = [\"123\"]\n", "cachectl.toml:2:17: [provision]: `read-accounts` index 0: `123` is not a valid 12-digit account id"),
            ("retention", "[provision]\nlog-retention-days = 10\n", "cachectl.toml:2:22: [provision]: `log-retention-days` must be one of CloudWatch Logs' periods: 1, 3, 5"),
            ("schedule", "[provision]\nschedule = \"daily\"\n", "cachectl.toml:2:12: [provision]: `schedule` must be an EventBridge schedule"),
            ("kms", "[provision]\nkms-key = \"alias/x\"\n", "cachectl.toml:2:11: [provision]: `kms-key` must be a KMS key ARN"),
            ("source type", "[provision.project.web]\nsource-type = \"GIT\"\n", "cachectl.toml:2:15: project `web`: `source-type` is `GIT`; expected one of BITBUCKET"),
            ("no location", "[provision.project.web]\nsource-type = \"GITHUB\"\n", "[provision.project]: `web` needs `source-location` for its source type"),
            ("no buildspec", "[provision.project.web]\nsource-type = \"NO_SOURCE\"\n", "needs an inline `buildspec` (it has no source to read one from)"),
            ("same ids", "[provision.project.a-b]\nsource-type = \"NO_SOURCE\"\nbuildspec = \"x\"\n[provision.project.a_b]\nsource-type = \"NO_SOURCE\"\nbuildspec = \"x\"\n", "gives the same CloudFormation logical id as project `a-b`"),
            ("reserved env", "[provision.project.web]\nsource-type = \"NO_SOURCE\"\nbuildspec = \"x\"\nenvironment = { CODEBUILD_X = \"1\" }\n", "names starting with CODEBUILD_ are reserved by CodeBuild"),
            ("role arn", "[provision]\nrole-arn = \"arn:aws:iam::1:role/x\"\n", "`role-arn` must be an IAM role ARN"),
            ("region", "[provision]\nregion = \"moon 1\"\n", "`region` must be a region name like \"eu-west-1\""),
            ("alarm topic", "[provision]\nalarm-topic = \"ops\"\n", "`alarm-topic` must be an SNS topic ARN"),
            ("pull-requests type", "[provision.project.web]\nsource-type = \"NO_SOURCE\"\nbuildspec = \"x\"\npull-requests = \"yes\"\n", "cachectl.toml:4:17: project `web`: `pull-requests` must be true or false, not a string"),
            ("secret name", "[provision]\nsigning-key-secret = \"cachectl-signing\"\n", "cachectl.toml:2:22: [provision]: `signing-key-secret` must be a Secrets Manager secret's full ARN, as `aws secretsmanager describe-secret --secret-id NAME --query ARN` prints it (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-AbCdEf)"),
            ("secret partial ARN", "[provision]\nsigning-key-secret = \"arn:aws:secretsmanager:eu-west-1:111122223333:secret:signing\"\n", "`signing-key-secret` must be a Secrets Manager secret's full ARN"),
            ("secret type", "[provision]\nsigning-key-secret = [\"arn\"]\n", "`signing-key-secret` must be a string, not an array"),
            ("pr role", "[provision]\nattach-pull-request-roles = [\"ci pr\"]\n", "`attach-pull-request-roles` index 0: `ci pr` is not a valid IAM role name"),
            ("pr role also read-write", "[provision]\nattach-roles = [\"ci\"]\nattach-pull-request-roles = [\"ci\"]\n", "cachectl.toml:3:29: [provision]: `attach-pull-request-roles` role `ci` is also in `attach-roles`; list a pull-request role in one of them only"),
            ("signing key in env", "[provision.project.web]\nsource-type = \"NO_SOURCE\"\nbuildspec = \"x\"\nenvironment = { CACHECTL_SIGNING_KEY = \"pem\" }\n", "`CACHECTL_SIGNING_KEY`: the stack sets it from `signing-key-secret` in [provision], never as plain text"),
        ];
        for (name, text, want) in cases {
            let got = parse(text).expect_err(name);
            assert!(got.contains(want), "case {name}: {got}");
        }
    }

    #[test]
    fn names_follow_the_services_rules() {
        assert!(valid_stack_name("cachectl"));
        assert!(!valid_stack_name("1abc"));
        assert!(!valid_stack_name(&"a".repeat(MAX_STACK_NAME + 1)));
        assert_eq!(
            bucket_name_problem("ab"),
            Some("must be 3 to 63 characters long")
        );
        assert_eq!(
            bucket_name_problem("a..b"),
            Some("must not hold `..` or be an IP address")
        );
        assert_eq!(
            bucket_name_problem("10.0.0.1"),
            Some("must not hold `..` or be an IP address")
        );
        assert_eq!(
            bucket_name_problem("-ab"),
            Some("must start and end with a letter or digit")
        );
        assert_eq!(bucket_name_problem("caches-1"), None);
        assert_eq!(
            default_bucket("Team", "123456789012", "eu-west-1"),
            Ok("team-123456789012-eu-west-1".to_owned())
        );
        assert_eq!(logical_id_part("web-app_x"), "WebAppX");
        assert!(valid_role_arn("arn:aws:iam::123456789012:role/cfn"));
        assert!(!valid_role_arn("arn:aws:iam::123456789012:user/x"));
        assert!(valid_region("eu-west-1"));
        assert!(!valid_region("moon 1"));
        let secrets = [
            (
                "full",
                "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ci/signing-AbC123",
                true,
            ),
            (
                "gov partition",
                "arn:aws-us-gov:secretsmanager:us-gov-west-1:111122223333:secret:k-abcdef",
                true,
            ),
            (
                "name with dashes",
                "arn:aws:secretsmanager:eu-west-1:111122223333:secret:cache-signing-key-Zz9Zz9",
                true,
            ),
            (
                "partial (no suffix)",
                "arn:aws:secretsmanager:eu-west-1:111122223333:secret:signing",
                false,
            ),
            (
                "short suffix",
                "arn:aws:secretsmanager:eu-west-1:111122223333:secret:signing-abc",
                false,
            ),
            (
                "only a suffix",
                "arn:aws:secretsmanager:eu-west-1:111122223333:secret:-AbC123",
                false,
            ),
            (
                "wildcard",
                "arn:aws:secretsmanager:eu-west-1:111122223333:secret:*-AbC123",
                false,
            ),
            (
                "short account",
                "arn:aws:secretsmanager:eu-west-1:1111:secret:signing-AbC123",
                false,
            ),
            (
                "no region",
                "arn:aws:secretsmanager::111122223333:secret:signing-AbC123",
                false,
            ),
            (
                "another service",
                "arn:aws:ssm:eu-west-1:111122223333:parameter/signing-AbC123",
                false,
            ),
            ("a name", "signing-AbC123", false),
        ];
        for (name, arn, want) in secrets {
            assert_eq!(valid_secret_arn(arn), want, "{name}: {arn}");
        }
    }
}
