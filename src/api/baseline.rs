//! Finding the job a run is compared against: a job id, or a label selector (`branch:main`)
//! meaning the latest succeeded job of the same kind, with comparable parameters, carrying that
//! label, older than the candidate.

use serde_json::Value;

use super::launch_options::GateRequest;
use super::pruned::missing_job;
use crate::compare::gate::{Gate, resolve_name};
use crate::compare::metrics::ReportMetrics;
use crate::compare::params::{comparable, differing_params};
use crate::error::ApiError;
use crate::store::labels::LabelSelector;
use crate::store::{Job, JobId, JobQuery, JobStatus, JobStore};
use crate::validation::FieldErrors;

/// How many of a label's latest succeeded jobs are searched for comparable parameters.
const SEARCHED_JOBS: u32 = 200;

/// A baseline as named by a caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaselineSpec {
    /// One job.
    Job(JobId),
    /// The latest comparable succeeded job with this label.
    Label(LabelSelector),
}

impl BaselineSpec {
    /// Parses a job id or a `key:value` selector; `field` names the input in errors.
    pub fn parse(text: &str, field: &str) -> Result<BaselineSpec, ApiError> {
        if let Ok(id) = text.parse::<JobId>() {
            return Ok(BaselineSpec::Job(id));
        }
        LabelSelector::parse(text, field).map(BaselineSpec::Label).map_err(|_| {
            ApiError::invalid(field, format!("{text:?} is neither a job id nor a key:value label selector such as branch:main"))
        })
    }
}

/// The candidate a baseline is found for.
pub struct Candidate<'a> {
    /// Its kind.
    pub kind: &'a str,
    /// Its parameters.
    pub params: &'a Value,
    /// Its id, when it exists already: baselines must be older.
    pub id: Option<JobId>,
}

/// Resolves `spec` for `candidate`: `Ok(None)` when a selector matches no job; a named job that
/// does not exist is a 404 (a 410 once retention pruned it), one of another kind or with a
/// different measurement a 422 (unless `force`), one without a report a 409.
pub async fn resolve(
    store: &dyn JobStore,
    spec: &BaselineSpec,
    candidate: &Candidate<'_>,
    force: bool,
    field: &str,
) -> Result<Option<Job>, ApiError> {
    match spec {
        BaselineSpec::Job(id) => {
            let Some(job) = store.get_job(*id).await? else {
                return Err(missing_job(store, field, *id).await);
            };
            check_comparable(&job, candidate, force)?;
            if job.result.is_none() {
                return Err(ApiError::conflict(field, format!("job {id} has no report (it is {})", job.status.as_str())));
            }
            Ok(Some(job))
        }
        BaselineSpec::Label(selector) => {
            let query = JobQuery {
                kind: Some(candidate.kind.to_string()),
                status: Some(JobStatus::Succeeded),
                before: candidate.id,
                labels: vec![selector.clone()],
                limit: SEARCHED_JOBS,
                ..JobQuery::default()
            };
            let jobs = store.list_jobs(&query).await?;
            Ok(jobs.into_iter().find(|job| force || comparable(&job.params, candidate.params)))
        }
    }
}

/// A 422 naming each differing parameter, unless `force`.
pub fn check_comparable(baseline: &Job, candidate: &Candidate<'_>, force: bool) -> Result<(), ApiError> {
    if baseline.kind != candidate.kind {
        return Err(ApiError::invalid("kind", format!("the baseline is a {} job, the candidate a {} job", baseline.kind, candidate.kind)));
    }
    let differing = differing_params(&baseline.params, candidate.params);
    if force || differing.is_empty() {
        return Ok(());
    }
    let mut errors = FieldErrors::default();
    for path in differing {
        let value = |params: &Value| params.pointer(&format!("/{}", path.replace('.', "/"))).cloned().unwrap_or(Value::Null);
        errors.add(
            format!("params.{path}"),
            format!(
                "differs: baseline {}, candidate {} (pass force=true to compare anyway)",
                value(&baseline.params),
                value(candidate.params)
            ),
        );
    }
    Err(ApiError::Validation(errors))
}

/// The gate a launch asked for, its baseline resolved now (among jobs stored before this
/// launch); `None` when no baseline matches and the gate is optional.
pub async fn gate_for_launch(store: &dyn JobStore, kind: &str, params: &Value, request: &GateRequest) -> Result<Option<Gate>, ApiError> {
    let field = "baseline.job";
    let spec = BaselineSpec::parse(&request.job, field)?;
    let candidate = Candidate { kind, params, id: None };
    let Some(baseline) = resolve(store, &spec, &candidate, request.force, field).await? else {
        if request.optional {
            return Ok(None);
        }
        return Err(ApiError::invalid(
            field,
            format!("no succeeded {kind} job labelled {} with the same parameters (set optional to launch without a gate)", request.job),
        ));
    };
    let metrics = ReportMetrics::extract(baseline.result.as_ref().unwrap_or(&Value::Null));
    let paths = metrics.paths();
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    let mut errors = FieldErrors::default();
    for name in request.max_regression.keys() {
        if let Err(reason) = resolve_name(name, &paths) {
            errors.add(format!("baseline.max_regression.{name}"), reason);
        }
    }
    errors.into_result().map_err(ApiError::Validation)?;
    Ok(Some(Gate { baseline_id: baseline.id, max_regression: request.max_regression.clone(), options: request.options }))
}
