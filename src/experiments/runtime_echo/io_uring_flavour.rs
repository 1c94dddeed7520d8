//! The echo load on monoio, an io_uring runtime, thread per core: each thread builds its own
//! runtime with its own listener and serves its own share of the clients, sharing nothing.
//! monoio's tasks cannot be woken from another thread (its `sync` feature is off), so a stop is
//! seen by the clients checking the stop token between round trips; the servers then see their
//! connections close and the threads return.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use monoio::io::{AsyncReadRent, AsyncReadRentExt, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::load::{ClientMeter, EchoLoad, FlavourRun, first_message, mismatch, stamp};
use crate::cpu::CpuMeter;

/// Submission queue entries of each thread's ring.
const RING_ENTRIES: u32 = 1024;
/// Name prefix of the threads this flavour starts.
pub const THREAD_NAME_PREFIX: &str = "echo-uring-";

/// Why a flavour could not finish.
#[derive(Debug)]
pub enum UringFailure {
    /// The kernel refused io_uring (too old, or forbidden by a seccomp profile).
    Unavailable(String),
    /// The load failed.
    Load(String),
}

/// What one thread measured: its elapsed time and its clients' round-trip times.
type ThreadRun = (Duration, Vec<Vec<u32>>);

/// Runs the load on `threads` threads, blocking the calling thread until all are done; their CPU
/// is charged to `cpu`.
pub fn run(
    load: EchoLoad,
    threads: u32,
    progress: &Arc<AtomicU64>,
    stop: &CancellationToken,
    cpu: &CpuMeter,
) -> Result<FlavourRun, UringFailure> {
    let shares: Vec<u32> = (0..threads)
        .map(|thread| load.connections / threads + u32::from(thread < load.connections % threads))
        .filter(|&connections| connections > 0)
        .collect();
    // Every thread starts its clock once all rings and listeners are up.
    let ready = Barrier::new(shares.len());
    let outcomes: Vec<Result<ThreadRun, UringFailure>> = std::thread::scope(|scope| {
        let handles: Vec<_> = shares
            .iter()
            .enumerate()
            .map(|(index, &connections)| {
                let load = EchoLoad { connections, ..load };
                let first_connection = shares[..index].iter().sum::<u32>();
                let ready = &ready;
                std::thread::Builder::new().name(format!("{THREAD_NAME_PREFIX}{index}")).spawn_scoped(scope, move || {
                    let _tracked = cpu.track_current_thread();
                    run_thread(load, first_connection, progress, stop, ready)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| match handle {
                Ok(handle) => handle.join().unwrap_or_else(|_| Err(UringFailure::Load("an io_uring thread panicked".into()))),
                Err(error) => Err(UringFailure::Load(format!("cannot start a thread: {error}"))),
            })
            .collect()
    });
    let mut elapsed = Duration::ZERO;
    let mut samples = Vec::new();
    for outcome in outcomes {
        let (thread_elapsed, thread_samples) = outcome?;
        elapsed = elapsed.max(thread_elapsed);
        samples.extend(thread_samples);
    }
    Ok(FlavourRun::merge(elapsed, samples))
}

fn run_thread(
    load: EchoLoad,
    first_connection: u32,
    progress: &Arc<AtomicU64>,
    stop: &CancellationToken,
    ready: &Barrier,
) -> Result<ThreadRun, UringFailure> {
    let runtime = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new().with_entries(RING_ENTRIES).build();
    let listener = TcpListener::bind("127.0.0.1:0");
    // Waited for whatever happened, so a failing thread never leaves the others waiting.
    ready.wait();
    let mut runtime = runtime.map_err(|error| UringFailure::Unavailable(format!("io_uring is not available: {error}")))?;
    runtime
        .block_on(async {
            let listener = listener.map_err(|error| format!("cannot listen: {error}"))?;
            let address = listener.local_addr().map_err(|error| format!("no listening address: {error}"))?;
            let started = Instant::now();
            let server = monoio::spawn(serve(listener, load));
            let clients: Vec<_> = (first_connection..first_connection + load.connections)
                .map(|connection| monoio::spawn(client(address, connection, load, progress.clone(), stop.clone())))
                .collect();
            let mut samples = Vec::with_capacity(clients.len());
            for client in clients {
                samples.push(client.await?);
            }
            let elapsed = started.elapsed();
            server.await?;
            Ok((elapsed, samples))
        })
        .map_err(UringFailure::Load)
}

async fn serve(listener: TcpListener, load: EchoLoad) -> Result<(), String> {
    let mut connections = Vec::with_capacity(load.connections as usize);
    for _ in 0..load.connections {
        let (stream, _) = listener.accept().await.map_err(|error| format!("accept failed: {error}"))?;
        connections.push(monoio::spawn(echo(stream, load.server_buffer_bytes())));
    }
    for connection in connections {
        connection.await?;
    }
    Ok(())
}

async fn echo(mut stream: TcpStream, buffer_bytes: usize) -> Result<(), String> {
    stream.set_nodelay(true).map_err(|error| format!("server: {error}"))?;
    let mut buffer = Vec::with_capacity(buffer_bytes);
    loop {
        buffer.clear();
        let (read, returned) = stream.read(buffer).await;
        buffer = returned;
        if read.map_err(|error| format!("server read: {error}"))? == 0 {
            return Ok(());
        }
        let (written, returned) = stream.write_all(buffer).await;
        buffer = returned;
        written.map_err(|error| format!("server write: {error}"))?;
    }
}

/// One client: connects, then writes each round's message and reads its echo back whole;
/// gives up between two rounds once `stop` fired.
async fn client(
    address: SocketAddr,
    connection: u32,
    load: EchoLoad,
    progress: Arc<AtomicU64>,
    stop: CancellationToken,
) -> Result<Vec<u32>, String> {
    let mut stream = TcpStream::connect_addr(address).await.map_err(|error| format!("connect: {error}"))?;
    stream.set_nodelay(true).map_err(|error| format!("client: {error}"))?;
    let mut message = first_message(connection, load.message_bytes);
    let mut echoed = vec![0u8; load.message_bytes].into_boxed_slice();
    let mut meter = ClientMeter::new(&progress, load.round_trips);
    for round in 0..load.round_trips {
        if stop.is_cancelled() {
            return Err("stopped".into());
        }
        stamp(&mut message, round);
        let sent = Instant::now();
        let (written, returned) = stream.write_all(message).await;
        message = returned;
        written.map_err(|error| format!("client write: {error}"))?;
        let (read, returned) = stream.read_exact(echoed).await;
        echoed = returned;
        read.map_err(|error| format!("client read: {error}"))?;
        meter.record(sent.elapsed());
        if *echoed != *message {
            return Err(mismatch(connection, round));
        }
    }
    meter.flush();
    Ok(meter.rtt_micros)
}
