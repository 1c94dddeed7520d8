//! Latency histograms and the summaries experiments report.

use hdrhistogram::{Counter, Histogram};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The longest latency a histogram records exactly: one hour, in microseconds. Longer values
/// are clamped to it (no experiment's time limit is longer).
const MAX_TRACKABLE_MICROS: u64 = 3_600_000_000;
/// Three significant digits: 0.1% resolution at every magnitude, in bounded memory.
const SIGNIFICANT_DIGITS: u8 = 3;

/// A new latency histogram in microseconds, its memory fixed whatever is recorded.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKABLE_MICROS, SIGNIFICANT_DIGITS).expect("histogram bounds are valid constants")
}

/// Percentiles of a latency distribution, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LatencySummary {
    /// How many samples the summary covers.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 75th percentile.
    pub p75_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// 99.99th percentile.
    pub p9999_ms: f64,
    /// The largest sample.
    pub max_ms: f64,
    /// Arithmetic mean.
    pub mean_ms: f64,
    /// Standard deviation.
    pub stdev_ms: f64,
}

impl LatencySummary {
    /// Summarises a histogram recorded in microseconds.
    pub fn from_micros<T: Counter>(histogram: &Histogram<T>) -> Self {
        if histogram.is_empty() {
            return LatencySummary::default();
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        LatencySummary {
            count: histogram.len(),
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p75_ms: ms(histogram.value_at_quantile(0.75)),
            p90_ms: ms(histogram.value_at_quantile(0.90)),
            p95_ms: ms(histogram.value_at_quantile(0.95)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            p999_ms: ms(histogram.value_at_quantile(0.999)),
            p9999_ms: ms(histogram.value_at_quantile(0.9999)),
            max_ms: ms(histogram.max()),
            mean_ms: histogram.mean() / 1000.0,
            stdev_ms: histogram.stdev() / 1000.0,
        }
    }
}

/// One bucket of a latency histogram with logarithmic bucket widths.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HistogramBucket {
    /// The bucket's upper bound, in milliseconds.
    pub le_ms: f64,
    /// Samples in the bucket (above the previous bucket's bound, at most this one's).
    pub count: u64,
}

/// A histogram recorded in microseconds as buckets doubling in width from 0.1 ms, for charts.
pub fn log_buckets(histogram: &Histogram<u64>) -> Vec<HistogramBucket> {
    if histogram.is_empty() {
        return Vec::new();
    }
    histogram
        .iter_log(100, 2.0)
        .map(|bucket| HistogramBucket {
            le_ms: (bucket.value_iterated_to() + 1) as f64 / 1000.0,
            count: bucket.count_since_last_iteration(),
        })
        .collect()
}

/// A histogram's recorded values as `[value_us, count]` pairs, one per non-empty bucket (each
/// value the highest its bucket holds): a lossless form to send to where histograms are merged.
pub fn recorded_values<T: Counter>(histogram: &Histogram<T>) -> Vec<[u64; 2]> {
    histogram.iter_recorded().map(|bucket| [bucket.value_iterated_to(), bucket.count_at_value().as_u64()]).collect()
}

/// Adds [`recorded_values`] pairs into `histogram`: every value lands in the bucket it came
/// from, so the merge of several histograms summarises exactly like one that recorded every
/// sample. A count too large for a narrow counter saturates, as the counter itself would.
pub fn add_recorded_values<T: Counter>(histogram: &mut Histogram<T>, values: &[[u64; 2]]) {
    for &[value, count] in values {
        let count = T::from_u64(count).or_else(|| T::from_u32(u32::MAX)).unwrap_or_else(T::one);
        histogram.saturating_record_n(value, count);
    }
}

/// Milliseconds in a duration, with sub-millisecond precision, for reports.
pub fn millis(duration: std::time::Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_recorded_values_summarise_like_the_union_of_samples() {
        let (mut union, mut first, mut second) = (latency_histogram(), latency_histogram(), latency_histogram());
        for value in (1..5000u64).map(|i| i * i % 900_007 + 1) {
            union.record(value).unwrap();
            if value % 3 == 0 { first.record(value).unwrap() } else { second.record(value).unwrap() }
        }
        let mut merged = latency_histogram();
        add_recorded_values(&mut merged, &recorded_values(&first));
        add_recorded_values(&mut merged, &recorded_values(&second));
        assert_eq!(LatencySummary::from_micros(&merged), LatencySummary::from_micros(&union));
        assert_eq!(merged.len(), 4999);
    }

    #[test]
    fn summary_reads_percentiles_in_milliseconds() {
        let mut histogram = latency_histogram();
        for micros in 1..=1000 {
            histogram.record(micros * 1000).unwrap();
        }
        let summary = LatencySummary::from_micros(&histogram);
        assert_eq!(summary.count, 1000);
        assert!((summary.p50_ms - 500.0).abs() <= 1.0, "{summary:?}");
        assert!((summary.p99_ms - 990.0).abs() <= 1.0, "{summary:?}");
        assert!((summary.max_ms - 1000.0).abs() <= 1.0, "{summary:?}");
    }

    #[test]
    fn log_buckets_cover_every_sample() {
        let mut histogram = latency_histogram();
        for micros in [50, 150, 150, 900, 5_000] {
            histogram.record(micros).unwrap();
        }
        let buckets = log_buckets(&histogram);
        assert_eq!(buckets.iter().map(|bucket| bucket.count).sum::<u64>(), 5);
        assert_eq!(buckets[0], HistogramBucket { le_ms: 0.1, count: 1 });
        assert!(buckets.windows(2).all(|pair| pair[1].le_ms > pair[0].le_ms));
    }

    #[test]
    fn empty_histogram_summarises_to_zeroes() {
        assert_eq!(LatencySummary::from_micros(&latency_histogram()), LatencySummary::default());
    }
}
