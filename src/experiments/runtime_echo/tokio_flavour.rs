//! The echo load on a tokio runtime (epoll): a listener on 127.0.0.1 port 0, one task per
//! accepted connection echoing what it reads, and one task per client doing its round trips.
//! Generic over nothing: the runtime it runs on is the flavour.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::load::{ClientMeter, EchoLoad, FlavourRun, first_message, mismatch, stamp};

/// Runs the whole load on the current runtime; `progress` counts finished round trips.
pub async fn run(load: EchoLoad, progress: Arc<AtomicU64>) -> Result<FlavourRun, String> {
    let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|error| format!("cannot listen: {error}"))?;
    let address = listener.local_addr().map_err(|error| format!("no listening address: {error}"))?;
    let mut server = JoinSet::new();
    server.spawn(serve(listener, load));

    let started = Instant::now();
    let mut clients = JoinSet::new();
    for connection in 0..load.connections {
        clients.spawn(client(address, connection, load, progress.clone()));
    }
    let mut samples = Vec::with_capacity(load.connections as usize);
    while let Some(joined) = clients.join_next().await {
        samples.push(joined.map_err(|error| format!("a client task failed: {error}"))??);
    }
    let elapsed = started.elapsed();
    while let Some(joined) = server.join_next().await {
        joined.map_err(|error| format!("the server task failed: {error}"))??;
    }
    Ok(FlavourRun::merge(elapsed, samples))
}

/// Accepts the load's connections and echoes each until its client closes it.
async fn serve(listener: TcpListener, load: EchoLoad) -> Result<(), String> {
    let mut connections = JoinSet::new();
    for _ in 0..load.connections {
        let (stream, _) = listener.accept().await.map_err(|error| format!("accept failed: {error}"))?;
        connections.spawn(echo(stream, load.server_buffer_bytes()));
    }
    while let Some(joined) = connections.join_next().await {
        joined.map_err(|error| format!("an echo task failed: {error}"))??;
    }
    Ok(())
}

async fn echo(mut stream: TcpStream, buffer_bytes: usize) -> Result<(), String> {
    stream.set_nodelay(true).map_err(|error| format!("server: {error}"))?;
    let mut buffer = vec![0; buffer_bytes];
    loop {
        let read = stream.read(&mut buffer).await.map_err(|error| format!("server read: {error}"))?;
        if read == 0 {
            return Ok(());
        }
        stream.write_all(&buffer[..read]).await.map_err(|error| format!("server write: {error}"))?;
    }
}

/// One client: connects, then writes each round's message and reads its echo back whole.
async fn client(address: SocketAddr, connection: u32, load: EchoLoad, progress: Arc<AtomicU64>) -> Result<Vec<u32>, String> {
    let mut stream = TcpStream::connect(address).await.map_err(|error| format!("connect: {error}"))?;
    stream.set_nodelay(true).map_err(|error| format!("client: {error}"))?;
    let mut message = first_message(connection, load.message_bytes);
    let mut echoed = vec![0; load.message_bytes];
    let mut meter = ClientMeter::new(&progress, load.round_trips);
    for round in 0..load.round_trips {
        stamp(&mut message, round);
        let sent = Instant::now();
        stream.write_all(&message).await.map_err(|error| format!("client write: {error}"))?;
        stream.read_exact(&mut echoed).await.map_err(|error| format!("client read: {error}"))?;
        meter.record(sent.elapsed());
        if echoed != message {
            return Err(mismatch(connection, round));
        }
    }
    meter.flush();
    Ok(meter.rtt_micros)
}
