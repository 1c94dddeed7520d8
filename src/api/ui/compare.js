// The Compare page (`#/compare/<candidate>/<baseline>[?force=true&confidence=…&min_change=…]`,
// the baseline a job id or a label selector `key:value`): GET /jobs/{id}/compare/{baseline} as
// the two runs, a table of every metric with its verdict (worse first, sortable, filterable),
// the runs' latency histograms on one chart, and, when the parameters differ, which ones and a
// "Compare anyway" that asks again with force=true.

import { api, ApiProblem } from "./api.js";
import { formatNumber, formatTime, h, isObject, replace } from "./dom.js";
import { groupedBarChart } from "./charts.js";
import { whoami } from "./identity.js";

/** Verdicts in the table's default order: what needs attention first. */
const VERDICT_ORDER = ["worse", "better", "changed", "no significant change"];
/** A mark beside each verdict, so it never rests on colour alone. */
const VERDICT_MARK = { worse: "✗", better: "✓", changed: "≠", "no significant change": "=" };
const METHOD_NAMES = { bootstrap_histogram: "bootstrap", welch_t: "Welch's t-test", mann_whitney: "Mann-Whitney U", single_sample: "single sample" };
/** The sortable columns: field, heading. */
const SORTS = [["metric", "metric"], ["rel_change", "change %"], ["verdict", "verdict"]];
/** The query settings a comparison keeps in its address. */
const SETTINGS = ["force", "confidence", "min_change"];

/** The address of the comparison of `candidate` with `baseline` (`settings`: the query). */
export function compareHash(candidate, baseline, settings = {}) {
  const query = new URLSearchParams();
  for (const name of SETTINGS) if (settings[name] !== undefined && settings[name] !== "") query.set(name, String(settings[name]));
  const search = query.toString();
  return `#/compare/${encodeURIComponent(candidate)}/${encodeURIComponent(baseline)}${search ? `?${search}` : ""}`;
}

/** The address comparing two jobs: the newer is the candidate, the older the baseline. */
export function compareJobsHash(one, other) {
  const [older, newer] = [one, other].sort((a, b) => Date.parse(a.created_at) - Date.parse(b.created_at));
  return compareHash(newer.id, older.id);
}

function shortId(id) {
  return `${id.slice(0, 8)}…${id.slice(-4)}`;
}

function labelsText(job) {
  return Object.entries(job.labels ?? {}).map(([key, value]) => `${key}=${value}`).join(", ") || "no labels";
}

function signed(value, digits) {
  return `${value > 0 ? "+" : value < 0 ? "−" : ""}${formatNumber(Math.abs(value), digits)}`;
}

function percent(change) {
  return typeof change === "number" ? `${signed(change * 100, 1)}%` : "—";
}

/** What backs a verdict: samples, and the p-value or the interval. */
function evidence(metric) {
  const parts = [`n = ${metric.samples.map((count) => formatNumber(count)).join(" / ")}`];
  if (typeof metric.p_value === "number") parts.push(metric.p_value < 0.0001 ? "p < 0.0001" : `p = ${formatNumber(metric.p_value, 4)}`);
  if (Array.isArray(metric.interval)) parts.push(`CI [${metric.interval.map((bound) => formatNumber(bound, 3)).join(", ")}]`);
  return parts.join(" · ");
}

function runCard(role, job) {
  return h("div", { class: "run", id: `compare-${role}` },
    h("h2", { text: role === "baseline" ? "Baseline" : "Candidate" }),
    h("p", {}, h("a", { href: `#/jobs/${encodeURIComponent(job.id)}`, class: "mono", dataset: { job: job.id }, "aria-label": `${role} job ${job.id}` }, shortId(job.id))),
    h("p", { class: "muted", text: `launched ${formatTime(job.created_at)} · ${labelsText(job)}` }));
}

