//! Reading an HTTP/1.1 response from the bytes a connection has received: the head parsed with
//! httparse, the body's framing (`Content-Length`, chunked, or until the server closes) decided
//! as RFC 9112 §6.3 says, the body skipped and counted, and whether the connection may carry
//! another request. Pure functions over byte slices: the connection feeds them what it reads.

use std::mem::MaybeUninit;

use crate::experiments::http_fanout::connection::FailureKind;

/// The largest response head accepted (status line and headers), like hyper's default limit.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The most headers one response may carry.
const MAX_HEADERS: usize = 100;
/// The longest chunk-size line (with extensions) or trailer line accepted.
const MAX_LINE_BYTES: usize = 8 * 1024;

/// How the end of a response body is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (a `HEAD` request, 204, 304).
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the server closes the connection.
    UntilClose,
}

/// A response's status line and the headers that matter to the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The status code.
    pub status: u16,
    /// Where the body ends.
    pub framing: Framing,
    /// Whether the server lets the connection carry another request.
    pub keep_alive: bool,
}

/// What the front of the received bytes holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// An incomplete head: read more.
    Partial,
    /// An interim (1xx) response of this many bytes, to be skipped.
    Interim(usize),
    /// The final response's head, of this many bytes.
    Final(Head, usize),
}

/// Parses the response head at the front of `received`, for a request that was a `HEAD` when
/// `head_request`.
pub fn parse_head(received: &[u8], head_request: bool) -> Result<Parsed, FailureKind> {
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let length = match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut response, received, &mut headers) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) if received.len() < MAX_HEAD_BYTES => return Ok(Parsed::Partial),
        Ok(httparse::Status::Partial) | Err(_) => return Err(FailureKind::Protocol),
    };
    let status = response.code.ok_or(FailureKind::Protocol)?;
    match status {
        // A switch of protocols nobody asked for.
        101 => return Err(FailureKind::Protocol),
        100..=199 => return Ok(Parsed::Interim(length)),
        _ => {}
    }
    let http11 = response.version == Some(1);
    let (mut close, mut keep_alive_token) = (false, false);
    let (mut content_length, mut transfer_encoding): (Option<u64>, Option<&[u8]>) = (None, None);
    for header in response.headers.iter() {
        let name = header.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            let length = parse_content_length(header.value)?;
            if content_length.is_some_and(|seen| seen != length) {
                return Err(FailureKind::Protocol);
            }
            content_length = Some(length);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // Several fields are one list; only the last coding decides the framing.
            transfer_encoding = Some(header.value);
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in header.value.split(|byte| *byte == b',').map(<[u8]>::trim_ascii) {
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }
    let mut keep_alive = !close && (http11 || keep_alive_token);
    let framing = if head_request || status == 204 || status == 304 {
        Framing::Empty
    } else if let Some(codings) = transfer_encoding {
        // With both, Transfer-Encoding wins and the connection must not be reused (RFC 9112 §6.3).
        keep_alive &= content_length.is_none() && http11;
        let last = codings.rsplit(|byte| *byte == b',').next().unwrap_or_default().trim_ascii();
        if last.eq_ignore_ascii_case(b"chunked") { Framing::Chunked } else { Framing::UntilClose }
    } else if let Some(length) = content_length {
        Framing::Length(length)
    } else {
        Framing::UntilClose
    };
    keep_alive &= framing != Framing::UntilClose;
    Ok(Parsed::Final(Head { status, framing, keep_alive }, length))
}

/// A `Content-Length` value: decimal digits, or a list of identical ones (`5, 5`).
fn parse_content_length(value: &[u8]) -> Result<u64, FailureKind> {
    let mut length = None;
    for item in value.split(|byte| *byte == b',').map(<[u8]>::trim_ascii) {
        if item.is_empty() || item.len() > 19 || !item.iter().all(u8::is_ascii_digit) {
            return Err(FailureKind::Protocol);
        }
        let parsed = item.iter().fold(0u64, |total, digit| total * 10 + u64::from(digit - b'0'));
        if length.is_some_and(|seen| seen != parsed) {
            return Err(FailureKind::Protocol);
        }
        length = Some(parsed);
    }
    length.ok_or(FailureKind::Protocol)
}

/// Where a chunked body stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    /// Before a chunk-size line.
    Size,
    /// Inside a chunk's data, with this many bytes to go.
    Data(u64),
    /// After a chunk's data, before its CRLF.
    DataEnd,
    /// After the last chunk: trailer lines up to an empty one.
    Trailers,
}

