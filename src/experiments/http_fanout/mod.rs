//! `http-fanout`: many HTTP requests under a connection cap, an in-flight cap and a start-rate
//! cap, in a closed model (a worker sends its next request when the previous one is answered)
//! or an open model (requests arrive on a schedule; latency is measured from each request's
//! intended start, so a slow server cannot hide its queueing). Each connection is owned by one
//! worker task, so `max_connections` is exact. Workers run on current-thread runtimes of their
//! own, one per core the process may use: no work stealing between threads on the hot path, and
//! the control plane's runtime stays free. In the closed model they take answers in batches
//! (`busy_poll: batched`, the default) or spin while answers keep coming (`busy_poll: adaptive`;
//! see [`busy_poll`]). With `pool: shared` the workers are tasks on the control plane instead,
//! sending through the service's shared client ([`shared_pool`]), whose connections outlive the
//! job.

pub mod breakdown;
pub mod busy_poll;
pub mod connection;
pub mod dial;
pub mod h2;
pub mod http1;
pub mod load;
pub mod params;
pub mod plan;
pub mod report;
pub mod request_spec;
pub mod schedule;
pub mod shards;
pub mod shared_pool;
pub mod tally;
pub mod thresholds;
pub mod worker;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior, interval, sleep_until};

use self::breakdown::EndpointStats;
use self::busy_poll::{BusyPoll, Poller};
use self::dial::Dialer;
use self::h2::H2Connections;
use self::load::ModelPlan;
use self::params::{BusyPollMode, FanoutParams, HttpMethod, HttpVersion, PoolMode, check_url};
use self::plan::FanoutPlan;
use self::report::{FanoutReport, LoadModel, Reporter};
use self::schedule::{ArrivalSchedule, Pacing};
use self::shards::RequestIndices;
use self::tally::SharedTally;
use self::thresholds::{Observed, describe_missed};
use self::worker::{Arrival, Fanout, Feed, Transport, run_worker};
use super::dedicated_runtime::{run_on_own_thread, run_tokio};
use super::{Experiment, ExperimentError};
use crate::cpu::{CpuMeter, CpuScope};
use crate::jobs::context::{JobContext, PROGRESS_INTERVAL};
use crate::services::Services;
use crate::services::http_client::SharedHttpClient;
use crate::validation::FieldErrors;

/// The experiment.
pub struct HttpFanout;

impl Experiment for HttpFanout {
    const KIND: &'static str = "http-fanout";
    const SUMMARY: &'static str = "HTTP load with max connections, max in flight and max per second, closed or open \
                                   (constant-rate) model, with HdrHistogram latency from intended start";
    type Params = FanoutParams;
    type Report = FanoutReport;

    fn example() -> Self::Params {
        FanoutParams {
            url: Some("http://127.0.0.1:8080/targets/hello/{i}".into()),
            count: Some(2000),
            urls: None,
            targets: None,
            method: HttpMethod::Get,
            headers: None,
            body: None,
            max_connections: 8,
            concurrency: None,
            max_per_second: None,
            duration_ms: None,
            rate: None,
            ramp: None,
            pool_timeout_ms: None,
            connect_timeout_ms: None,
            keep_alive: true,
            http_version: HttpVersion::Http1,
            busy_poll: None,
            pool: PoolMode::Own,
            timeout_ms: 10_000,
            thresholds: None,
            shards: None,
            shard: None,
        }
    }

    fn admit(params: &Self::Params, services: &Services, errors: &mut FieldErrors) {
        for kind in params.request_kinds() {
            if let Ok(url) = check_url(&kind.url.replace("{i}", "0"))
                && let Err(reason) = services.outbound.check_url(&url)
            {
                errors.add(kind.field, reason);
            }
        }
    }

