//! The statistics behind a verdict: a bootstrap confidence interval of a quantile's (or the
//! mean's) difference between two bucketed latency histograms, a Mann-Whitney rank test between
//! two samples (per-second series), and Welch's t-test on two summaries (count, mean, standard
//! deviation). Pure functions; resampling uses a fixed seed, so a comparison is reproducible.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Bootstrap resamples drawn per interval.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;
/// The resampling seed: the same two reports always get the same interval.
const BOOTSTRAP_SEED: u64 = 0x5eed_a5c1_ab00_0001;
/// Above this expected count a bucket's Poisson draw uses the normal approximation.
const POISSON_NORMAL_ABOVE: f64 = 30.0;

/// A latency histogram as a report keeps it: buckets with an upper bound and a count, in
/// increasing order of bound; a bucket holds the samples above the previous bound.
#[derive(Debug, Clone, PartialEq)]
pub struct Buckets {
    /// `(upper bound, count)` per bucket.
    pub buckets: Vec<(f64, u64)>,
}

/// What a histogram statistic is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Statistic {
    /// The quantile `q` (0 < q < 1).
    Quantile(f64),
    /// The mean.
    Mean,
}

impl Buckets {
    /// How many samples the histogram holds.
    pub fn total(&self) -> u64 {
        self.buckets.iter().map(|(_, count)| count).sum()
    }

    /// The statistic over `counts` (same buckets, other counts): quantiles are interpolated
    /// linearly inside their bucket, the mean takes each bucket's midpoint.
    fn statistic(&self, counts: &[f64], statistic: Statistic) -> Option<f64> {
        let total: f64 = counts.iter().sum();
        if total <= 0.0 {
            return None;
        }
        let bounds = self.buckets.iter().scan(0.0, |lower, &(upper, _)| {
            let bucket = (*lower, upper);
            *lower = upper;
            Some(bucket)
        });
        match statistic {
            Statistic::Mean => Some(bounds.zip(counts).map(|((lower, upper), count)| (lower + upper) / 2.0 * count).sum::<f64>() / total),
            Statistic::Quantile(q) => {
                let rank = q * total;
                let mut below = 0.0;
                for ((lower, upper), &count) in bounds.zip(counts) {
                    if count > 0.0 && below + count >= rank {
                        return Some(lower + (upper - lower) * ((rank - below) / count).clamp(0.0, 1.0));
                    }
                    below += count;
                }
                self.buckets.last().map(|(upper, _)| *upper)
            }
        }
    }

    /// The statistic of the histogram itself.
    pub fn point(&self, statistic: Statistic) -> Option<f64> {
        let counts: Vec<f64> = self.buckets.iter().map(|(_, count)| *count as f64).collect();
        self.statistic(&counts, statistic)
    }
}

/// One Poisson draw with mean `mean`: exact for small means, normal approximation above.
fn poisson(rng: &mut SmallRng, mean: f64) -> f64 {
    if mean <= 0.0 {
        return 0.0;
    }
    if mean > POISSON_NORMAL_ABOVE {
        return (mean + mean.sqrt() * standard_normal(rng)).round().max(0.0);
    }
    let limit = (-mean).exp();
    let (mut draws, mut product) = (0.0, rng.random::<f64>());
    while product > limit {
        draws += 1.0;
        product *= rng.random::<f64>();
    }
    draws
}

