//! Parameters of a `redis` run, their defaults and bounds, and the weighted operation mix.

use rand::Rng;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::validation::{FieldErrors, Validate};

/// The most connections one job's pool may hold.
const MAX_POOL_SIZE: u32 = 256;
/// The most tasks one job may run: each is a light tokio task, the bound keeps the job's memory
/// and the histogram merge small.
const MAX_CONCURRENCY: u32 = 4096;
/// The most operations one run may issue.
const MAX_OPS: u64 = 10_000_000;
/// The longest run.
const MAX_DURATION_MS: u64 = 600_000;
/// The largest weight of one operation in the mix.
const MAX_WEIGHT: u32 = 1000;
/// The most commands in one pipeline.
const MAX_PIPELINE_DEPTH: u32 = 1000;
/// The largest value written: 1 MiB, so a run's memory in Redis stays bounded by `keyspace`.
const MAX_VALUE_BYTES: u32 = 1 << 20;
/// The most distinct keys a run touches (and deletes afterwards).
const MAX_KEYSPACE: u32 = 1_000_000;
/// The longest a task may wait for a pooled connection.
const MAX_POOL_WAIT_TIMEOUT_MS: u64 = 60_000;

/// Parameters of a `redis` run. Give `ops` or `duration_ms`, not both.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisParams {
    /// The client that runs the workload: `pool` (the default), a pool of `pool_size` sockets
    /// each lent to one task at a time, or `fred`, a fred pool of `pool_size` multiplexed
    /// connections every task sends on at once. Left out of the stored parameters when `pool`,
    /// so runs launched before the choice existed stay comparable with new ones.
    #[serde(default, skip_serializing_if = "ClientKind::is_pool")]
    pub client: ClientKind,
    /// Connections the client opens (1 to 256): with `pool`, sockets that each serve one task at
    /// a time; with `fred`, multiplexed connections that each carry any number of tasks'
    /// commands, pipelined, picked round-robin per operation.
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
    /// Tasks issuing operations at once (1 to 4096); more tasks than connections wait for one.
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// Operations to issue in total (1 to 10 000 000); a pipeline counts as one operation.
    pub ops: Option<u64>,
    /// How long to issue operations, in milliseconds (1 to 600 000), instead of `ops`.
    pub duration_ms: Option<u64>,
    /// Relative weights of the operations.
    #[serde(default)]
    #[schema(inline)]
    pub mix: OpMix,
    /// Commands in one `pipeline` operation (1 to 1000), alternately SET and GET.
    #[serde(default = "default_pipeline_depth")]
    pub pipeline_depth: u32,
    /// Size of each value SET writes (1 byte to 1 MiB).
    #[serde(default = "default_value_bytes")]
    pub value_bytes: u32,
    /// Distinct keys per operation family (1 to 1 000 000), picked at random.
    #[serde(default = "default_keyspace")]
    pub keyspace: u32,
    /// How long a task waits for a pooled connection before giving the operation up, counted in
    /// `pool_wait_timeouts` (1 to 60 000 ms), like redis-py's `BlockingConnectionPool(timeout=…)`.
    /// `fred` never waits for a connection, so it ignores it.
    #[serde(default = "default_pool_wait_timeout_ms")]
    pub pool_wait_timeout_ms: u64,
}

/// The client a `redis` run measures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClientKind {
    /// The job's own pool of plain RESP sockets: one command (or pipeline) in flight per socket;
    /// a task waits for a free one (redis-py's `BlockingConnectionPool`).
    #[default]
    Pool,
    /// A fred pool of multiplexed connections: every task sends at once, fred pipelines the
    /// commands in flight on each connection (redis-py's single shared connection, pipelined).
    Fred,
}

impl ClientKind {
    /// Whether this is the default, `pool`.
    pub fn is_pool(&self) -> bool {
        *self == ClientKind::Pool
    }
}

fn default_pool_size() -> u32 {
    10
}
fn default_concurrency() -> u32 {
    50
}
fn default_pipeline_depth() -> u32 {
    10
}
fn default_value_bytes() -> u32 {
    3
}
fn default_keyspace() -> u32 {
    1000
}
fn default_pool_wait_timeout_ms() -> u64 {
    1000
}

/// Relative weights of the operations a task picks at random.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpMix {
    /// GET of a random key.
    #[serde(default)]
    pub get: u32,
    /// SET of a random key to a `value_bytes` value.
    #[serde(default)]
    pub set: u32,
    /// INCR of a random counter.
    #[serde(default)]
    pub incr: u32,
    /// A pipeline of `pipeline_depth` commands sent together.
    #[serde(default)]
    pub pipeline: u32,
}

