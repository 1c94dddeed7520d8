//! When requests start: even pacing for the closed model's `max_per_second`, and the open
//! model's arrival schedule (constant rate or a ramp of constant-rate stages).

use std::time::Duration;

use tokio::time::Instant;

use super::params::RampStep;

/// Even spacing of request starts: at most `per_second` begin in any second.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    /// When request 0 may start.
    pub start: Instant,
    /// Starts per second.
    pub per_second: f64,
}

impl Pacing {
    /// The earliest start of request `index`.
    pub fn due(&self, index: u64) -> Instant {
        self.start + Duration::from_secs_f64(index as f64 / self.per_second)
    }
}

/// The open model's arrivals: each stage sends `floor(rate × duration)` requests evenly spaced.
#[derive(Debug, Clone)]
pub struct ArrivalSchedule {
    /// (offset of the stage's start, arrivals per second, arrivals in the stage).
    stages: Vec<(Duration, f64, u64)>,
}

impl ArrivalSchedule {
    /// The schedule of `stages`, back to back.
    pub fn new(stages: &[RampStep]) -> Self {
        let mut offset = Duration::ZERO;
        let stages = stages
            .iter()
            .map(|step| {
                let length = Duration::from_millis(step.duration_ms);
                let arrivals = (step.rate * length.as_secs_f64()).floor() as u64;
                let stage = (offset, step.rate, arrivals);
                offset += length;
                stage
            })
            .collect();
        ArrivalSchedule { stages }
    }

    /// How many requests the schedule sends.
    pub fn total(&self) -> u64 {
        self.stages.iter().map(|(_, _, arrivals)| arrivals).sum()
    }

    /// The requests per second asked for over the whole schedule.
    pub fn mean_rate(&self) -> f64 {
        let length = self.length().as_secs_f64();
        if length > 0.0 { self.total() as f64 / length } else { 0.0 }
    }

    /// How long the schedule lasts.
    pub fn length(&self) -> Duration {
        match self.stages.last() {
            Some((offset, rate, arrivals)) if *rate > 0.0 => {
                // A stage lasts its full duration even if its last arrival is earlier.
                (*offset + Duration::from_secs_f64(*arrivals as f64 / rate)).max(*offset)
            }
            Some((offset, _, _)) => *offset,
            None => Duration::ZERO,
        }
    }

    /// Every arrival's offset from the start, in order.
    pub fn offsets(&self) -> impl Iterator<Item = Duration> + '_ {
        self.stages
            .iter()
            .flat_map(|(start, rate, arrivals)| (0..*arrivals).map(move |index| *start + Duration::from_secs_f64(index as f64 / rate)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn pacing_spreads_starts_evenly() {
        let pacing = Pacing { start: Instant::now(), per_second: 4.0 };
        assert_eq!(pacing.due(0), pacing.start);
        assert_eq!(pacing.due(1) - pacing.start, Duration::from_millis(250));
        assert_eq!(pacing.due(8) - pacing.start, Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn paced_starts_never_exceed_the_rate_in_any_second() {
        let pacing = Pacing { start: Instant::now(), per_second: 10.0 };
        let starts: Vec<Duration> = (0..100).map(|i| pacing.due(i) - pacing.start).collect();
        for (i, first) in starts.iter().enumerate() {
            let in_window = starts[i..].iter().take_while(|at| **at < *first + Duration::from_secs(1)).count();
            assert!(in_window <= 10, "{in_window} starts within a second from {first:?}");
        }
    }

    #[test]
    fn a_constant_rate_sends_rate_times_duration() {
        let schedule = ArrivalSchedule::new(&[RampStep { rate: 20_000.0, duration_ms: 3_000 }]);
        assert_eq!(schedule.total(), 60_000);
        let offsets: Vec<Duration> = schedule.offsets().collect();
        assert_eq!(offsets.len(), 60_000);
        assert_eq!(offsets[1], Duration::from_micros(50));
        assert_eq!(offsets[59_999], Duration::from_micros(2_999_950));
        assert!((schedule.mean_rate() - 20_000.0).abs() < 1.0);
    }

    #[test]
    fn ramp_stages_follow_each_other() {
        let schedule = ArrivalSchedule::new(&[
            RampStep { rate: 10.0, duration_ms: 1_000 },
            RampStep { rate: 0.0, duration_ms: 500 },
            RampStep { rate: 4.0, duration_ms: 1_000 },
        ]);
        let offsets: Vec<u128> = schedule.offsets().map(|offset| offset.as_millis()).collect();
        assert_eq!(offsets.len(), 14);
        assert_eq!(&offsets[..3], [0, 100, 200]);
        assert_eq!(&offsets[10..], [1500, 1750, 2000, 2250]);
    }

    #[tokio::test(start_paused = true)]
    async fn sleeping_through_the_schedule_keeps_the_rate() {
        let schedule = ArrivalSchedule::new(&[RampStep { rate: 1_000.0, duration_ms: 2_000 }]);
        let start = Instant::now();
        let mut sent = 0u64;
        for offset in schedule.offsets() {
            tokio::time::sleep_until(start + offset).await;
            sent += 1;
        }
        let elapsed = start.elapsed();
        assert_eq!(sent, 2_000);
        let achieved = sent as f64 / elapsed.as_secs_f64();
        assert!((achieved - 1_000.0).abs() / 1_000.0 < 0.01, "{achieved} per second");
    }
}