/** The percentage of a run's requests in each of its histogram's buckets, by upper bound. */
function shares(result) {
  const buckets = isObject(result) && Array.isArray(result.histogram) ? result.histogram : [];
  const total = buckets.reduce((sum, bucket) => sum + bucket.count, 0);
  const byBound = new Map();
  if (total > 0) for (const bucket of buckets) byBound.set(bucket.le_ms, (bucket.count / total) * 100);
  return byBound;
}

/** Both runs' latency histograms on one chart, when both reports keep one. */
function histograms(baseline, candidate) {
  const [before, after] = [shares(baseline.result), shares(candidate.result)];
  if (!before.size || !after.size) return null;
  const bounds = [...new Set([...before.keys(), ...after.keys()])].sort((a, b) => a - b);
  const used = (bound) => (before.get(bound) || 0) > 0 || (after.get(bound) || 0) > 0;
  const first = bounds.findIndex(used);
  const last = bounds.length - 1 - [...bounds].reverse().findIndex(used);
  const shown = bounds.slice(first, last + 1);
  return groupedBarChart({
    id: "compare-histogram",
    title: "Latency histograms (share of each run's requests; buckets doubling from 0.1 ms)",
    labels: shown.map((bound) => `≤${bound}`),
    series: [
      { name: "baseline", key: "baseline", className: "s1", values: shown.map((bound) => before.get(bound) || 0) },
      { name: "candidate", key: "candidate", className: "s3", values: shown.map((bound) => after.get(bound) || 0) },
    ],
    xUnit: "latency, ms (upper bound)",
    yUnit: "% of requests",
  });
}

/** The metric table: sortable by metric, change and verdict, filtered by a metric's name. */
function metricTable(metrics) {
  let sort = { field: "verdict", descending: false };
  let filter = "";
  const body = h("tbody");
  const buttons = SORTS.map(([field]) => h("button", { type: "button", class: "sort", dataset: { sort: field }, on: { click: () => {
    // The largest change first on the first click; names and verdicts in their order.
    sort = { field, descending: sort.field === field ? !sort.descending : field === "rel_change" };
    update();
  } } }));
  const headings = SORTS.map(([field], index) => h("th", { scope: "col", class: field === "rel_change" ? "num" : null }, buttons[index]));
  const table = h("table", { class: "data compare", id: "compare-metrics" },
    h("caption", { class: "visually-hidden", text: "Metrics of both runs with their verdicts" }),
    h("thead", {}, h("tr", {}, headings[0],
      ["baseline", "candidate", "change"].map((name) => h("th", { scope: "col", class: "num", text: name })),
      headings[1], headings[2], h("th", { scope: "col", text: "method" }), h("th", { scope: "col", text: "evidence" }))),
    body);
  const search = h("input", { type: "search", id: "compare-filter", placeholder: "latency, endpoints[…", autocomplete: "off" });
  search.addEventListener("input", () => {
    filter = search.value.trim().toLowerCase();
    update();
  });
  const count = h("p", { class: "muted", id: "compare-shown" });
  const key = (metric, field) => {
    if (field === "verdict") return VERDICT_ORDER.indexOf(metric.verdict);
    if (field === "rel_change") return typeof metric.rel_change === "number" ? Math.abs(metric.rel_change) : -1;
    return metric.metric;
  };
  const update = () => {
    SORTS.forEach(([field, label], index) => {
      const active = sort.field === field;
      headings[index].setAttribute("aria-sort", active ? (sort.descending ? "descending" : "ascending") : "none");
      buttons[index].textContent = `${label}${active ? (sort.descending ? " ▼" : " ▲") : ""}`;
    });
    const shown = metrics.filter((metric) => !filter || metric.metric.toLowerCase().includes(filter));
    shown.sort((a, b) => {
      const [x, y] = [key(a, sort.field), key(b, sort.field)];
      const order = typeof x === "number" ? x - y : x.localeCompare(y);
      return (sort.descending ? -order : order) || a.metric.localeCompare(b.metric);
    });
    replace(body, shown.map((metric) => h("tr", { dataset: { metric: metric.metric, verdict: metric.verdict } },
      h("th", { scope: "row", class: "mono", text: metric.metric }),
      h("td", { class: "num", dataset: { field: "baseline" }, text: formatNumber(metric.baseline, 3) }),
      h("td", { class: "num", dataset: { field: "candidate" }, text: formatNumber(metric.candidate, 3) }),
      h("td", { class: "num", dataset: { field: "abs_change" }, text: signed(metric.abs_change, 3) }),
      h("td", { class: "num", dataset: { field: "rel_change" }, text: percent(metric.rel_change) }),
      h("td", { class: "verdict", dataset: { verdict: metric.verdict } },
        h("span", { "aria-hidden": "true", text: `${VERDICT_MARK[metric.verdict] ?? ""} ` }), metric.verdict),
      h("td", { class: "method", dataset: { method: metric.method }, text: METHOD_NAMES[metric.method] ?? metric.method }),
      h("td", { class: "evidence muted", text: evidence(metric) }))));
    count.textContent = `${shown.length} of ${metrics.length} metrics shown.`;
  };
  update();
  return h("div", {},
    h("div", { class: "filters" }, h("div", { class: "field" }, h("label", { for: "compare-filter", text: "Metric contains" }), search)),
    h("div", { class: "table-scroll" }, table), count);
}