impl Default for OpMix {
    fn default() -> Self {
        OpMix { get: 1, set: 1, incr: 0, pipeline: 0 }
    }
}

/// One operation a task issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// GET.
    Get,
    /// SET.
    Set,
    /// INCR.
    Incr,
    /// A pipeline.
    Pipeline,
}

impl OpMix {
    fn total(&self) -> u64 {
        [self.get, self.set, self.incr, self.pipeline].iter().map(|weight| u64::from(*weight)).sum()
    }

    /// An operation picked at random according to the weights (which validation made non-zero).
    pub fn pick(&self, rng: &mut impl Rng) -> Op {
        let mut roll = rng.random_range(0..self.total().max(1));
        for (op, weight) in [(Op::Get, self.get), (Op::Set, self.set), (Op::Incr, self.incr), (Op::Pipeline, self.pipeline)] {
            if roll < u64::from(weight) {
                return op;
            }
            roll -= u64::from(weight);
        }
        Op::Get
    }
}

impl Validate for RedisParams {
    fn validate(&self, errors: &mut FieldErrors) {
        errors.range("pool_size", self.pool_size, 1, MAX_POOL_SIZE);
        errors.range("concurrency", self.concurrency, 1, MAX_CONCURRENCY);
        match (self.ops, self.duration_ms) {
            (Some(ops), None) => errors.range("ops", ops, 1, MAX_OPS),
            (None, Some(duration_ms)) => errors.range("duration_ms", duration_ms, 1, MAX_DURATION_MS),
            (Some(_), Some(_)) => errors.add("duration_ms", "give ops or duration_ms, not both"),
            (None, None) => errors.add("ops", "give ops or duration_ms"),
        }
        for (field, weight) in
            [("mix.get", self.mix.get), ("mix.set", self.mix.set), ("mix.incr", self.mix.incr), ("mix.pipeline", self.mix.pipeline)]
        {
            errors.range(field, weight, 0, MAX_WEIGHT);
        }
        errors.check(self.mix.total() > 0, "mix", "at least one weight must be positive");
        errors.range("pipeline_depth", self.pipeline_depth, 1, MAX_PIPELINE_DEPTH);
        errors.range("value_bytes", self.value_bytes, 1, MAX_VALUE_BYTES);
        errors.range("keyspace", self.keyspace, 1, MAX_KEYSPACE);
        errors.range("pool_wait_timeout_ms", self.pool_wait_timeout_ms, 1, MAX_POOL_WAIT_TIMEOUT_MS);
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    fn params(json: serde_json::Value) -> RedisParams {
        serde_json::from_value(json).expect("parameters parse")
    }

    fn fields(params: &RedisParams) -> Vec<String> {
        let mut errors = FieldErrors::default();
        params.validate(&mut errors);
        errors.0.into_iter().map(|error| error.field).collect()
    }

    #[test]
    fn ops_or_duration_exactly_one() {
        assert!(fields(&params(serde_json::json!({"ops": 10}))).is_empty());
        assert_eq!(fields(&params(serde_json::json!({}))), ["ops"]);
        assert_eq!(fields(&params(serde_json::json!({"ops": 1, "duration_ms": 1}))), ["duration_ms"]);
    }

    #[test]
    fn bounds_name_the_field() {
        let bad = params(serde_json::json!({"ops": 10, "pool_size": 0, "mix": {"get": 0}, "value_bytes": 0}));
        assert_eq!(fields(&bad), ["pool_size", "mix", "value_bytes"]);
    }

    #[test]
    fn the_client_is_pool_unless_named_and_stored_only_when_fred() {
        let pool = params(serde_json::json!({"ops": 10}));
        assert_eq!(pool.client, ClientKind::Pool);
        assert!(serde_json::to_value(&pool).unwrap().get("client").is_none());
        let fred = params(serde_json::json!({"ops": 10, "client": "fred"}));
        assert_eq!(serde_json::to_value(&fred).unwrap()["client"], "fred");
        assert!(serde_json::from_value::<RedisParams>(serde_json::json!({"ops": 10, "client": "jedis"})).is_err());
    }

    #[test]
    fn picks_follow_the_weights() {
        let mix = OpMix { get: 0, set: 3, incr: 1, pipeline: 0 };
        let mut rng = SmallRng::seed_from_u64(7);
        let picks: Vec<Op> = (0..4000).map(|_| mix.pick(&mut rng)).collect();
        let sets = picks.iter().filter(|op| **op == Op::Set).count();
        assert!(picks.iter().all(|op| matches!(op, Op::Set | Op::Incr)));
        assert!((2800..3200).contains(&sets), "{sets} sets of 4000");
    }
}
