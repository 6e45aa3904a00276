//! CloudFormation template building blocks every part of the template uses.

use serde_json::{json, Value};

/// The tag every resource and the stack itself carry (`managed-by=cachectl`).
pub const TAG_KEY: &str = "managed-by";
pub const TAG_VALUE: &str = "cachectl";

/// `{"Fn::Sub": text}`: how the template builds every ARN and name from pseudo parameters.
pub fn sub(text: &str) -> Value {
    json!({ "Fn::Sub": text })
}

pub fn tags() -> Value {
    json!([{ "Key": TAG_KEY, "Value": TAG_VALUE }])
}