function summaryLine(comparison) {
  const { summary } = comparison;
  return h("p", { class: "compare-summary", id: "compare-summary" },
    [["worse", summary.worse], ["better", summary.better], ["changed", summary.changed], ["no significant change", summary.no_significant_change]]
      .map(([verdict, count]) => h("span", { class: "verdict", dataset: { verdict, count: String(count) } }, `${count} ${verdict}`))
      .flatMap((part, index) => (index ? [" · ", part] : [part])));
}

/** A gate tolerance (`{relative: 0.1}` or `{absolute: 2}`) as the CLI writes it. */
function tolerance(value) {
  if (isObject(value) && typeof value.relative === "number") return `${formatNumber(value.relative * 100, 2)}%`;
  if (isObject(value) && typeof value.absolute === "number") return formatNumber(value.absolute, 3);
  return JSON.stringify(value);
}

function gateLine(gate) {
  if (!gate || !gate.gated.length) return null;
  const regressions = gate.gated.filter((gated) => gated.regressed);
  return h("p", { id: "compare-gate", class: gate.passed ? "gate-passed" : "gate-failed", dataset: { passed: String(gate.passed) } },
    gate.passed ? `Gate passed (${gate.gated.length} gated metrics within their tolerance).`
      : `Gate failed: ${regressions.map((gated) => `${gated.metric} ${percent(gated.rel_change)} (tolerance ${tolerance(gated.tolerance)})`).join("; ")}.`);
}

/** The confidence and minimum change used, editable (the comparison is asked for again). */
function settingsForm(ctx, comparison, settings) {
  const confidence = h("input", { type: "text", inputmode: "decimal", id: "compare-confidence", value: String(comparison.options.confidence) });
  const minChange = h("input", { type: "text", inputmode: "decimal", id: "compare-min-change", value: String(comparison.options.min_change) });
  const form = h("form", { class: "filters", "aria-label": "Comparison settings" },
    h("div", { class: "field" }, h("label", { for: "compare-confidence", text: "Confidence" }), confidence),
    h("div", { class: "field" }, h("label", { for: "compare-min-change", text: "Smallest change (fraction)" }), minChange),
    h("button", { type: "submit", text: "Compare again" }));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    ctx.navigate(compareHash(ctx.route.candidate, ctx.route.baseline, { ...settings, confidence: confidence.value.trim(), min_change: minChange.value.trim() }));
  });
  return form;
}

