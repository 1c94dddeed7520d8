//! Splitting a fan-out's parameters into shards: each sends every `of`th request starting at
//! its `index`, with its share of the connections, the concurrency and the rates.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::experiments::http_fanout::params::FanoutParams;
use crate::jobs::context::MAX_CHILDREN;
use crate::validation::FieldErrors;

/// Which shard of a sharded job this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShardOf {
    /// The shard's number, from 0.
    pub index: u32,
    /// How many shards the job has.
    pub of: u32,
}

/// The parameters of each of `shards` shards of `params`.
pub fn split(params: &FanoutParams, shards: u32) -> Vec<FanoutParams> {
    let fraction = |rate: f64| rate / f64::from(shards);
    (0..shards)
        .map(|index| {
            let mut part = params.clone();
            part.shards = None;
            part.shard = Some(ShardOf { index, of: shards });
            part.thresholds = None;
            part.count = params.request_cap().map(|total| strided_share(total, index, shards));
            part.max_connections = even_share(params.max_connections, index, shards);
            part.concurrency = params.concurrency.map(|concurrency| even_share(concurrency, index, shards));
            part.max_per_second = params.max_per_second.map(fraction);
            part.rate = params.rate.map(fraction);
            if let Some(ramp) = &mut part.ramp {
                ramp.iter_mut().for_each(|step| step.rate = fraction(step.rate));
            }
            part
        })
        .collect()
}

/// How many of the request numbers `0..total` shard `index` of `shards` sends: those equal to
/// `index` modulo `shards`.
fn strided_share(total: u64, index: u32, shards: u32) -> u64 {
    let (index, shards) = (u64::from(index), u64::from(shards));
    if total > index { (total - index - 1) / shards + 1 } else { 0 }
}

/// Shard `index`'s part of `amount` split as evenly as whole numbers allow.
fn even_share(amount: u32, index: u32, shards: u32) -> u32 {
    amount / shards + u32::from(index < amount % shards)
}

/// Checks `shards` (every shard must get at least one request, connection and unit of
/// concurrency) and refuses `shard`, which only a sharded job sets, on the shards it stores.
pub fn validate_sharding(params: &FanoutParams, errors: &mut FieldErrors) {
    errors.check(params.shard.is_none(), "shard", "not a launch parameter: a sharded job sets it on its shards; use shards");
    if let Some(shards) = params.shards {
        errors.range("shards", shards, 2, MAX_CHILDREN as u32);
        let enough = |amount: u64| amount >= u64::from(shards);
        if let Some(total) = params.request_cap() {
            errors.check(enough(total), "count", format!("must be at least shards ({shards}) so every shard sends a request"));
        }
        errors.check(enough(params.max_connections.into()), "max_connections", format!("must be at least shards ({shards})"));
        if let Some(concurrency) = params.concurrency {
            errors.check(enough(concurrency.into()), "concurrency", format!("must be at least shards ({shards})"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::Validate;

    fn params(json: serde_json::Value) -> FanoutParams {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn shares_add_up_to_the_whole() {
        for (total, shards) in [(10u64, 3u32), (2, 2), (7, 7), (1_000_001, 64)] {
            let sum: u64 = (0..shards).map(|index| strided_share(total, index, shards)).sum();
            assert_eq!(sum, total, "{total} over {shards}");
        }
        for (amount, shards) in [(10u32, 3u32), (64, 64), (100, 7)] {
            let sum: u32 = (0..shards).map(|index| even_share(amount, index, shards)).sum();
            assert_eq!(sum, amount);
        }
    }

    #[test]
    fn each_shard_sends_its_stride_of_the_requests() {
        let whole = params(serde_json::json!({
            "url": "http://127.0.0.1:1/{i}", "count": 10, "max_connections": 5, "concurrency": 4,
            "max_per_second": 300.0, "shards": 3, "thresholds": {"p99_ms": 10.0}
        }));
        let parts = split(&whole, 3);
        assert_eq!(parts.iter().map(|part| part.count.unwrap()).collect::<Vec<_>>(), [4, 3, 3]);
        assert_eq!(parts.iter().map(|part| part.max_connections).collect::<Vec<_>>(), [2, 2, 1]);
        assert_eq!(parts.iter().map(|part| part.concurrency.unwrap()).collect::<Vec<_>>(), [2, 1, 1]);
        let mut sent: Vec<u64> = parts
            .iter()
            .flat_map(|part| {
                let indices = super::super::RequestIndices::of(part.shard);
                (0..part.count.unwrap()).map(move |n| indices.nth(n))
            })
            .collect();
        sent.sort_unstable();
        assert_eq!(sent, (0..10).collect::<Vec<_>>());
        for (index, part) in parts.iter().enumerate() {
            assert_eq!(part.shard, Some(ShardOf { index: index as u32, of: 3 }));
            assert_eq!((part.shards, part.thresholds.is_none(), part.max_per_second), (None, true, Some(100.0)));
            // Valid as a launch would be, but for the internal `shard`.
            let mut errors = FieldErrors::default();
            FanoutParams { shard: None, ..part.clone() }.validate(&mut errors);
            assert!(errors.0.is_empty(), "{:?}", errors.0);
        }
    }

    #[test]
    fn open_model_rates_are_divided() {
        let whole = params(serde_json::json!({
            "url": "http://127.0.0.1:1/", "ramp": [{"rate": 300.0, "duration_ms": 1000}, {"rate": 0.0, "duration_ms": 10}],
            "max_connections": 8, "shards": 3
        }));
        let parts = split(&whole, 3);
        assert!(parts.iter().all(|part| part.count.is_none()));
        assert!(parts.iter().all(|part| part.ramp.as_ref().unwrap()[0].rate == 100.0));
    }

    #[test]
    fn impossible_splits_are_refused() {
        let mut errors = FieldErrors::default();
        params(serde_json::json!({
            "url": "http://127.0.0.1:1/", "count": 3, "max_connections": 2, "concurrency": 1, "shards": 4,
            "shard": {"index": 0, "of": 4}
        }))
        .validate(&mut errors);
        let fields: Vec<&str> = errors.0.iter().map(|error| error.field.as_str()).collect();
        for field in ["count", "max_connections", "concurrency", "shard"] {
            assert!(fields.contains(&field), "{field} in {fields:?}");
        }
        let mut errors = FieldErrors::default();
        params(serde_json::json!({"url": "http://127.0.0.1:1/", "count": 3, "shards": 65})).validate(&mut errors);
        assert!(errors.0.iter().any(|error| error.field == "shards"));
        let mut errors = FieldErrors::default();
        params(serde_json::json!({"url": "http://127.0.0.1:1/", "count": 3, "shard": {"index": 0, "of": 2}})).validate(&mut errors);
        assert!(errors.0.iter().any(|error| error.field == "shard"));
    }
}
