//! Progress of every target of a run, published per step and per batch.

use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::params::{DbTarget, Step};
use crate::jobs::context::JobContext;

/// One target's progress.
#[derive(Debug, Clone, Serialize)]
struct TargetProgress {
    target: DbTarget,
    /// The step running, `None` before the first and after the last.
    step: Option<Step>,
    /// Rows the current step has written or read.
    step_rows: u64,
    /// Rows the current step will handle, when known.
    step_rows_total: Option<u64>,
    /// Steps finished.
    steps_done: usize,
}

/// The published snapshot.
#[derive(Debug, Serialize)]
struct Snapshot {
    targets: Vec<TargetProgress>,
}

/// Progress of every target, shared by their tasks.
#[derive(Clone)]
pub struct Board {
    ctx: JobContext,
    rows: u64,
    /// A std mutex: held only to update and copy the snapshot, never across an await.
    targets: Arc<Mutex<Vec<TargetProgress>>>,
}

impl Board {
    /// A board for `targets`, inserting `rows` rows.
    pub fn new(ctx: JobContext, targets: &[DbTarget], rows: u64) -> Self {
        let targets = targets
            .iter()
            .map(|target| TargetProgress { target: *target, step: None, step_rows: 0, step_rows_total: None, steps_done: 0 })
            .collect();
        Board { ctx, rows, targets: Arc::new(Mutex::new(targets)) }
    }

    /// Target `index` begins `step`: published at once.
    pub async fn start_step(&self, index: usize, step: Step) {
        let snapshot = self.update(index, |progress| {
            if progress.step.is_some() {
                progress.steps_done += 1;
            }
            progress.step = Some(step);
            progress.step_rows = 0;
            progress.step_rows_total = matches!(step, Step::Insert | Step::Stream).then_some(self.rows);
        });
        self.ctx.milestone(snapshot).await;
    }

    /// Target `index` has finished its steps: published at once.
    pub async fn finish(&self, index: usize) {
        let snapshot = self.update(index, |progress| {
            if progress.step.take().is_some() {
                progress.steps_done += 1;
            }
        });
        self.ctx.milestone(snapshot).await;
    }

    /// Target `index` handled `rows` more rows (a batch): coalesced.
    pub async fn add_rows(&self, index: usize, rows: u64) {
        let snapshot = self.update(index, |progress| progress.step_rows += rows);
        self.ctx.progress(snapshot).await;
    }

    fn update(&self, index: usize, change: impl FnOnce(&mut TargetProgress)) -> Snapshot {
        let mut targets = self.targets.lock().expect("progress board poisoned");
        if let Some(progress) = targets.get_mut(index) {
            change(progress);
        }
        Snapshot { targets: targets.clone() }
    }
}
