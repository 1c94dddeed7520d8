//! Unit tests of `file-io`: parameter checks, and every read mode agreeing with the writer.

use tokio_util::sync::CancellationToken;

use super::params::{FileIoParams, ReadMode, is_plain_name};
use super::read::read_file;
use super::temp::TempFiles;
use super::write_file;
use crate::validation::{FieldErrors, Validate};

fn fields(params: &FileIoParams) -> Vec<String> {
    let mut errors = FieldErrors::default();
    params.validate(&mut errors);
    errors.0.into_iter().map(|error| error.field).collect()
}

#[test]
fn only_plain_names_are_accepted_as_subdir() {
    assert!(is_plain_name("data"));
    assert!(is_plain_name("run-1.x"));
    for name in ["", ".", "..", "../x", "a/b", "/etc", "a\\b", "x/..", "./x"] {
        assert!(!is_plain_name(name), "{name:?}");
    }
    let params = FileIoParams { subdir: Some("../escape".into()), ..FileIoParams::default() };
    assert_eq!(fields(&params), ["subdir"]);
}

#[test]
fn sizes_and_counts_are_bounded() {
    assert!(fields(&FileIoParams::default()).is_empty());
    let params = FileIoParams { files: 1000, size_bytes: 2 << 20, ..FileIoParams::default() };
    assert_eq!(fields(&params), ["size_bytes"]);
    let params = FileIoParams { lines: Some(0), ..FileIoParams::default() };
    assert_eq!(fields(&params), ["lines"]);
    let params = FileIoParams { files: 0, chunk_bytes: 1, concurrency: 65, modes: vec![], ..FileIoParams::default() };
    assert_eq!(fields(&params), ["files", "chunk_bytes", "concurrency", "modes"]);
}

#[tokio::test]
async fn every_mode_reads_back_what_was_written() {
    let dir = std::env::temp_dir().join(format!("asynclab-file-io-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    // 10 lines of 100 bytes and a last line of 55 without a newline.
    let path = dir.join("f.txt");
    let expected = write_file(&path, 3, 1055, 100).await.unwrap();
    for mode in [ReadMode::Lines, ReadMode::Whole, ReadMode::Chunked, ReadMode::Blocking] {
        let read = read_file(mode, path.clone(), 512, 1055, CancellationToken::new(), crate::cpu::CpuMeter::new()).await.unwrap();
        assert_eq!((read.checksum, read.bytes, read.lines), (expected, 1055, 11), "{mode:?}");
        assert_eq!(read.thread.is_some(), mode == ReadMode::Blocking);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn temporary_files_are_deleted_when_dropped() {
    let dir = std::env::temp_dir().join(format!("asynclab-file-io-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let paths: Vec<_> = (0..3).map(|index| dir.join(format!(".tmp-{index}"))).collect();
    for path in &paths {
        write_file(path, 1, 10, 5).await.unwrap();
    }
    let mut temp = TempFiles::default();
    temp.track(paths.clone());
    drop(temp);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}
