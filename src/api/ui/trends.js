// The Trends page (`#/trends/<kind>?metric=…&label=key:value&limit=N`): one metric over the
// latest succeeded jobs of a kind (GET /experiments/{kind}/history), drawn over their launch
// times with each point a link to its job, and the same points as a table. The metric chooser
// lists what the kind's reports offer, as the server names them when asked for a metric that
// no report has (its 422 lists the available ones).

import { api, ApiProblem } from "./api.js";
import { formatNumber, formatTime, h, replace } from "./dom.js";
import { timeChart } from "./charts.js";
import { whoami } from "./identity.js";

/** Metrics chosen first when the address names none, most telling first. */
const PREFERRED = ["latency.p99_ms", "achieved_rps", "mb_per_s", "ops_per_second", "msgs_per_second", "latency.p50_ms", "elapsed_ms"];
/** A name no metric has: asking for it makes the server list the metrics a report offers. */
const NO_METRIC = "-";
const DEFAULT_LIMIT = 100;
/** The reason's marker before the list of available metrics, in the server's 422. */
const AVAILABLE = "; available: ";

/** What the latest succeeded job of `kind` reports, or an empty list when there is none. */
async function availableMetrics(kind) {
  try {
    await api(`/experiments/${encodeURIComponent(kind)}/history?metric=${NO_METRIC}&limit=1`);
    return [];
  } catch (error) {
    const reason = error instanceof ApiProblem && error.status === 422 ? error.fieldErrors.find((field) => field.field === "metric")?.reason : null;
    if (!reason || !reason.includes(AVAILABLE)) throw error;
    return reason.slice(reason.indexOf(AVAILABLE) + AVAILABLE.length).split(", ").filter(Boolean);
  }
}

function selectField(id, label, options, current) {
  const element = h("select", { id }, options.map((option) => h("option", { value: option, text: option })));
  if (options.includes(current)) element.value = current;
  return { element, field: h("div", { class: "field" }, h("label", { for: id, text: label }), element) };
}

/** The label selectors typed in the filter (`key:value`, separated by spaces or commas). */
function selectors(text) {
  return text.split(/[\s,]+/).filter(Boolean);
}

