//! The IAM actions each cachectl feature calls, named once: the hints of denied calls quote them,
//! and the policies `provision` writes are built from the same lists.
//!
//! Action names are AWS's (Service Authorization Reference). Several S3 API calls share one
//! action: HeadObject and ranged GetObject need `s3:GetObject`; CreateMultipartUpload, UploadPart
//! and CompleteMultipartUpload need `s3:PutObject`; ListObjectsV2 needs `s3:ListBucket`.

pub const S3_GET_OBJECT: &str = "s3:GetObject";
pub const S3_PUT_OBJECT: &str = "s3:PutObject";
pub const S3_LIST_BUCKET: &str = "s3:ListBucket";
pub const S3_ABORT_MULTIPART_UPLOAD: &str = "s3:AbortMultipartUpload";
pub const S3_DELETE_OBJECT: &str = "s3:DeleteObject";
pub const S3_LIST_BUCKET_MULTIPART_UPLOADS: &str = "s3:ListBucketMultipartUploads";
/// Emptying and deleting the bucket (`deprovision --delete-bucket`).
#[cfg_attr(not(feature = "provision"), allow(dead_code))]
pub const S3_LIST_BUCKET_VERSIONS: &str = "s3:ListBucketVersions";
#[cfg_attr(not(feature = "provision"), allow(dead_code))]
pub const S3_DELETE_OBJECT_VERSION: &str = "s3:DeleteObjectVersion";
#[cfg_attr(not(feature = "provision"), allow(dead_code))]
pub const S3_DELETE_BUCKET: &str = "s3:DeleteBucket";

/// What a trusted CodeBuild project's role needs to read its signing key (`provision`'s
/// `signing-key-secret`).
#[cfg_attr(not(feature = "provision"), allow(dead_code))]
pub const SECRETS_MANAGER_GET_SECRET_VALUE: &str = "secretsmanager:GetSecretValue";

pub const CLOUDWATCH_PUT_METRIC_DATA: &str = "cloudwatch:PutMetricData";
pub const CLOUDWATCH_LIST_METRICS: &str = "cloudwatch:ListMetrics";
pub const CLOUDWATCH_GET_METRIC_DATA: &str = "cloudwatch:GetMetricData";

/// What a build's role needs on the cache bucket for `restore` and `save` (a restore also
/// writes its last-use record with `s3:PutObject`).
pub const BUILD_S3: &[&str] = &[
    S3_GET_OBJECT,
    S3_PUT_OBJECT,
    S3_LIST_BUCKET,
    S3_ABORT_MULTIPART_UPLOAD,
];

/// What `prune` and `rm` need beyond [`BUILD_S3`].
pub const MAINTAIN_S3: &[&str] = &[S3_DELETE_OBJECT, S3_LIST_BUCKET_MULTIPART_UPLOADS];

/// What publishing restore, save and prune metrics needs.
pub const PUBLISH_METRICS: &[&str] = &[CLOUDWATCH_PUT_METRIC_DATA];

/// What `cachectl stats` needs.
pub const READ_METRICS: &[&str] = &[CLOUDWATCH_LIST_METRICS, CLOUDWATCH_GET_METRIC_DATA];

/// `a`, `a and b`, `a, b and c`: actions as a person reads a list.
pub fn list(actions: &[&str]) -> String {
    match actions {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_read_as_prose() {
        assert_eq!(list(&[]), "");
        assert_eq!(list(PUBLISH_METRICS), "cloudwatch:PutMetricData");
        assert_eq!(
            list(READ_METRICS),
            "cloudwatch:ListMetrics and cloudwatch:GetMetricData"
        );
        assert_eq!(
            list(BUILD_S3),
            "s3:GetObject, s3:PutObject, s3:ListBucket and s3:AbortMultipartUpload"
        );
    }
}
