//! Comparing a job with a baseline: `GET /jobs/{id}/compare/{baseline}`, where the baseline is
//! a job id or a label selector (`branch:main`, the latest comparable succeeded job with it).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{RawQuery, State};

use super::baseline::{BaselineSpec, Candidate, check_comparable, resolve};
use super::pruned::missing_job;
use super::state::AppState;
use crate::compare::CompareOptions;
use crate::compare::comparison::{Comparison, Runs};
use crate::compare::gate::Tolerance;
use crate::compare::params::differing_params;
use crate::error::{ApiError, AppPath, Problem};
use crate::store::JobId;
use crate::validation::FieldErrors;

/// The settings a comparison's query may carry.
struct CompareQuery {
    force: bool,
    options: CompareOptions,
    max_regression: BTreeMap<String, Tolerance>,
}

/// Reads `force`, `confidence`, `min_change` and repeated `max_regression=metric:tolerance`.
fn parse_query(query: Option<&str>) -> Result<CompareQuery, ApiError> {
    let mut parsed = CompareQuery { force: false, options: CompareOptions::default(), max_regression: BTreeMap::new() };
    let mut errors = FieldErrors::default();
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let number = |min: f64, max: f64, errors: &mut FieldErrors| match value.parse::<f64>() {
            Ok(number) if (min..=max).contains(&number) => Some(number),
            _ => {
                errors.add(key.to_string(), format!("must be a number between {min} and {max}, got {value:?}"));
                None
            }
        };
        match key.as_ref() {
            "force" => match value.as_ref() {
                "true" => parsed.force = true,
                "false" => parsed.force = false,
                _ => errors.add("force", "must be true or false"),
            },
            "confidence" => parsed.options.confidence = number(0.5, 0.9999, &mut errors).unwrap_or(parsed.options.confidence),
            "min_change" => parsed.options.min_change = number(0.0, 10.0, &mut errors).unwrap_or(parsed.options.min_change),
            // The tolerance never holds a colon; a metric may (an endpoint keyed by its URL).
            "max_regression" => match value.rsplit_once(':').map(|(metric, tolerance)| (metric, Tolerance::parse(tolerance))) {
                Some((metric, Ok(tolerance))) if !metric.is_empty() => {
                    parsed.max_regression.insert(metric.to_string(), tolerance);
                }
                Some((_, Err(reason))) => errors.add("max_regression", reason),
                _ => errors.add("max_regression", format!("{value:?} is not metric:tolerance, e.g. p99_ms:10%")),
            },
            other => errors.add(other.to_string(), "unknown parameter: force, confidence, min_change, max_regression"),
        }
    }
    errors.into_result().map_err(ApiError::Validation).map(|()| parsed)
}

/// Compares a job's report with a baseline's, metric by metric, with a verdict from the
/// distributions where the reports keep them, and the regression gate's outcome.
///
/// Query: `force=true` compares jobs whose parameters differ; `confidence` (default 0.99) and
/// `min_change` (default 0.05) tune the verdicts; `max_regression=p99_ms:10%` (repeatable) sets
/// the gate's tolerances (default: the kind's).
#[utoipa::path(get, path = "/jobs/{id}/compare/{baseline}", tag = "jobs",
    params(("id" = Uuid, Path, description = "The candidate job"),
           ("baseline" = String, Path, description = "The baseline: a job id, or a label selector `key:value` (the latest succeeded job of the same kind with comparable parameters and that label, older than the candidate)"),
           ("force" = Option<bool>, Query, description = "Compare even when parameters differ"),
           ("confidence" = Option<f64>, Query, description = "Confidence of the tests (default 0.99)"),
           ("min_change" = Option<f64>, Query, description = "Smallest relative change given a verdict (default 0.05)"),
           ("max_regression" = Option<Vec<String>>, Query, explode, description = "A gate tolerance `metric:10%` or `metric:2.5`, repeatable")),
    responses((status = 200, body = Comparison),
              (status = 400, body = Problem, content_type = "application/problem+json", description = "A malformed job id or query string"),
              (status = 404, body = Problem, content_type = "application/problem+json", description = "No such job, or no baseline matches the selector"),
              (status = 409, body = Problem, content_type = "application/problem+json", description = "A job has no report yet"),
              (status = 410, body = Problem, content_type = "application/problem+json", description = "The job or the baseline job was pruned by retention (the reason says when)"),
              (status = 422, body = Problem, content_type = "application/problem+json", description = "Different kinds, differing parameters (each named), or a bad query")))]
pub async fn compare(
    State(state): State<AppState>,
    AppPath((id, baseline)): AppPath<(JobId, String)>,
    RawQuery(query): RawQuery,
) -> Result<Json<Comparison>, ApiError> {
    let query = parse_query(query.as_deref())?;
    let spec = BaselineSpec::parse(&baseline, "baseline")?;
    let Some(job) = state.store.get_job(id).await? else {
        return Err(missing_job(state.store.as_ref(), "id", id).await);
    };
    let Some(report) = &job.result else {
        return Err(ApiError::conflict("id", format!("job {id} has no report (it is {})", job.status.as_str())));
    };
    let candidate = Candidate { kind: &job.kind, params: &job.params, id: Some(id) };
    let baseline_job = resolve(state.store.as_ref(), &spec, &candidate, query.force, "baseline").await?.ok_or_else(|| {
        ApiError::not_found("baseline", format!("no succeeded {} job labelled {baseline} with the same parameters before {id}", job.kind))
    })?;
    check_comparable(&baseline_job, &candidate, query.force)?;
    let baseline_report = baseline_job.result.as_ref().expect("resolve returns jobs with a report");
    let runs = Runs {
        kind: &job.kind,
        baseline: (baseline_job.id, baseline_report),
        candidate: (id, report),
        differing_params: differing_params(&baseline_job.params, &job.params),
    };
    Comparison::build(runs, query.options, &query.max_regression).map(Json).map_err(|reason| ApiError::invalid("max_regression", reason))
}
