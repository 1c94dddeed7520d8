//! A request template encoded once into the bytes HTTP/1.1 sends, so sending a request is one
//! write of ready bytes: request line, `Host`, the template's headers, `Content-Length`,
//! `Connection: close` when keep-alive is off, the blank line and the body. Only a path with
//! `{i}` is completed per request, by writing the request's number between its fixed pieces.

use hyper::header::HeaderMap;

/// A request kind in HTTP/1.1 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedRequest {
    /// The whole request, split where `{i}` stood in the path (one piece when it never does).
    pieces: Vec<Vec<u8>>,
    /// The request's length without the numbers.
    fixed_len: usize,
    /// Whether the method is `HEAD`: its response has no body whatever its headers say.
    pub head_request: bool,
}

/// What a request kind is made of.
pub struct RequestParts<'a> {
    /// The method.
    pub method: &'a hyper::Method,
    /// The path and query, `{i}` standing for the request's number.
    pub path: &'a str,
    /// The `Host` header's value.
    pub host: &'a str,
    /// Extra headers.
    pub headers: &'a HeaderMap,
    /// The body (empty for none).
    pub body: &'a [u8],
    /// Whether the connection is kept for the next request (otherwise `Connection: close`).
    pub keep_alive: bool,
}

impl EncodedRequest {
    /// Encodes `parts`.
    pub fn new(parts: &RequestParts<'_>) -> Self {
        let mut whole = Vec::with_capacity(64 + parts.path.len() + parts.body.len());
        whole.extend_from_slice(parts.method.as_str().as_bytes());
        whole.push(b' ');
        let mut pieces = Vec::new();
        let mut path_pieces = parts.path.split("{i}");
        whole.extend_from_slice(path_pieces.next().unwrap_or_default().as_bytes());
        for piece in path_pieces {
            pieces.push(std::mem::take(&mut whole));
            whole.extend_from_slice(piece.as_bytes());
        }
        whole.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        whole.extend_from_slice(parts.host.as_bytes());
        whole.extend_from_slice(b"\r\n");
        for (name, value) in parts.headers {
            whole.extend_from_slice(name.as_str().as_bytes());
            whole.extend_from_slice(b": ");
            whole.extend_from_slice(value.as_bytes());
            whole.extend_from_slice(b"\r\n");
        }
        // Methods that define a meaning for a body say its length even when it is empty.
        let expects_body = matches!(*parts.method, hyper::Method::POST | hyper::Method::PUT | hyper::Method::PATCH);
        if !parts.body.is_empty() || expects_body {
            whole.extend_from_slice(format!("Content-Length: {}\r\n", parts.body.len()).as_bytes());
        }
        if !parts.keep_alive {
            whole.extend_from_slice(b"Connection: close\r\n");
        }
        whole.extend_from_slice(b"\r\n");
        whole.extend_from_slice(parts.body);
        pieces.push(whole);
        let fixed_len = pieces.iter().map(Vec::len).sum();
        EncodedRequest { pieces, fixed_len, head_request: *parts.method == hyper::Method::HEAD }
    }

    /// The bytes of request `index`: the encoded request itself, or `scratch` filled with it
    /// when the path carries the number.
    pub fn bytes<'a>(&'a self, index: u64, scratch: &'a mut Vec<u8>) -> &'a [u8] {
        let [first, rest @ ..] = self.pieces.as_slice() else {
            return &[];
        };
        if rest.is_empty() {
            return first;
        }
        let mut number = itoa::Buffer::new();
        let number = number.format(index).as_bytes();
        scratch.clear();
        scratch.extend_from_slice(first);
        for piece in rest {
            scratch.extend_from_slice(number);
            scratch.extend_from_slice(piece);
        }
        scratch
    }

    /// The length of request `index` in bytes.
    pub fn len(&self, index: u64) -> usize {
        let placeholders = self.pieces.len() - 1;
        if placeholders == 0 { self.fixed_len } else { self.fixed_len + placeholders * itoa::Buffer::new().format(index).len() }
    }
}
