//! Digests in the form of S3 ETags: the MD5 of a single-part object, or for a multipart one the
//! MD5 of its parts' MD5s followed by `-` and the part count; computed over bytes as they stream.

use md5::{Digest, Md5};

use crate::experiments::ExperimentError;

/// Fails unless the server's ETag (quoted) is `expected`.
pub fn check_etag(action: &str, etag: Option<&str>, expected: &str) -> Result<(), ExperimentError> {
    let etag = etag.unwrap_or_default().trim_matches('"');
    if etag == expected {
        Ok(())
    } else {
        Err(ExperimentError::Protocol(format!("{action}: ETag {etag:?} does not match the MD5 of the bytes sent ({expected})")))
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// S3's ETag of a multipart object: the MD5 of the parts' MD5s, then `-` and the part count.
pub fn multipart_etag<'a>(parts: impl ExactSizeIterator<Item = &'a [u8; 16]>) -> String {
    let count = parts.len();
    let mut combined = Md5::new();
    for part in parts {
        combined.update(part);
    }
    format!("{}-{count}", hex(&combined.finalize()))
}

/// The digest of a byte stream in the form of the ETag its upload produced: a plain MD5, or
/// with `part_bytes` the multipart form over parts of that size.
pub struct ObjectDigest {
    part_bytes: Option<u64>,
    current: Md5,
    current_len: u64,
    parts: Vec<[u8; 16]>,
}

impl ObjectDigest {
    /// An empty digest.
    pub fn new(part_bytes: Option<u64>) -> Self {
        ObjectDigest { part_bytes, current: Md5::new(), current_len: 0, parts: Vec::new() }
    }

    /// Adds the next bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        let Some(part_bytes) = self.part_bytes else {
            self.current.update(data);
            return;
        };
        while !data.is_empty() {
            let take = (part_bytes - self.current_len).min(data.len() as u64) as usize;
            self.current.update(&data[..take]);
            self.current_len += take as u64;
            data = &data[take..];
            if self.current_len == part_bytes {
                self.parts.push(self.current.finalize_reset().into());
                self.current_len = 0;
            }
        }
    }

    /// The digest in ETag form.
    pub fn finish(mut self) -> String {
        if self.part_bytes.is_none() {
            return hex(&self.current.finalize());
        }
        if self.current_len > 0 {
            self.parts.push(self.current.finalize().into());
        }
        multipart_etag(self.parts.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_part_digest_is_the_md5() {
        let mut digest = ObjectDigest::new(None);
        digest.update(b"hello ");
        digest.update(b"world");
        assert_eq!(digest.finish(), "5eb63bbbe01eeed093cb22bb8f5acdc3");
    }

    #[test]
    fn multipart_digest_matches_however_the_stream_is_cut() {
        let data: Vec<u8> = (0..1000u32).map(|value| value as u8).collect();
        let expected = multipart_etag(data.chunks(300).map(|part| <[u8; 16]>::from(Md5::digest(part))).collect::<Vec<_>>().iter());
        assert!(expected.ends_with("-4"), "{expected}");
        for cut in [1, 7, 300, 999, 1000] {
            let mut digest = ObjectDigest::new(Some(300));
            for chunk in data.chunks(cut) {
                digest.update(chunk);
            }
            assert_eq!(digest.finish(), expected, "chunks of {cut}");
        }
    }
}