fn standard_normal(rng: &mut SmallRng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// The `confidence` interval (e.g. 0.99) of `candidate`'s statistic minus `baseline`'s, by a
/// percentile Poisson bootstrap: each resample redraws every bucket's count from a Poisson law
/// with that count as its mean (for large samples the same as a multinomial resample).
pub fn bootstrap_difference(baseline: &Buckets, candidate: &Buckets, statistic: Statistic, confidence: f64) -> Option<(f64, f64)> {
    baseline.point(statistic)?;
    candidate.point(statistic)?;
    let mut rng = SmallRng::seed_from_u64(BOOTSTRAP_SEED);
    let mut differences = Vec::with_capacity(BOOTSTRAP_RESAMPLES);
    let resample = |buckets: &Buckets, rng: &mut SmallRng| {
        let counts: Vec<f64> = buckets.buckets.iter().map(|(_, count)| poisson(rng, *count as f64)).collect();
        buckets.statistic(&counts, statistic)
    };
    while differences.len() < BOOTSTRAP_RESAMPLES {
        if let (Some(before), Some(after)) = (resample(baseline, &mut rng), resample(candidate, &mut rng)) {
            differences.push(after - before);
        }
    }
    differences.sort_by(f64::total_cmp);
    let tail = (1.0 - confidence) / 2.0;
    let at = |share: f64| differences[((share * (differences.len() - 1) as f64).round() as usize).min(differences.len() - 1)];
    Some((at(tail), at(1.0 - tail)))
}

/// The two-sided p-value of a Mann-Whitney U test that `candidate` and `baseline` come from the
/// same distribution (normal approximation with tie and continuity corrections).
pub fn mann_whitney(baseline: &[f64], candidate: &[f64]) -> Option<f64> {
    let (n1, n2) = (baseline.len() as f64, candidate.len() as f64);
    if baseline.is_empty() || candidate.is_empty() {
        return None;
    }
    let mut pooled: Vec<(f64, bool)> = baseline.iter().map(|&v| (v, false)).chain(candidate.iter().map(|&v| (v, true))).collect();
    pooled.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut candidate_rank_sum, mut tie_term, mut start) = (0.0, 0.0, 0);
    while start < pooled.len() {
        let end = pooled[start..].iter().position(|item| item.0 != pooled[start].0).map_or(pooled.len(), |offset| start + offset);
        let midrank = (start + 1 + end) as f64 / 2.0;
        let ties = (end - start) as f64;
        tie_term += ties * ties * ties - ties;
        candidate_rank_sum += midrank * pooled[start..end].iter().filter(|item| item.1).count() as f64;
        start = end;
    }
    let u = candidate_rank_sum - n2 * (n2 + 1.0) / 2.0;
    let mean = n1 * n2 / 2.0;
    let n = n1 + n2;
    let variance = n1 * n2 / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)));
    if variance <= 0.0 {
        return Some(1.0);
    }
    let z = ((u - mean).abs() - 0.5).max(0.0) / variance.sqrt();
    Some((2.0 * (1.0 - normal_cdf(z))).min(1.0))
}

/// Count, mean and standard deviation of a sample, as latency summaries carry them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Moments {
    /// Samples.
    pub count: f64,
    /// Their mean.
    pub mean: f64,
    /// Their standard deviation.
    pub stdev: f64,
}

/// The two-sided p-value of Welch's t-test that the two means are equal.
pub fn welch(baseline: Moments, candidate: Moments) -> Option<f64> {
    if baseline.count < 2.0 || candidate.count < 2.0 {
        return None;
    }
    let (v1, v2) = (baseline.stdev.powi(2) / baseline.count, candidate.stdev.powi(2) / candidate.count);
    if v1 + v2 <= 0.0 {
        return Some(if baseline.mean == candidate.mean { 1.0 } else { 0.0 });
    }
    let t = (candidate.mean - baseline.mean).abs() / (v1 + v2).sqrt();
    let df = (v1 + v2).powi(2) / (v1.powi(2) / (baseline.count - 1.0) + v2.powi(2) / (candidate.count - 1.0));
    // Two-sided p of Student's t: I_{df/(df+t²)}(df/2, 1/2).
    Some(incomplete_beta(df / 2.0, 0.5, df / (df + t * t)).clamp(0.0, 1.0))
}

/// The standard normal distribution function (Abramowitz and Stegun 7.1.26, error < 1.5e-7).
pub fn normal_cdf(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t * (0.254_829_592 + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-x * x).exp();
    if z >= 0.0 { 0.5 * (1.0 + erf) } else { 0.5 * (1.0 - erf) }
}

/// The regularized incomplete beta function I_x(a, b), by its continued fraction (Numerical
/// Recipes `betai`/`betacf`).
fn incomplete_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front = (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    if x < (a + 1.0) / (a + b + 2.0) { front * beta_fraction(a, b, x) / a } else { 1.0 - front * beta_fraction(b, a, 1.0 - x) / b }
}

fn beta_fraction(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    d = 1.0 / if d.abs() < TINY { TINY } else { d };
    let mut h = d;
    for m in 1..300 {
        let m = f64::from(m);
        let m2 = 2.0 * m;
        for numerator in [m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))] {
            d = 1.0 + numerator * d;
            d = 1.0 / if d.abs() < TINY { TINY } else { d };
            c = 1.0 + numerator / c;
            c = if c.abs() < TINY { TINY } else { c };
            h *= d * c;
        }
        if (d * c - 1.0).abs() < 1e-12 {
            break;
        }
    }
    h
}