    async fn run(ctx: JobContext, params: Self::Params) -> Result<Self::Report, ExperimentError> {
        if let Some(shards) = params.shards {
            let mut report = shards::run_sharded(&ctx, &params, shards).await?;
            check_thresholds(&params, &mut report)?;
            return Ok(report);
        }
        let plan = FanoutPlan::resolve(&params, &ctx.services().outbound).await?;
        let dialer = Dialer::new(plan.load.http_version, plan.needs_tls(), &ctx.services().tls_roots)?;
        let workers = plan.load.workers;
        let threads = worker_threads(workers);
        let started = Instant::now();
        // The open model's backlog: arrivals wait here for a free worker; a full backlog drops.
        let (arrivals, backlog) = mpsc::channel::<Arrival>(workers.max(1));
        let feed = match &plan.load.model {
            ModelPlan::Open { pool_timeout, .. } => Feed::Open { queue: Mutex::new(backlog), pool_timeout: *pool_timeout },
            ModelPlan::Closed { cap, duration, per_second } => Feed::Closed {
                next: AtomicU64::new(0),
                cap: *cap,
                deadline: duration.map(|duration| started + duration),
                pacing: per_second.map(|per_second| Pacing { start: started, per_second }),
                indices: plan.load.indices,
            },
        };
        let fanout = Arc::new(Fanout {
            dialer,
            feed,
            tally: SharedTally::new(threads, plan.labels.len()),
            request_timeout: plan.load.request_timeout,
            connect_timeout: plan.load.connect_timeout,
            transport: match (plan.load.pool, plan.load.http_version) {
                (PoolMode::Shared, _) => Transport::Shared(ctx.services().http.clone()),
                (PoolMode::Own, HttpVersion::Http1) => Transport::Http1 { keep_alive: plan.load.keep_alive },
                (PoolMode::Own, HttpVersion::Http2) => Transport::Http2(H2Connections::new(plan.load.max_connections as usize)),
            },
            plan,
        });
        let load = &fanout.plan.load;
        let schedule = match &load.model {
            ModelPlan::Open { schedule, .. } => Some(schedule.clone()),
            ModelPlan::Closed { .. } => None,
        };

        let mut pool = match load.pool {
            PoolMode::Own => spawn_worker_threads(&fanout, workers, threads, load.busy_poll, ctx.cpu()),
            PoolMode::Shared => spawn_pooled_workers(&fanout, workers, ctx.cpu()),
        };
        // The shared pool counts its connections for all its users: this job's are those opened while it runs.
        let shared_connections = SharedConnections::of(&fanout.transport);
        if let Some(schedule) = schedule.clone() {
            let fanout = fanout.clone();
            let indices = load.indices;
            pool.spawn(async move {
                release_arrivals(&schedule, started, indices, arrivals, &fanout.tally, workers).await;
                Ok(())
            });
        } else {
            drop(arrivals);
        }

        let mut reporter = Reporter::new(started, load.total());
        let mut progress_timer = interval(PROGRESS_INTERVAL);
        progress_timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut second_timer = tokio::time::interval_at(started + Duration::from_secs(1), Duration::from_secs(1));
        second_timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                joined = pool.join_next() => match joined {
                    None => break,
                    Some(Ok(Ok(()))) => {}
                    Some(Ok(Err(error))) => return Err(error),
                    Some(Err(error)) => return Err(ExperimentError::Internal(format!("a fan-out task failed: {error}"))),
                },
                _ = second_timer.tick() => reporter.close_second(&fanout.tally),
                _ = progress_timer.tick() => {
                    shared_connections.update(&fanout.tally);
                    ctx.progress(reporter.snapshot(&fanout.tally, &fanout.plan.labels)).await;
                }
            }
        }
        shared_connections.update(&fanout.tally);
        ctx.progress(reporter.snapshot(&fanout.tally, &fanout.plan.labels)).await;
        let model = if schedule.is_some() { LoadModel::Open } else { LoadModel::Closed };
        let target_rps = schedule.as_ref().map(ArrivalSchedule::mean_rate);
        let scope = match load.pool {
            PoolMode::Own => CpuScope::DedicatedThreads,
            PoolMode::Shared => CpuScope::SharedRuntime,
        };
        let cpu = ctx.cpu().usage(scope);
        let mut report = reporter.report(&fanout.tally, &fanout.plan.labels, model, target_rps, load, cpu);
        ctx.services().meters.fanout_traffic(report.requests, report.bytes_sent, report.bytes_received);
        check_thresholds(&params, &mut report)?;
        Ok(report)
    }
}

/// One worker thread per core this process may use, fewer when there are fewer workers.
fn worker_threads(workers: usize) -> usize {
    std::thread::available_parallelism().map_or(1, |cores| cores.get()).clamp(1, workers.max(1))
}

/// Starts the workers on `threads` current-thread runtimes, each on an OS thread of its own;
/// worker `w` runs on thread `w mod threads`. Each thread waits for answers as `busy_poll` and
/// its worker count ask ([`Poller::of`]). The threads' CPU is charged to `cpu`. Dropping the
/// returned set stops them all.
fn spawn_worker_threads(
    fanout: &Arc<Fanout>,
    workers: usize,
    threads: usize,
    busy_poll: BusyPollMode,
    cpu: &CpuMeter,
) -> JoinSet<Result<(), ExperimentError>> {
    let mut pool = JoinSet::new();
    for thread in 0..threads {
        let fanout = fanout.clone();
        let name = format!("fanout-{thread}");
        let cpu = cpu.clone();
        pool.spawn(async move {
            let ran = run_on_own_thread(&name, &cpu.clone(), move |stop| {
                run_tokio(tokio::runtime::Builder::new_current_thread(), &cpu, stop, async move {
                    let on_this_thread = (thread..workers).step_by(threads);
                    let poll = Poller::of(busy_poll, on_this_thread.len()).map(|poller| Arc::new(BusyPoll::new(poller)));
                    let mut local = JoinSet::new();
                    for worker in on_this_thread {
                        local.spawn(run_worker(fanout.clone(), worker, poll.clone()));
                    }
                    let all_finished = async move {
                        while let Some(joined) = local.join_next().await {
                            if let Err(error) = joined {
                                return Err(ExperimentError::Internal(format!("a fan-out worker failed: {error}")));
                            }
                        }
                        Ok(())
                    };
                    match poll {
                        Some(poll) => tokio::select! {
                            finished = all_finished => finished,
                            () = poll.run() => unreachable!("the poller never ends"),
                        },
                        None => all_finished.await,
                    }
                })
            })
            .await;
            // Outer: the thread; middle: the runtime; `None`: stopped; inner: the workers.
            ran?.map(|stopped| stopped.unwrap_or(Ok(())))?
        });
    }
    pool
}

