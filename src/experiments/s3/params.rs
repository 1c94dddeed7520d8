//! Parameters of an `s3` run, their defaults and bounds: the bucket and prefix (validated as S3
//! names), the operations, the object count and size, and the multipart settings.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::validation::{FieldErrors, Validate};

/// One MiB.
const MIB: u64 = 1 << 20;
/// The smallest part S3 accepts, except for an upload's last part.
pub const MIN_PART_BYTES: u64 = 5 * MIB;
/// The largest part: parts are generated in memory, one per request in flight.
const MAX_PART_BYTES: u64 = 64 * MIB;
/// The largest object: 1 GiB, at most 205 parts of 5 MiB (S3 allows 10 000).
const MAX_SIZE_BYTES: u64 = 1 << 30;
/// The most objects one run writes (and lists, reads and deletes).
const MAX_OBJECTS: u32 = 10_000;
/// The most bytes one run uploads: objects × size_bytes.
const MAX_TOTAL_BYTES: u64 = 16 << 30;
/// The most requests in flight.
const MAX_CONCURRENCY: u32 = 64;
/// The most bytes held by requests in flight (concurrency × the largest body one holds), so a
/// run's memory stays bounded.
const MAX_IN_FLIGHT_BYTES: u64 = 512 * MIB;
/// S3's own ceiling on keys per ListObjectsV2 page.
const MAX_LIST_PAGE_SIZE: u32 = 1000;
/// Longest prefix, leaving room for the job id and object name within S3's 1024-byte keys.
const MAX_PREFIX_LEN: usize = 512;

/// One step of a run; they always run in the order upload, list, download, delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// Writes the objects (multipart above `multipart_threshold_bytes`), checking each ETag.
    Upload,
    /// Lists the run's objects (or, without `upload`, everything under `prefix`) page by page.
    List,
    /// Reads the objects back and checks their bytes against what was uploaded.
    Download,
    /// Deletes the objects.
    Delete,
}

/// Parameters of an `s3` run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct S3Params {
    /// Bucket to work in: an S3 bucket name (3 to 63 characters: lowercase letters, digits,
    /// `-` and `.`).
    #[serde(default = "default_bucket")]
    pub bucket: String,
    /// Create the bucket when it does not exist; otherwise a missing bucket fails the job.
    #[serde(default = "default_create_bucket")]
    pub create_bucket: bool,
    /// Key prefix; the run's objects go under `{prefix}{job id}/` (at most 512 characters, no
    /// `..` segment, no leading `/`).
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// What to do (at least one; `download` and `delete` need `upload`).
    #[serde(default = "default_operations")]
    pub operations: Vec<Operation>,
    /// Objects to write (1 to 10 000).
    #[serde(default = "default_objects")]
    pub objects: u32,
    /// Size of each object (1 byte to 1 GiB; objects × size_bytes at most 16 GiB).
    #[serde(default = "default_size_bytes")]
    pub size_bytes: u64,
    /// Requests in flight at once (1 to 64): object PUTs, part PUTs and GETs share this limit.
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// Objects larger than this are uploaded in parts (5 MiB to 64 MiB).
    #[serde(default = "default_multipart_threshold_bytes")]
    pub multipart_threshold_bytes: u64,
    /// Size of each part but the last (5 MiB, S3's minimum, to 64 MiB).
    #[serde(default = "default_part_bytes")]
    pub part_bytes: u64,
    /// Keys per ListObjectsV2 page (1 to 1000).
    #[serde(default = "default_list_page_size")]
    pub list_page_size: u32,
}

fn default_bucket() -> String {
    "asynclab".into()
}
fn default_create_bucket() -> bool {
    true
}
fn default_prefix() -> String {
    "asynclab/".into()
}
fn default_operations() -> Vec<Operation> {
    vec![Operation::Upload, Operation::List, Operation::Download, Operation::Delete]
}
fn default_objects() -> u32 {
    16
}
fn default_size_bytes() -> u64 {
    MIB
}
fn default_concurrency() -> u32 {
    8
}
fn default_multipart_threshold_bytes() -> u64 {
    8 * MIB
}
fn default_part_bytes() -> u64 {
    8 * MIB
}
fn default_list_page_size() -> u32 {
    MAX_LIST_PAGE_SIZE
}

impl S3Params {
    /// Whether the run includes `operation`.
    pub fn does(&self, operation: Operation) -> bool {
        self.operations.contains(&operation)
    }

    /// Whether each object is uploaded in parts.
    pub fn is_multipart(&self) -> bool {
        self.size_bytes > self.multipart_threshold_bytes
    }

    /// Parts per object: 1 for a single-part upload.
    pub fn parts_per_object(&self) -> u64 {
        if self.is_multipart() { self.size_bytes.div_ceil(self.part_bytes) } else { 1 }
    }
}