/// ln Γ(x) by the Lanczos approximation.
fn ln_gamma(x: f64) -> f64 {
    const COEFFICIENTS: [f64; 6] = [
        76.180_091_729_471_46,
        -86.505_320_329_416_77,
        24.014_098_240_830_91,
        -1.231_739_572_450_155,
        0.001_208_650_973_866_179,
        -0.000_005_395_239_384_953,
    ];
    let tmp = x + 5.5 - (x + 0.5) * (x + 5.5).ln();
    let series: f64 = COEFFICIENTS.iter().enumerate().map(|(i, c)| c / (x + 1.0 + i as f64)).sum::<f64>() + 1.000_000_000_190_015;
    -tmp + (2.506_628_274_631_000_5 * series / x).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A histogram in buckets doubling from 0.1 ms, as the fan-out reports, of samples drawn
    /// around `center_ms` with a spread of `spread` (a share of the centre).
    fn histogram(center_ms: f64, spread: f64, count: usize, seed: u64) -> Buckets {
        let bounds: Vec<f64> = (0..20).map(|i| 0.1 * 2f64.powi(i)).collect();
        let mut counts = vec![0u64; bounds.len()];
        let mut rng = SmallRng::seed_from_u64(seed);
        for _ in 0..count {
            let value = center_ms * (1.0 + spread * standard_normal(&mut rng)).max(0.05);
            counts[bounds.iter().position(|&bound| value <= bound).unwrap()] += 1;
        }
        Buckets { buckets: bounds.into_iter().zip(counts).collect() }
    }

    #[test]
    fn same_distribution_intervals_hold_zero() {
        for seed in 0..5 {
            let (baseline, candidate) = (histogram(1.2, 0.3, 3000, seed), histogram(1.2, 0.3, 3000, seed + 100));
            for statistic in [Statistic::Quantile(0.5), Statistic::Quantile(0.99), Statistic::Mean] {
                let (low, high) = bootstrap_difference(&baseline, &candidate, statistic, 0.99).unwrap();
                assert!(low <= 0.0 && 0.0 <= high, "{statistic:?} seed {seed}: [{low}, {high}]");
            }
        }
    }

    #[test]
    fn a_shift_of_two_milliseconds_excludes_zero() {
        let (baseline, candidate) = (histogram(1.2, 0.3, 2000, 1), histogram(3.2, 0.3, 2000, 2));
        for statistic in [Statistic::Quantile(0.5), Statistic::Quantile(0.99), Statistic::Mean] {
            let (low, _) = bootstrap_difference(&baseline, &candidate, statistic, 0.99).unwrap();
            assert!(low > 0.5, "{statistic:?}: low {low}");
        }
    }

    #[test]
    fn quantiles_interpolate_inside_buckets() {
        let buckets = Buckets { buckets: vec![(1.0, 0), (2.0, 100), (4.0, 0)] };
        assert!((buckets.point(Statistic::Quantile(0.5)).unwrap() - 1.5).abs() < 1e-9);
        assert!((buckets.point(Statistic::Mean).unwrap() - 1.5).abs() < 1e-9);
        assert_eq!(Buckets { buckets: vec![(1.0, 0)] }.point(Statistic::Mean), None);
    }

    #[test]
    fn rank_test_separates_shifted_series_only() {
        let steady = [10.0, 11.0, 10.5, 9.8, 10.2, 10.9];
        let shifted = [13.0, 12.5, 12.9, 13.4, 12.2, 13.1];
        assert!(mann_whitney(&steady, &shifted).unwrap() < 0.01);
        let interleaved = [10.1, 10.8, 9.9, 10.4, 10.6, 10.3];
        assert!(mann_whitney(&steady, &interleaved).unwrap() > 0.2);
        assert_eq!(mann_whitney(&[1.0, 1.0], &[1.0, 1.0]), Some(1.0));
    }

    #[test]
    fn welch_matches_known_values() {
        let baseline = Moments { count: 30.0, mean: 10.0, stdev: 2.0 };
        // t = 1.936 with 58 degrees of freedom: p ≈ 0.0578.
        let p = welch(baseline, Moments { count: 30.0, mean: 11.0, stdev: 2.0 }).unwrap();
        assert!((p - 0.0578).abs() < 0.002, "p {p}");
        assert!(welch(baseline, Moments { count: 30.0, mean: 10.0, stdev: 2.0 }).unwrap() > 0.99);
        assert!(welch(baseline, Moments { count: 1.0, mean: 10.0, stdev: 0.0 }).is_none());
    }

    #[test]
    fn normal_cdf_is_accurate() {
        assert!((normal_cdf(1.959_964) - 0.975).abs() < 1e-6);
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
    }
}