/** Renders the Trends page and redraws it as its choices change. */
export async function renderTrends(ctx) {
  document.title = "Trends · asynclab";
  const [{ data: catalogue }] = await Promise.all([api("/experiments"), whoami()]);
  if (!ctx.active()) return;
  const kinds = catalogue.map((experiment) => experiment.kind);
  const query = ctx.route.query;
  const state = {
    kind: kinds.includes(ctx.route.kind) ? ctx.route.kind : kinds.includes("http-fanout") ? "http-fanout" : kinds[0],
    metric: query.get("metric") || "",
    labels: query.getAll("label").join(" "),
    limit: query.get("limit") || String(DEFAULT_LIMIT),
  };

  const heading = h("h1", { text: "Trends" });
  const kind = selectField("trend-kind", "Kind", kinds, state.kind);
  const metricSelect = h("select", { id: "trend-metric" });
  const label = h("input", { type: "search", id: "trend-label", placeholder: "branch:main", autocomplete: "off", value: state.labels, "aria-describedby": "trend-label-hint" });
  const limit = h("input", { type: "text", inputmode: "numeric", id: "trend-limit", value: state.limit, size: 5 });
  const form = h("form", { class: "filters", "aria-label": "What to chart" },
    kind.field,
    h("div", { class: "field" }, h("label", { for: "trend-metric", text: "Metric" }), metricSelect),
    h("div", { class: "field" }, h("label", { for: "trend-label", text: "Labels" }), label,
      h("p", { class: "hint", id: "trend-label-hint", text: "key:value, several separated by spaces (all must match)" })),
    h("div", { class: "field" }, h("label", { for: "trend-limit", text: "Latest jobs" }), limit),
    h("button", { type: "submit", class: "primary", text: "Show" }));
  const result = h("div", { id: "trend-result", "aria-live": "polite" });
  replace(ctx.main, heading, form, result);
  ctx.focus(heading);

  /** Keeps the choices in the address (without a new page), so a reload or a link shows them. */
  const remember = () => {
    const search = new URLSearchParams();
    if (state.metric) search.set("metric", state.metric);
    for (const selector of selectors(state.labels)) search.append("label", selector);
    if (state.limit !== String(DEFAULT_LIMIT)) search.set("limit", state.limit);
    history.replaceState(null, "", `#/trends/${encodeURIComponent(state.kind)}${search.toString() ? `?${search}` : ""}`);
  };

  const message = (id, text, alert = false) => replace(result, h("p", { id, class: alert ? "general-error" : "muted", role: alert ? "alert" : null, text }));

  let drawn = 0;
  const draw = async () => {
    const mine = ++drawn;
    remember();
    if (!state.metric) {
      message("trend-empty", `No succeeded ${state.kind} job has a report yet: launch one, and its metrics show here.`);
      return;
    }
    const search = new URLSearchParams({ metric: state.metric, limit: state.limit });
    for (const selector of selectors(state.labels)) search.append("label", selector);
    let found;
    try {
      ({ data: found } = await api(`/experiments/${encodeURIComponent(state.kind)}/history?${search}`));
    } catch (error) {
      if (!ctx.active() || mine !== drawn) return;
      const reasons = error instanceof ApiProblem ? error.fieldErrors.map(({ field, reason }) => `${field}: ${reason}`) : [];
      message("trend-error", `Could not load the history: ${reasons.length ? reasons.join("; ") : error.message}`, true);
      return;
    }
    if (!ctx.active() || mine !== drawn) return;
    if (!found.points.length) {
      const labels = selectors(state.labels);
      message("trend-empty", `No succeeded ${state.kind} job${labels.length ? ` labelled ${labels.join(" and ")}` : ""} reports ${state.metric}.`);
      return;
    }
    const points = found.points.map((point) => ({
      at: Date.parse(point.created_at),
      value: point.value,
      job: point.job_id,
      href: `#/jobs/${encodeURIComponent(point.job_id)}`,
      label: `${formatTime(point.created_at)}: ${formatNumber(point.value, 3)} (job ${point.job_id})`,
    }));
    replace(result,
      h("div", { class: "charts wide" }, timeChart({ id: "trend-chart", title: `${state.metric} of ${state.kind}, ${points.length} latest succeeded jobs`, points, yUnit: state.metric })),
      h("div", { class: "table-scroll" }, h("table", { class: "data", id: "trend-points" },
        h("thead", {}, h("tr", {}, ["Job", "Launched", state.metric].map((name) => h("th", { scope: "col", text: name })))),
        h("tbody", {}, [...found.points].reverse().map((point) => h("tr", { dataset: { job: point.job_id } },
          h("td", {}, h("a", { href: `#/jobs/${encodeURIComponent(point.job_id)}`, class: "mono", text: `${point.job_id.slice(0, 8)}…${point.job_id.slice(-4)}` })),
          h("td", { text: formatTime(point.created_at) }),
          h("td", { class: "num", text: formatNumber(point.value, 3) })))))));
  };

  /** Fills the metric chooser for the kind, keeping the chosen metric when the kind has it. */
  const chooseKind = async () => {
    replace(metricSelect);
    metricSelect.disabled = true;
    message("trend-loading", "Loading…");
    let metrics;
    try {
      metrics = await availableMetrics(state.kind);
    } catch (error) {
      if (ctx.active()) message("trend-error", `Could not list the metrics of ${state.kind}: ${error.message}`, true);
      return;
    }
    if (!ctx.active()) return;
    const choices = state.metric && !metrics.includes(state.metric) ? [state.metric, ...metrics] : metrics;
    replace(metricSelect, choices.map((metric) => h("option", { value: metric, text: metric })));
    metricSelect.disabled = !choices.length;
    state.metric = state.metric || PREFERRED.find((metric) => metrics.includes(metric)) || metrics[0] || "";
    metricSelect.value = state.metric;
    await draw();
  };

  kind.element.addEventListener("change", () => {
    state.kind = kind.element.value;
    state.metric = "";
    chooseKind();
  });
  metricSelect.addEventListener("change", () => {
    state.metric = metricSelect.value;
    draw();
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    state.labels = label.value.trim();
    state.limit = limit.value.trim() || String(DEFAULT_LIMIT);
    draw();
  });
  label.addEventListener("change", () => form.requestSubmit());
  await chooseKind();
}