/// Skips a response body as its bytes arrive, counting its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyReader {
    /// This many bytes to go.
    Length(u64),
    /// A chunked body.
    Chunked(Chunk),
    /// Until the server closes.
    UntilClose,
    /// The body is complete.
    Done,
}

/// What [`BodyReader::advance`] did with the bytes it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes taken from the front of the input (framing included).
    pub consumed: usize,
    /// Of them, body content bytes.
    pub content: u64,
}

impl BodyReader {
    /// A reader for a body framed by `framing`.
    pub fn new(framing: Framing) -> Self {
        match framing {
            Framing::Empty | Framing::Length(0) => BodyReader::Done,
            Framing::Length(length) => BodyReader::Length(length),
            Framing::Chunked => BodyReader::Chunked(Chunk::Size),
            Framing::UntilClose => BodyReader::UntilClose,
        }
    }

    /// Whether the body is complete.
    pub fn is_done(&self) -> bool {
        *self == BodyReader::Done
    }

    /// Takes as much of `received` as belongs to the body; what it leaves (when done, or an
    /// incomplete chunk line) is for later.
    pub fn advance(&mut self, received: &[u8]) -> Result<Progress, FailureKind> {
        let mut progress = Progress { consumed: 0, content: 0 };
        loop {
            let rest = &received[progress.consumed..];
            let (consumed, content, next) = match *self {
                BodyReader::Done => return Ok(progress),
                BodyReader::Length(remaining) => {
                    let taken = remaining.min(rest.len() as u64);
                    let next = if taken == remaining { BodyReader::Done } else { BodyReader::Length(remaining - taken) };
                    (taken as usize, taken, next)
                }
                BodyReader::UntilClose => (rest.len(), rest.len() as u64, BodyReader::UntilClose),
                BodyReader::Chunked(chunk) => match advance_chunked(chunk, rest)? {
                    Some((consumed, content, next)) => (consumed, content, next),
                    None => return Ok(progress),
                },
            };
            progress.consumed += consumed;
            progress.content += content;
            *self = next;
            if consumed == 0 && !self.is_done() {
                return Ok(progress);
            }
        }
    }

    /// The body's end when the server closed the connection: complete only for a body framed
    /// by the close.
    pub fn at_close(&mut self) -> Result<(), FailureKind> {
        match self {
            BodyReader::UntilClose | BodyReader::Done => {
                *self = BodyReader::Done;
                Ok(())
            }
            _ => Err(FailureKind::ConnectionClosed),
        }
    }
}

/// One step of a chunked body: `None` when `rest` holds too little to move on.
fn advance_chunked(chunk: Chunk, rest: &[u8]) -> Result<Option<(usize, u64, BodyReader)>, FailureKind> {
    let step = match chunk {
        Chunk::Size => {
            match rest.first() {
                None => return Ok(None),
                Some(first) if !first.is_ascii_hexdigit() => return Err(FailureKind::Protocol),
                Some(_) => {}
            }
            match httparse::parse_chunk_size(rest) {
                Ok(httparse::Status::Complete((line, 0))) => (line, 0, BodyReader::Chunked(Chunk::Trailers)),
                Ok(httparse::Status::Complete((line, size))) => (line, 0, BodyReader::Chunked(Chunk::Data(size))),
                Ok(httparse::Status::Partial) if rest.len() < MAX_LINE_BYTES => return Ok(None),
                Ok(httparse::Status::Partial) | Err(_) => return Err(FailureKind::Protocol),
            }
        }
        Chunk::Data(remaining) => {
            let taken = remaining.min(rest.len() as u64);
            let next = if taken == remaining { Chunk::DataEnd } else { Chunk::Data(remaining - taken) };
            (taken as usize, taken, BodyReader::Chunked(next))
        }
        Chunk::DataEnd => match rest {
            [b'\r', b'\n', ..] => (2, 0, BodyReader::Chunked(Chunk::Size)),
            [] | [b'\r'] => return Ok(None),
            _ => return Err(FailureKind::Protocol),
        },
        Chunk::Trailers => match rest.iter().position(|byte| *byte == b'\n') {
            Some(end) if rest[..end] == *b"\r" || end == 0 => (end + 1, 0, BodyReader::Done),
            Some(end) => (end + 1, 0, BodyReader::Chunked(Chunk::Trailers)),
            None if rest.len() < MAX_LINE_BYTES => return Ok(None),
            None => return Err(FailureKind::Protocol),
        },
    };
    Ok(Some(step))
}
