// The Job page: the job followed live over its event stream (status, progress figures, the
// per-endpoint table of a fan-out, charts, log lines), its report as tables once it ends (and
// then "Compare with …"), and a Cancel button. Events are applied once each, by sequence
// number, however often the stream reconnects.

import { api, eventsUrl } from "./api.js";
import { announce, formatDuration, formatNumber, formatScalar, formatTime, h, isObject, replace, statusBadge } from "./dom.js";
import { mayCancel, mayLaunch, whoami } from "./identity.js";
import { fanoutCharts, progressChart } from "./job_charts.js";
import { endpointRows, endpointTable } from "./endpoints.js";
import { renderValue } from "./report.js";
import { compareForm } from "./compare_form.js";

const EVENT_KINDS = ["status", "progress", "log", "result"];
/** Log lines kept in the pane; older ones are removed as new ones come. */
const MAX_LOG_LINES = 5000;
/** Progress snapshots kept for charts (hours of a job at four per second). */
const MAX_TIMELINE = 20000;
const ACTIVE = new Set(["queued", "running"]);

/** The figures of a progress snapshot: its scalars, and those of objects one level down. */
function figures(progress) {
  const shown = [];
  for (const [key, value] of Object.entries(progress || {})) {
    if (isObject(value)) {
      for (const [inner, innerValue] of Object.entries(value)) if (!isObject(innerValue) && !Array.isArray(innerValue)) shown.push([`${key}.${inner}`, innerValue]);
    } else if (!Array.isArray(value)) {
      shown.push([key, value]);
    }
  }
  return shown;
}

/** One line on the CPU a finished job's work used (every report has `cpu`), with a fan-out's
 * requests per CPU-second and CPU microseconds per request. */
function cpuSummary(result) {
  const cpu = isObject(result) ? result.cpu : null;
  if (!isObject(cpu) || typeof cpu.total_ms !== "number") return null;
  const counted = (count, one, many) => `${formatNumber(count)} ${count === 1 ? one : many}`;
  const parts = [
    `${formatNumber(cpu.total_ms, 1)} ms CPU (user ${formatNumber(cpu.user_ms, 1)}, system ${formatNumber(cpu.system_ms, 1)})`,
    `on ${counted(cpu.threads, "thread", "threads")}${cpu.processes ? ` and ${counted(cpu.processes, "process", "processes")}` : ""}`,
  ];
  if (typeof result.requests_per_cpu_second === "number") {
    parts.push(`· ${formatNumber(result.requests_per_cpu_second, 0)} requests per CPU-second · ${formatNumber(result.cpu_micros_per_request, 1)} µs CPU per request`);
  }
  return h("p", { class: "cpu-summary", id: "cpu-summary", title: `scope: ${cpu.scope}`, text: parts.join(" ") });
}

function logText(data) {
  if (isObject(data) && typeof data.line === "string") {
    const origin = [data.process !== undefined ? `#${data.process}` : null, data.stream].filter(Boolean).join(" ");
    return `${origin ? `[${origin}] ` : ""}${data.line}${data.cut ? " …" : ""}`;
  }
  return typeof data === "string" ? data : JSON.stringify(data);
}

