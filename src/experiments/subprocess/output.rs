//! Reading a child's stdout or stderr line by line in bounded memory: each line is kept up to
//! `max_line_bytes` (the rest is counted, not stored), the first `max_lines` lines are sent on
//! to be logged, and everything is read to the end so the child never blocks on a full pipe.

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc;
use utoipa::ToSchema;

use super::RunEvent;

/// The read buffer per stream.
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// Which output stream of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamName {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// How much of a stream is logged.
#[derive(Debug, Clone, Copy)]
pub struct OutputCaps {
    /// Lines logged; later ones are counted only.
    pub max_lines: u32,
    /// Bytes kept of a line; the rest is cut.
    pub max_line_bytes: usize,
}

/// One line to log, as the `log` event shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputLine {
    /// The process's index in the parameters.
    pub process: usize,
    /// The stream it came from.
    pub stream: StreamName,
    /// The line without its newline (invalid UTF-8 replaced), cut to `max_line_bytes`.
    pub line: String,
    /// Present and true when the line was longer and was cut.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cut: bool,
}

/// What one stream of a process produced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StreamReport {
    /// Lines read (a last line without a newline counts).
    pub lines: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Lines sent as `log` events.
    pub logged_lines: u64,
    /// Logged lines that were longer than `max_line_bytes` and were cut.
    pub cut_lines: u64,
    /// Lines past `max_lines`, counted but not logged.
    pub dropped_lines: u64,
    /// Whether anything was cut or dropped.
    pub truncated: bool,
}

/// Reads `stream` to its end, sending the lines to log on `events`.
pub async fn read_lines(
    stream: impl AsyncRead + Unpin,
    process: usize,
    name: StreamName,
    caps: OutputCaps,
    events: &mpsc::Sender<RunEvent>,
) -> StreamReport {
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, stream);
    let mut report = StreamReport::default();
    let mut line = Vec::with_capacity(caps.max_line_bytes.min(READ_BUFFER_BYTES));
    let mut cut = false;
    let mut in_line = false;
    // A read error ends the stream like an end of file.
    while let Ok(buffer) = reader.fill_buf().await {
        if buffer.is_empty() {
            break;
        }
        let newline = buffer.iter().position(|byte| *byte == b'\n');
        let content = &buffer[..newline.unwrap_or(buffer.len())];
        let room = caps.max_line_bytes.saturating_sub(line.len());
        line.extend_from_slice(&content[..content.len().min(room)]);
        cut |= content.len() > room;
        in_line = true;
        let consumed = content.len() + usize::from(newline.is_some());
        reader.consume(consumed);
        report.bytes += consumed as u64;
        if newline.is_some() {
            finish_line(&mut report, &mut line, &mut cut, process, name, caps, events).await;
            in_line = false;
        }
    }
    if in_line {
        finish_line(&mut report, &mut line, &mut cut, process, name, caps, events).await;
    }
    report.truncated = report.cut_lines > 0 || report.dropped_lines > 0;
    report
}

async fn finish_line(
    report: &mut StreamReport,
    line: &mut Vec<u8>,
    cut: &mut bool,
    process: usize,
    stream: StreamName,
    caps: OutputCaps,
    events: &mpsc::Sender<RunEvent>,
) {
    report.lines += 1;
    if report.logged_lines < u64::from(caps.max_lines) {
        report.logged_lines += 1;
        report.cut_lines += u64::from(*cut);
        let text = String::from_utf8_lossy(line).into_owned();
        // A closed receiver means the run is being dropped; reading on just drains the pipe.
        let _ = events.send(RunEvent::Line(OutputLine { process, stream, line: text, cut: *cut })).await;
    } else {
        report.dropped_lines += 1;
    }
    line.clear();
    *cut = false;
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(input: &[u8], max_lines: u32, max_line_bytes: usize) -> (StreamReport, Vec<OutputLine>) {
        let (sender, mut receiver) = mpsc::channel(1024);
        let report = read_lines(input, 3, StreamName::Stderr, OutputCaps { max_lines, max_line_bytes }, &sender).await;
        drop(sender);
        let mut lines = Vec::new();
        while let Some(RunEvent::Line(line)) = receiver.recv().await {
            lines.push(line);
        }
        (report, lines)
    }

    #[tokio::test]
    async fn lines_are_sent_in_order_with_a_last_line_lacking_its_newline() {
        let (report, lines) = read(b"one\ntwo\n\nthree", 10, 100).await;
        let texts: Vec<_> = lines.iter().map(|line| line.line.as_str()).collect();
        assert_eq!(texts, ["one", "two", "", "three"]);
        assert!(lines.iter().all(|line| line.process == 3 && line.stream == StreamName::Stderr && !line.cut));
        assert_eq!(report, StreamReport { lines: 4, bytes: 14, logged_lines: 4, ..StreamReport::default() });
    }

    #[tokio::test]
    async fn long_lines_are_cut_across_buffer_refills_and_counted() {
        let mut input = vec![b'x'; 3 * READ_BUFFER_BYTES];
        input.extend_from_slice(b"\nshort\n");
        let (report, lines) = read(&input, 10, 5).await;
        assert_eq!(lines[0], OutputLine { process: 3, stream: StreamName::Stderr, line: "xxxxx".into(), cut: true });
        assert_eq!(lines[1].line, "short");
        assert!(!lines[1].cut);
        assert_eq!((report.lines, report.cut_lines, report.bytes), (2, 1, input.len() as u64));
        assert!(report.truncated);
    }

    #[tokio::test]
    async fn lines_past_the_cap_are_counted_not_logged() {
        let input: String = (1..=100).map(|n| format!("{n}\n")).collect();
        let (report, lines) = read(input.as_bytes(), 10, 100).await;
        assert_eq!(lines.len(), 10);
        assert_eq!(lines[9].line, "10");
        assert_eq!((report.lines, report.logged_lines, report.dropped_lines), (100, 10, 90));
        assert!(report.truncated);
        let (report, lines) = read(b"a\nb\n", 0, 100).await;
        assert!(lines.is_empty());
        assert_eq!(report.dropped_lines, 2);
    }

    #[test]
    fn a_log_line_shows_cut_only_when_cut() {
        let line = OutputLine { process: 0, stream: StreamName::Stdout, line: "hi".into(), cut: false };
        assert_eq!(serde_json::to_value(&line).unwrap(), serde_json::json!({"process": 0, "stream": "stdout", "line": "hi"}));
    }
}
