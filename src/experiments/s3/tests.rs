//! The transfer layer against the in-process S3 endpoint (a real S3 server over loopback): a
//! multipart upload whose future is dropped is aborted by its guard, on the cleanup tracker.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Parser;
use tokio::sync::Semaphore;

use super::transfer::{Counters, Transfer};
use crate::config::ServeConfig;
use crate::outbound::OutboundPolicy;
use crate::services::s3::S3Target;

const MIB: u64 = 1 << 20;

/// The control plane's settings alone, parsed like the command line does.
#[derive(Parser)]
struct ServeArgs {
    #[command(flatten)]
    serve: ServeConfig,
}

#[tokio::test]
async fn a_dropped_multipart_upload_is_aborted() {
    let data_dir = std::env::temp_dir().join(format!("asynclab-s3-unit-{}", uuid::Uuid::new_v4().simple()));
    let config = ServeArgs::try_parse_from(["asynclab", "--data-dir", &data_dir.display().to_string()]).unwrap().serve;
    let target = S3Target::build(&config, &OutboundPolicy::default()).await.unwrap();
    target.client.create_bucket().bucket("unit").send().await.unwrap();
    let transfer = Transfer {
        client: target.client.clone(),
        endpoint: target.endpoint.as_str().into(),
        bucket: "unit".into(),
        requests: Arc::new(Semaphore::new(1)),
        cleanups: target.cleanups.clone(),
        counters: Arc::new(Counters::default()),
        seed: 1,
        size_bytes: 20 * MIB,
        part_bytes: Some(5 * MIB),
        cpu: crate::cpu::CpuMeter::new(),
    };
    let counters = transfer.counters.clone();
    let upload = tokio::spawn(async move { transfer.upload(0, "dropped/object").await });
    for _ in 0..3000 {
        if counters.parts_uploaded.load(Ordering::Relaxed) >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(counters.parts_uploaded.load(Ordering::Relaxed) >= 1, "a part was uploaded");
    assert!(!upload.is_finished(), "the upload is still running");
    upload.abort();
    assert!(upload.await.unwrap_err().is_cancelled());

    target.cleanups.close();
    tokio::time::timeout(Duration::from_secs(10), target.cleanups.wait()).await.expect("the abort finished");
    let root = data_dir.join("s3");
    let parts_left =
        std::fs::read_dir(&root).unwrap().flatten().filter(|entry| entry.file_name().to_string_lossy().starts_with(".upload_id-")).count();
    assert_eq!(parts_left, 0, "part files left in {}", root.display());
    let listed = target.client.list_objects_v2().bucket("unit").prefix("dropped/").send().await.unwrap();
    assert!(listed.contents().is_empty(), "no object");
    let _ = std::fs::remove_dir_all(data_dir);
}
