//! The parameters of a `subprocess` run, their bounds and their validation.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::validation::{FieldErrors, Validate};

/// The most processes one run may start.
pub const MAX_PROCESSES: usize = 64;
/// The most processes alive at once.
pub const MAX_CONCURRENCY: u32 = 64;
/// The most arguments one process may get.
pub const MAX_ARGS: usize = 64;
/// The longest argument, in bytes.
pub const MAX_ARG_BYTES: usize = 4096;
/// The longest a process may run before it is terminated (the per-process run-time cap).
pub const MAX_TIMEOUT_MS: u64 = 600_000;
/// The longest wait between SIGTERM and SIGKILL.
pub const MAX_KILL_AFTER_MS: u64 = 60_000;
/// The most lines logged per stream of one process.
pub const MAX_LINES: u32 = 10_000;
/// The longest line logged, in bytes; longer lines are cut.
pub const MAX_LINE_BYTES: u32 = 65_536;

/// One process to run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcessSpec {
    /// A program of the server's allowlist (`ASYNCLAB_ALLOW_PROGRAMS`), by name.
    pub program: String,
    /// Its arguments, passed as they are (never through a shell): at most 64, 4096 bytes each.
    #[serde(default)]
    pub args: Vec<String>,
    /// Time from start until it is sent SIGTERM (1 to 600,000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

/// Parameters of a `subprocess` run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubprocessParams {
    /// The processes, started in order as slots free up (1 to 64).
    #[schema(inline)]
    pub processes: Vec<ProcessSpec>,
    /// Processes alive at once (1 to 64).
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// Wait after SIGTERM before SIGKILL (0 to 60,000).
    #[serde(default = "default_kill_after_ms")]
    pub kill_after_ms: u64,
    /// Lines logged per stream of each process (0 to 10,000); the rest are counted, not logged.
    #[serde(default = "default_max_lines")]
    pub max_lines: u32,
    /// Bytes kept of each logged line (1 to 65,536); longer lines are cut and counted.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: u32,
}

fn default_timeout_ms() -> u64 {
    10_000
}

fn default_concurrency() -> u32 {
    4
}

fn default_kill_after_ms() -> u64 {
    1_000
}

fn default_max_lines() -> u32 {
    1_000
}

fn default_max_line_bytes() -> u32 {
    1_024
}

impl Validate for SubprocessParams {
    fn validate(&self, errors: &mut FieldErrors) {
        errors.check(
            (1..=MAX_PROCESSES).contains(&self.processes.len()),
            "processes",
            format!("must hold between 1 and {MAX_PROCESSES} processes, got {}", self.processes.len()),
        );
        errors.range("concurrency", self.concurrency, 1, MAX_CONCURRENCY);
        errors.range("kill_after_ms", self.kill_after_ms, 0, MAX_KILL_AFTER_MS);
        errors.range("max_lines", self.max_lines, 0, MAX_LINES);
        errors.range("max_line_bytes", self.max_line_bytes, 1, MAX_LINE_BYTES);
        for (index, process) in self.processes.iter().enumerate() {
            errors.check(!process.program.is_empty(), format!("processes[{index}].program"), "must not be empty");
            errors.check(
                process.args.len() <= MAX_ARGS,
                format!("processes[{index}].args"),
                format!("must hold at most {MAX_ARGS} arguments, got {}", process.args.len()),
            );
            for (position, arg) in process.args.iter().enumerate() {
                errors.check(
                    arg.len() <= MAX_ARG_BYTES && !arg.contains('\0'),
                    format!("processes[{index}].args[{position}]"),
                    format!("must be at most {MAX_ARG_BYTES} bytes without NUL"),
                );
            }
            errors.range(&format!("processes[{index}].timeout_ms"), process.timeout_ms, 1, MAX_TIMEOUT_MS);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_each_bad_field() {
        let params = SubprocessParams {
            processes: vec![ProcessSpec { program: String::new(), args: vec!["ok".into(), "nul\0".into()], timeout_ms: 0 }],
            concurrency: 0,
            kill_after_ms: MAX_KILL_AFTER_MS + 1,
            max_lines: MAX_LINES + 1,
            max_line_bytes: 0,
        };
        let mut errors = FieldErrors::default();
        params.validate(&mut errors);
        let fields: Vec<_> = errors.0.iter().map(|error| error.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "concurrency",
                "kill_after_ms",
                "max_lines",
                "max_line_bytes",
                "processes[0].program",
                "processes[0].args[1]",
                "processes[0].timeout_ms"
            ]
        );
    }

    #[test]
    fn defaults_fill_in() {
        let params: SubprocessParams = serde_json::from_value(serde_json::json!({"processes": [{"program": "echo"}]})).unwrap();
        assert_eq!((params.concurrency, params.kill_after_ms, params.max_lines, params.max_line_bytes), (4, 1_000, 1_000, 1_024));
        assert_eq!(params.processes[0].timeout_ms, 10_000);
        let mut errors = FieldErrors::default();
        params.validate(&mut errors);
        assert!(errors.0.is_empty());
    }
}