/// Starts the workers as tasks on the control plane's runtime, for `pool: shared`: the shared
/// client's connections are driven by tasks of that runtime, which outlive the job (a worker
/// thread's runtime would take them down with it). Each worker's polls are charged to `cpu`.
fn spawn_pooled_workers(fanout: &Arc<Fanout>, workers: usize, cpu: &CpuMeter) -> JoinSet<Result<(), ExperimentError>> {
    let mut pool = JoinSet::new();
    for worker in 0..workers {
        let fanout = fanout.clone();
        pool.spawn(cpu.attribute(async move {
            run_worker(fanout, worker, None).await;
            Ok(())
        }));
    }
    pool
}

/// With `pool: shared`, the shared client's connection count when the run began.
struct SharedConnections(Option<(SharedHttpClient, u64)>);

impl SharedConnections {
    fn of(transport: &Transport) -> Self {
        match transport {
            Transport::Shared(client) => SharedConnections(Some((client.clone(), client.connections_opened()))),
            _ => SharedConnections(None),
        }
    }

    /// Sets the tally's opened connections to those the shared pool opened since the run began.
    fn update(&self, tally: &SharedTally) {
        if let Some((client, at_start)) = &self.0 {
            tally.connections_opened.store(client.connections_opened().saturating_sub(*at_start), Ordering::Relaxed);
        }
    }
}

/// The open model's scheduler: puts each arrival on the backlog at its intended time. An arrival
/// is counted dropped only when the backlog is full *and* every one of the `workers` has a
/// request in flight; with a worker free, a full backlog only means the workers' thread has not
/// run yet (a scheduling stall), so the scheduler waits for room and latency, measured from the
/// intended time, shows the stall.
async fn release_arrivals(
    schedule: &ArrivalSchedule,
    start: Instant,
    indices: RequestIndices,
    backlog: mpsc::Sender<Arrival>,
    tally: &SharedTally,
    workers: usize,
) {
    for (index, offset) in schedule.offsets().enumerate() {
        let intended = start + offset;
        sleep_until(intended).await;
        let sent = match backlog.try_send(Arrival { index: indices.nth(index as u64), intended }) {
            Ok(()) => true,
            Err(TrySendError::Full(arrival)) if (tally.in_flight.load(Ordering::Relaxed) as usize) < workers => {
                backlog.send(arrival).await.is_ok()
            }
            Err(_) => false,
        };
        if !sent {
            tally.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn check_thresholds(params: &FanoutParams, report: &mut FanoutReport) -> Result<(), ExperimentError> {
    let Some(thresholds) = &params.thresholds else {
        return Ok(());
    };
    let observed = |latency, error_rate, achieved_rps| Observed { latency, error_rate, achieved_rps };
    let endpoints: HashMap<&str, &EndpointStats> = report.endpoints.iter().map(|endpoint| (endpoint.key.as_str(), endpoint)).collect();
    report.thresholds = thresholds.evaluate(&observed(&report.latency, report.error_rate, report.achieved_rps), |key| {
        endpoints.get(key).map(|endpoint| observed(&endpoint.latency, endpoint.error_rate, endpoint.achieved_rps))
    });
    let missed = describe_missed(&report.thresholds);
    if missed.is_empty() {
        return Ok(());
    }
    let report = serde_json::to_value(&*report).map_err(|error| ExperimentError::Internal(error.to_string()))?;
    Err(ExperimentError::ThresholdsMissed { missed, report })
}

#[cfg(test)]
mod tests {
    use super::params::RampStep;
    use super::*;

    /// 10 arrivals over 10 ms into a backlog of 2 that nobody takes from.
    async fn release_ten(in_flight: u64, workers: usize) -> (u64, Vec<u64>) {
        let schedule = ArrivalSchedule::new(&[RampStep { rate: 1000.0, duration_ms: 10 }]);
        let tally = SharedTally::new(1, 1);
        tally.in_flight.store(in_flight, Ordering::Relaxed);
        let (backlog, mut taken) = mpsc::channel(2);
        // With a worker free the scheduler ends up waiting for room: give it a second of (paused) time.
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            release_arrivals(&schedule, Instant::now(), RequestIndices::of(None), backlog, &tally, workers),
        )
        .await;
        let mut indexes = Vec::new();
        while let Ok(arrival) = taken.try_recv() {
            indexes.push(arrival.index);
        }
        (tally.dropped.load(Ordering::Relaxed), indexes)
    }

    #[tokio::test(start_paused = true)]
    async fn arrivals_are_dropped_only_while_every_worker_is_busy() {
        // Every connection busy and the backlog full: the rest are dropped.
        assert_eq!(release_ten(2, 2).await, (8, vec![0, 1]));
        // A connection free: a full backlog means its worker has not run yet; nothing is dropped.
        assert_eq!(release_ten(1, 2).await, (0, vec![0, 1]));
    }
}
