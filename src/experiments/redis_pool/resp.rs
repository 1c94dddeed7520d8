//! RESP2, the Redis wire format, as far as the `redis` experiment needs it: commands encoded as
//! arrays of bulk strings into a caller's buffer, and replies (`+simple`, `-error`, `:integer`,
//! `$bulk` including null, `*array` including null) parsed from the front of a buffer that may
//! hold only part of one.

use bytes::Bytes;

/// The largest bulk string accepted: Redis's own default `proto-max-bulk-len` (512 MiB).
const MAX_BULK_LEN: i64 = 512 << 20;
/// The most elements an array reply may announce: far beyond any reply this client asks for,
/// so a corrupt length fails instead of reserving memory.
const MAX_ARRAY_LEN: i64 = 1 << 24;
/// How deeply arrays may nest: SCAN, the deepest reply asked for, nests two levels.
const MAX_DEPTH: usize = 8;

/// One reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`.
    Simple(Bytes),
    /// `-ERR …`: the command failed; the text says why.
    Error(Bytes),
    /// `:42`.
    Integer(i64),
    /// `$3\r\nabc` or the null bulk string `$-1` (`None`: GET of a missing key).
    Bulk(Option<Bytes>),
    /// `*2\r\n…` or the null array `*-1`.
    Array(Option<Vec<Reply>>),
}

/// Bytes that are not RESP2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedReply(pub String);

/// Appends one command, `args` as an array of bulk strings, to `out`.
pub fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    let mut digits = itoa::Buffer::new();
    out.push(b'*');
    out.extend_from_slice(digits.format(args.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for arg in args {
        out.push(b'$');
        out.extend_from_slice(digits.format(arg.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// Parses the reply at the front of `buf`: `Ok(None)` when `buf` holds only part of it, else the
/// reply and how many bytes it took.
pub fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>, MalformedReply> {
    parse_at(buf, 0, 0)
}

/// The reply starting at `start`, and where the next one starts.
fn parse_at(buf: &[u8], start: usize, depth: usize) -> Result<Option<(Reply, usize)>, MalformedReply> {
    let Some((line, after_line)) = line_at(buf, start) else { return Ok(None) };
    let Some((&kind, body)) = line.split_first() else { return Err(MalformedReply("an empty reply line".into())) };
    match kind {
        b'+' => Ok(Some((Reply::Simple(Bytes::copy_from_slice(body)), after_line))),
        b'-' => Ok(Some((Reply::Error(Bytes::copy_from_slice(body)), after_line))),
        b':' => Ok(Some((Reply::Integer(integer(body)?), after_line))),
        b'$' => {
            let len = integer(body)?;
            if len == -1 {
                return Ok(Some((Reply::Bulk(None), after_line)));
            }
            if !(0..=MAX_BULK_LEN).contains(&len) {
                return Err(MalformedReply(format!("a bulk string of length {len}")));
            }
            let end = after_line + len as usize;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(MalformedReply("a bulk string not ended by CRLF".into()));
            }
            Ok(Some((Reply::Bulk(Some(Bytes::copy_from_slice(&buf[after_line..end]))), end + 2)))
        }
        b'*' => {
            let len = integer(body)?;
            if len == -1 {
                return Ok(Some((Reply::Array(None), after_line)));
            }
            if !(0..=MAX_ARRAY_LEN).contains(&len) {
                return Err(MalformedReply(format!("an array of length {len}")));
            }
            if depth == MAX_DEPTH {
                return Err(MalformedReply(format!("arrays nested deeper than {MAX_DEPTH}")));
            }
            // Each element takes at least 3 bytes, so what is buffered bounds the reservation.
            let mut elements = Vec::with_capacity((len as usize).min((buf.len() - after_line) / 3));
            let mut next = after_line;
            for _ in 0..len {
                let Some((element, after)) = parse_at(buf, next, depth + 1)? else { return Ok(None) };
                elements.push(element);
                next = after;
            }
            Ok(Some((Reply::Array(Some(elements)), next)))
        }
        other => Err(MalformedReply(format!("a reply starting with byte {other:#04x}"))),
    }
}

/// The line starting at `start` without its CRLF, and where the next line starts; `None` when
/// the CRLF has not arrived yet.
fn line_at(buf: &[u8], start: usize) -> Option<(&[u8], usize)> {
    let rest = buf.get(start..)?;
    let cr = rest.windows(2).position(|pair| pair == b"\r\n")?;
    Some((&rest[..cr], start + cr + 2))
}

fn integer(digits: &[u8]) -> Result<i64, MalformedReply> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| MalformedReply(format!("{:?} is not an integer", String::from_utf8_lossy(digits))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Reply {
        Reply::Bulk(Some(Bytes::copy_from_slice(text.as_bytes())))
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = b"left over ".to_vec();
        encode(&mut out, &[b"SET", b"asynclab:k:7", b""]);
        assert_eq!(out, b"left over *3\r\n$3\r\nSET\r\n$12\r\nasynclab:k:7\r\n$0\r\n\r\n");
    }

    #[test]
    fn every_reply_kind_parses_and_says_its_length() {
        let cases: [(&[u8], Reply); 8] = [
            (b"+OK\r\n", Reply::Simple(Bytes::from_static(b"OK"))),
            (b"-WRONGTYPE Operation against a key\r\n", Reply::Error(Bytes::from_static(b"WRONGTYPE Operation against a key"))),
            (b":-42\r\n", Reply::Integer(-42)),
            (b"$5\r\nab\r\nc\r\n", bulk("ab\r\nc")),
            (b"$0\r\n\r\n", bulk("")),
            (b"$-1\r\n", Reply::Bulk(None)),
            (b"*-1\r\n", Reply::Array(None)),
            (
                b"*2\r\n$1\r\n0\r\n*2\r\n$1\r\na\r\n:1\r\n",
                Reply::Array(Some(vec![bulk("0"), Reply::Array(Some(vec![bulk("a"), Reply::Integer(1)]))])),
            ),
        ];
        for (wire, expected) in cases {
            let mut buf = wire.to_vec();
            buf.extend_from_slice(b"+NEXT\r\n");
            assert_eq!(parse(&buf), Ok(Some((expected, wire.len()))), "{}", String::from_utf8_lossy(wire));
        }
    }

    #[test]
    fn a_reply_split_anywhere_waits_for_the_rest() {
        let wire = b"*3\r\n$3\r\nabc\r\n-ERR no\r\n*1\r\n:12\r\n";
        for cut in 0..wire.len() {
            assert_eq!(parse(&wire[..cut]), Ok(None), "cut at {cut}");
        }
        let (reply, used) = parse(wire).unwrap().unwrap();
        assert_eq!(used, wire.len());
        assert_eq!(
            reply,
            Reply::Array(Some(vec![
                bulk("abc"),
                Reply::Error(Bytes::from_static(b"ERR no")),
                Reply::Array(Some(vec![Reply::Integer(12)]))
            ]))
        );
    }

    #[test]
    fn malformed_replies_are_refused() {
        for wire in [&b"?x\r\n"[..], b"\r\n", b":12a\r\n", b"$-2\r\n", b"$3\r\nabcd\r\n", b"*-5\r\n", b"$536870913\r\n"] {
            assert!(parse(wire).is_err(), "{}", String::from_utf8_lossy(wire));
        }
        let nested = b"*1\r\n".repeat(MAX_DEPTH + 1);
        assert!(parse(&nested).is_err(), "nesting is bounded");
    }
}
