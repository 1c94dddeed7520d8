// "Compare with …" on a job page: a job id or a label selector to compare the job with (it is
// the candidate), and the latest succeeded jobs of the same kind to pick from (the newer of the
// two is the candidate).

import { api } from "./api.js";
import { formatTime, h, replace } from "./dom.js";
import { compareHash, compareJobsHash } from "./compare.js";

/** Recent jobs offered. */
const RECENT = 8;

/** The section for `job`; the recent jobs fill in when they arrive. */
export function compareForm(ctx, job) {
  const input = h("input", { type: "text", id: "compare-with", required: true, autocomplete: "off", placeholder: "a job id, or branch:main", "aria-describedby": "compare-with-hint" });
  const form = h("form", { class: "filters", id: "compare-form", "aria-label": "Compare with" },
    h("div", { class: "field" }, h("label", { for: "compare-with", text: "Compare with" }), input,
      h("p", { class: "hint", id: "compare-with-hint", text: "A baseline job id, or a label key:value (the latest succeeded job with it and the same parameters)." })),
    h("button", { type: "submit", id: "compare-go", text: "Compare" }));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const baseline = input.value.trim();
    if (baseline) ctx.navigate(compareHash(job.id, baseline));
  });
  const recent = h("div", { id: "compare-recent" }, h("p", { class: "muted", text: "Looking for recent runs…" }));
  const query = new URLSearchParams({ kind: job.kind, status: "succeeded", limit: String(RECENT + 1) });
  api(`/jobs?${query}`).then(({ data: page }) => {
    if (!ctx.active()) return;
    const others = page.jobs.filter((other) => other.id !== job.id).slice(0, RECENT);
    replace(recent, others.length
      ? [h("p", { class: "muted", text: `Or one of the latest succeeded ${job.kind} jobs:` }),
        h("ul", { class: "recent-runs" }, others.map((other) => h("li", {},
          h("a", { href: compareJobsHash(job, other), dataset: { job: other.id } }, `${other.id.slice(0, 8)}…${other.id.slice(-4)}`),
          ` launched ${formatTime(other.created_at)}`,
          Object.keys(other.labels ?? {}).length ? ` · ${Object.entries(other.labels).map(([key, value]) => `${key}=${value}`).join(", ")}` : "")))]
      : h("p", { class: "muted", text: `No other succeeded ${job.kind} job yet.` }));
  }).catch((error) => {
    if (ctx.active()) replace(recent, h("p", { class: "muted", text: `Could not list recent runs: ${error.message}` }));
  });
  return h("section", { "aria-labelledby": "compare-title", id: "compare-section" },
    h("h2", { id: "compare-title", text: "Compare" }), form, recent,
    h("p", {}, h("a", { href: `#/trends/${encodeURIComponent(job.kind)}`, id: "trends-link", text: `Trends of ${job.kind}` })));
}