impl Validate for S3Params {
    fn validate(&self, errors: &mut FieldErrors) {
        if let Err(reason) = check_bucket_name(&self.bucket) {
            errors.add("bucket", reason);
        }
        if let Err(reason) = check_prefix(&self.prefix) {
            errors.add("prefix", reason);
        }
        errors.check(!self.operations.is_empty(), "operations", "give at least one operation");
        let mut sorted = self.operations.clone();
        sorted.sort();
        sorted.dedup();
        errors.check(sorted.len() == self.operations.len(), "operations", "an operation is listed twice");
        errors.check(
            self.does(Operation::Upload) || !(self.does(Operation::Download) || self.does(Operation::Delete)),
            "operations",
            "download and delete work on the objects the run uploads: add upload",
        );
        errors.range("objects", self.objects, 1, MAX_OBJECTS);
        errors.range("size_bytes", self.size_bytes, 1, MAX_SIZE_BYTES);
        errors.check(
            u64::from(self.objects).saturating_mul(self.size_bytes) <= MAX_TOTAL_BYTES,
            "size_bytes",
            format!("objects × size_bytes must be at most {MAX_TOTAL_BYTES}"),
        );
        errors.range("concurrency", self.concurrency, 1, MAX_CONCURRENCY);
        errors.range("multipart_threshold_bytes", self.multipart_threshold_bytes, MIN_PART_BYTES, MAX_PART_BYTES);
        errors.range("part_bytes", self.part_bytes, MIN_PART_BYTES, MAX_PART_BYTES);
        let largest_body = self.part_bytes.max(self.multipart_threshold_bytes);
        errors.check(
            u64::from(self.concurrency).saturating_mul(largest_body) <= MAX_IN_FLIGHT_BYTES,
            "concurrency",
            format!("concurrency × max(part_bytes, multipart_threshold_bytes) must be at most {MAX_IN_FLIGHT_BYTES} bytes"),
        );
        errors.range("list_page_size", self.list_page_size, 1, MAX_LIST_PAGE_SIZE);
    }
}

/// S3's bucket naming rules: 3 to 63 characters of lowercase letters, digits, `.` and `-`,
/// starting and ending with a letter or digit, no `..`, and not shaped like an IP address.
fn check_bucket_name(name: &str) -> Result<(), String> {
    let edges_ok = |byte: Option<&u8>| byte.is_some_and(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit());
    if !(3..=63).contains(&name.len()) {
        return Err("must be 3 to 63 characters".into());
    }
    if !name.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'.' || byte == b'-') {
        return Err("only lowercase letters, digits, '.' and '-'".into());
    }
    if !edges_ok(name.as_bytes().first()) || !edges_ok(name.as_bytes().last()) {
        return Err("must start and end with a letter or digit".into());
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return Err("no '..', '.-' or '-.'".into());
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err("must not be an IP address".into());
    }
    Ok(())
}

/// A key prefix that cannot climb out of its place on a file-system backed server.
fn check_prefix(prefix: &str) -> Result<(), String> {
    if prefix.len() > MAX_PREFIX_LEN {
        return Err(format!("at most {MAX_PREFIX_LEN} bytes"));
    }
    if prefix.starts_with('/') || prefix.starts_with('\\') {
        return Err("must not start with '/'".into());
    }
    if prefix.chars().any(char::is_control) {
        return Err("no control characters".into());
    }
    if prefix.split(['/', '\\']).any(|segment| segment == ".." || segment == ".") {
        return Err("no '.' or '..' segments".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of(json: serde_json::Value) -> Vec<String> {
        let params: S3Params = serde_json::from_value(json).unwrap();
        let mut errors = FieldErrors::default();
        params.validate(&mut errors);
        errors.0.into_iter().map(|error| error.field).collect()
    }

    #[test]
    fn defaults_are_valid() {
        assert!(errors_of(serde_json::json!({})).is_empty());
    }

    #[test]
    fn bucket_names_follow_s3_rules() {
        for good in ["abc", "my-bucket.v2", "0bucket9"] {
            assert!(check_bucket_name(good).is_ok(), "{good}");
        }
        for bad in ["ab", "Upper", "-dash", "dot.", "a..b", "a.-b", "192.168.0.1", "under_score", &"a".repeat(64)] {
            assert!(check_bucket_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prefixes_cannot_traverse() {
        for bad in ["../x", "a/../b", "a/..", "/abs", "a\\..\\b", "./a", "a\nb"] {
            assert_eq!(errors_of(serde_json::json!({ "prefix": bad })), ["prefix"], "{bad:?}");
        }
        assert!(errors_of(serde_json::json!({ "prefix": "a..b/c/" })).is_empty());
        assert!(errors_of(serde_json::json!({ "prefix": "" })).is_empty());
    }

    #[test]
    fn parts_and_memory_are_bounded() {
        assert_eq!(errors_of(serde_json::json!({ "part_bytes": 1_000_000 })), ["part_bytes"]);
        assert_eq!(errors_of(serde_json::json!({ "concurrency": 64, "part_bytes": 64 * MIB })), ["concurrency"]);
        assert_eq!(errors_of(serde_json::json!({ "objects": 10_000, "size_bytes": 1 << 30 })), ["size_bytes"]);
        assert_eq!(errors_of(serde_json::json!({ "operations": ["download"] })), ["operations"]);
        assert_eq!(errors_of(serde_json::json!({ "operations": ["list", "list"] })), ["operations"]);
        assert_eq!(errors_of(serde_json::json!({ "operations": [] })), ["operations"]);
    }

    #[test]
    fn parts_per_object_rounds_up() {
        let params: S3Params = serde_json::from_value(
            serde_json::json!({ "size_bytes": 11 * MIB, "multipart_threshold_bytes": 5 * MIB, "part_bytes": 5 * MIB }),
        )
        .unwrap();
        assert_eq!(params.parts_per_object(), 3);
        let params: S3Params = serde_json::from_value(serde_json::json!({ "size_bytes": 5 * MIB })).unwrap();
        assert_eq!(params.parts_per_object(), 1);
    }
}