/** The refusal of runs whose parameters differ: each parameter, and "Compare anyway". */
function differingProblem(ctx, problem, settings) {
  const differing = problem.fieldErrors.filter((error) => error.field.startsWith("params."));
  if (problem.status !== 422 || !differing.length) return null;
  const force = h("button", { type: "button", class: "primary", id: "compare-force", text: "Compare anyway" });
  force.addEventListener("click", () => ctx.navigate(compareHash(ctx.route.candidate, ctx.route.baseline, { ...settings, force: "true" })));
  return h("div", { class: "general-error", id: "compare-differing", role: "alert" },
    h("p", { text: "These runs measured different things: their parameters differ." }),
    h("ul", {}, differing.map(({ field, reason }) => h("li", { dataset: { field } }, h("code", { text: field.slice("params.".length) }), `: ${reason}`))),
    force);
}

/** Renders the comparison of `ctx.route.candidate` with `ctx.route.baseline`. */
export async function renderCompare(ctx) {
  document.title = "Compare · asynclab";
  const { candidate, baseline } = ctx.route;
  const settings = Object.fromEntries(SETTINGS.filter((name) => ctx.route.query.has(name)).map((name) => [name, ctx.route.query.get(name)]));
  const heading = h("h1", {}, "Compare ", h("span", { class: "mono small", text: `${candidate} with ${baseline}` }));
  await whoami();
  if (!ctx.active()) return;
  replace(ctx.main, heading, h("p", { class: "loading", text: "Comparing…" }));
  ctx.focus(heading);
  const query = new URLSearchParams(settings).toString();
  let comparison;
  try {
    ({ data: comparison } = await api(`/jobs/${encodeURIComponent(candidate)}/compare/${encodeURIComponent(baseline)}${query ? `?${query}` : ""}`));
  } catch (error) {
    if (!ctx.active()) return;
    if (!(error instanceof ApiProblem)) throw error;
    replace(ctx.main, heading, differingProblem(ctx, error, settings) ?? h("div", { class: "general-error", id: "compare-error", role: "alert" },
      h("p", { text: `The server could not compare these runs: ${error.message}` }),
      error.fieldErrors.length ? h("ul", {}, error.fieldErrors.map(({ field, reason }) => h("li", {}, h("code", { text: field }), `: ${reason}`))) : null),
    h("p", {}, h("a", { href: `#/jobs/${encodeURIComponent(candidate)}`, text: "Back to the candidate job" })));
    return;
  }
  const [{ data: before }, { data: after }] = await Promise.all([
    api(`/jobs/${encodeURIComponent(comparison.baseline_id)}`),
    api(`/jobs/${encodeURIComponent(comparison.candidate_id)}`),
  ]);
  if (!ctx.active()) return;
  document.title = `Compare ${comparison.kind} · asynclab`;
  replace(heading, `Compare ${comparison.kind} runs`);
  const chart = histograms(before, after);
  replace(ctx.main, heading,
    h("div", { class: "runs" }, runCard("baseline", before), h("p", { class: "versus", "aria-hidden": "true", text: "→" }), runCard("candidate", after)),
    h("p", {}, h("a", { href: compareHash(comparison.baseline_id, comparison.candidate_id, settings), id: "compare-swap", text: "Swap baseline and candidate" })),
    comparison.differing_params.length
      ? h("p", { class: "unavailable-reason", id: "compare-forced" }, "Compared although these parameters differ: ",
        comparison.differing_params.map((param, index) => [index ? ", " : "", h("code", { text: param })]))
      : null,
    summaryLine(comparison),
    gateLine(comparison.gate),
    settingsForm(ctx, comparison, settings),
    h("section", { "aria-labelledby": "compare-metrics-title" }, h("h2", { id: "compare-metrics-title", text: "Metrics" }), metricTable(comparison.metrics)),
    chart ? h("section", { "aria-labelledby": "compare-charts-title" }, h("h2", { id: "compare-charts-title", text: "Latency" }), h("div", { class: "charts wide" }, chart)) : null,
    h("details", { class: "method-note" }, h("summary", { text: "How the verdicts are reached" }), h("p", { text: comparison.method })));
}