/** Renders the job `ctx.route.id` and follows it until it ends or the reader leaves. */
export async function renderJob(ctx) {
  const id = ctx.route.id;
  const [{ data: initial }, identity] = await Promise.all([api(`/jobs/${encodeURIComponent(id)}`), whoami()]);
  if (!ctx.active()) return;
  document.title = `${initial.kind} job · asynclab`;
  const state = { job: initial, status: initial.status, error: initial.error, progress: initial.progress, result: initial.result, lastSeq: 0, timeline: [], seconds: new Map(), firstAt: null, ended: false, endpointSort: null };

  const heading = h("h1", {}, `${initial.kind} job `, h("span", { class: "mono small", text: id }));
  const statusSlot = h("span", { id: "job-status-slot" });
  const streamState = h("span", { class: "muted", id: "stream-state", text: "connecting…" });
  const cancel = h("button", { type: "button", id: "cancel", class: "danger", text: "Cancel job", hidden: !mayCancel(identity, initial) });
  const message = h("p", { class: "general-error", id: "job-message", role: "alert", hidden: true });
  const times = h("dl", { class: "times" });
  const errorBox = h("div", { class: "job-error", id: "job-error", hidden: true });
  const bar = h("progress", { id: "progress-bar", hidden: true, "aria-labelledby": "progress-title" });
  const figureList = h("dl", { class: "figures", id: "figures" });
  const noFigures = h("p", { class: "muted", text: "No progress reported yet." });
  const charts = h("div", { class: "charts", id: "charts" });
  const endpoints = endpointTable((sort) => {
    state.endpointSort = sort;
    render();
  });
  const endpointSection = h("section", { "aria-labelledby": "endpoints-title", hidden: true, id: "endpoints" },
    h("h2", { id: "endpoints-title", text: "Endpoints" }), endpoints.element);
  const log = h("pre", { class: "log", id: "log", tabindex: "0", role: "log", "aria-label": "Log lines" });
  const logSection = h("section", { "aria-labelledby": "log-title", hidden: true }, h("h2", { id: "log-title", text: "Log" }), log);
  const report = h("div", { id: "report" }, h("p", { class: "muted", text: "The report appears when the job ends." }));
  const compareSlot = h("div", { id: "compare-slot" });

  replace(ctx.main, heading,
    h("section", { class: "job-status", "aria-labelledby": "status-title" },
      h("h2", { id: "status-title", class: "visually-hidden", text: "Status" }),
      h("div", { class: "status-line" }, statusSlot, streamState, cancel, mayLaunch(identity) ? h("a", { href: `#/experiments/${encodeURIComponent(initial.kind)}`, text: "Launch another" }) : null),
      message, times, errorBox),
    h("section", { "aria-labelledby": "progress-title" }, h("h2", { id: "progress-title", text: "Progress" }), bar, figureList, noFigures),
    endpointSection,
    h("section", { "aria-labelledby": "charts-title" }, h("h2", { id: "charts-title", text: "Charts" }), charts),
    logSection,
    h("section", { "aria-labelledby": "report-title" }, h("h2", { id: "report-title", text: "Report" }), report),
    compareSlot,
    h("section", { "aria-labelledby": "params-title" }, h("h2", { id: "params-title", text: "Parameters" }), renderValue(initial.params)));
  ctx.focus(heading);

  let renderQueued = false;
  const render = () => {
    renderQueued = false;
    if (!ctx.active()) return;
    const job = state.job;
    replace(statusSlot, statusBadge(state.status));
    statusSlot.firstChild.id = "job-status";
    cancel.disabled = !ACTIVE.has(state.status);
    replace(times,
      [["created", formatTime(job.created_at)], ["started", formatTime(job.started_at)], ["finished", formatTime(job.finished_at)],
        ["duration", job.started_at ? formatDuration(job.started_at, job.finished_at) : "—"],
        ["launched by", job.launched_by ?? "—"], ["replica", job.replica ?? "—"], ["attempts", String(job.attempts ?? 0)],
        ["labels", Object.entries(job.labels ?? {}).map(([key, value]) => `${key}=${value}`).join(", ") || "—"],
        ...(job.parent_id ? [["shard of", job.parent_id]] : [])]
        .map(([term, value]) => h("div", {}, h("dt", { text: term }), h("dd", { text: value }))));
    errorBox.hidden = !state.error;
    if (state.error) replace(errorBox, h("h3", { text: `Error: ${state.error.kind}` }), h("p", { text: state.error.message }));
    const progress = state.progress;
    const fraction = isObject(progress) && typeof progress.completed === "number" && typeof progress.total === "number" && progress.total > 0;
    bar.hidden = !fraction;
    if (fraction) {
      bar.max = progress.total;
      bar.value = progress.completed;
    }
    const shown = figures(progress);
    replace(figureList, shown.map(([key, value]) =>
      h("div", { class: "figure", dataset: { figure: key } }, h("dt", { text: key }), h("dd", { text: typeof value === "number" ? formatNumber(value, 2) : formatScalar(value) }))));
    noFigures.hidden = shown.length > 0;
    const rows = endpointRows(state);
    endpointSection.hidden = rows.length < 2;
    if (rows.length >= 2) endpoints.update(rows, state.endpointSort);
    const drawn = state.job.kind === "http-fanout" ? fanoutCharts(state) : progressChart(state);
    replace(charts, drawn.length ? drawn : h("p", { class: "muted", text: "No chart for this job yet." }));
    if (state.result !== null && state.result !== undefined && !report.dataset.shown) {
      report.dataset.shown = "true";
      replace(report, cpuSummary(state.result), renderValue(state.result));
      replace(compareSlot, compareForm(ctx, initial));
    }
  };
  const scheduleRender = () => {
    if (!renderQueued) {
      renderQueued = true;
      setTimeout(render, 50);
    }
  };

  const appendLog = (data) => {
    logSection.hidden = false;
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.append(document.createTextNode(`${logText(data)}\n`));
    while (log.childNodes.length > MAX_LOG_LINES) log.firstChild.remove();
    if (atBottom) log.scrollTop = log.scrollHeight;
  };

  /** Applies one event unless it was seen already (a replay after a reconnect). */
  const apply = (event) => {
    if (typeof event.seq !== "number" || event.seq <= state.lastSeq) return;
    state.lastSeq = event.seq;
    const at = Date.parse(event.at);
    if (state.firstAt === null && Number.isFinite(at)) state.firstAt = at;
    if (event.kind === "status") {
      state.status = event.data.status;
      if (event.data.error) state.error = event.data.error;
      announce(`Job ${state.status}`);
    } else if (event.kind === "progress") {
      state.progress = event.data;
      state.timeline.push({ t: Number.isFinite(at) ? (at - state.firstAt) / 1000 : state.timeline.length, data: event.data });
      if (state.timeline.length > MAX_TIMELINE) state.timeline.shift();
      const second = isObject(event.data) && event.data.last_second;
      if (isObject(second) && typeof second.second === "number") state.seconds.set(second.second, second);
    } else if (event.kind === "log") {
      appendLog(event.data);
    } else if (event.kind === "result") {
      state.result = event.data;
    }
    scheduleRender();
  };

  let source = null;
  let retryTimer = null;
  let retryDelay = 1000;
  /** Whether the stream was ever open, and how often it opened again after a drop. */
  let opened = false;
  let resumes = 0;
  /** Reloads the job; after the stream's end the events' final status stands, and the job is
   * read again until its row shows the end too (its times, report and error). */
  const refreshJob = async (attempt = 0) => {
    const { data: job } = await api(`/jobs/${encodeURIComponent(id)}`);
    if (!ctx.active()) return;
    const stale = state.ended && ACTIVE.has(job.status);
    if (stale && attempt < 20) {
      retryTimer = setTimeout(() => refreshJob(attempt + 1).catch(() => {}), 250);
      return;
    }
    state.job = job;
    if (!state.ended || !stale) state.status = job.status;
    if (job.error) state.error = job.error;
    if (job.result !== null && job.result !== undefined) state.result = job.result;
    scheduleRender();
  };
  const connect = () => {
    source = new EventSource(eventsUrl(id, state.lastSeq));
    for (const kind of EVENT_KINDS) source.addEventListener(kind, (message) => apply(JSON.parse(message.data)));
    source.addEventListener("open", () => {
      retryDelay = 1000;
      // Kept on the element for as long as the page lives: how often the stream was resumed,
      // and after which event, whatever state it is in now.
      if (opened) {
        resumes += 1;
        streamState.dataset.resumes = String(resumes);
        streamState.dataset.resumedAfter = String(state.lastSeq);
      }
      opened = true;
      streamState.textContent = resumes ? `live (resumed ${resumes}×)` : "live";
    });
    source.addEventListener("end", () => {
      state.ended = true;
      source.close();
      render();
      streamState.textContent = "ended";
      refreshJob().catch((error) => { streamState.textContent = `ended (could not reload the job: ${error.message})`; });
    });
    source.addEventListener("error", () => {
      if (state.ended) return;
      if (source.readyState !== EventSource.CLOSED) {
        streamState.textContent = "reconnecting…";
        return;
      }
      // The browser gave up (an error answer such as 401): check through the API, which asks
      // for a token when needed, then resume after the last event applied.
      streamState.textContent = "disconnected; retrying…";
      retryTimer = setTimeout(async () => {
        retryDelay = Math.min(retryDelay * 2, 15000);
        try {
          await refreshJob();
        } catch (error) {
          streamState.textContent = `disconnected: ${error.message}`;
        }
        if (ctx.active() && !state.ended) connect();
      }, retryDelay);
    });
  };

  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    message.hidden = true;
    try {
      const { data: job } = await api(`/jobs/${encodeURIComponent(id)}/cancel`, { method: "POST" });
      state.job = job;
      state.status = job.status;
      announce(`Job ${job.status}`);
    } catch (error) {
      replace(message, `Cancel failed: ${error.message}`);
      message.hidden = false;
    }
    scheduleRender();
  });

  ctx.onLeave(() => {
    if (source) source.close();
    clearTimeout(retryTimer);
  });
  render();
  connect();
}
