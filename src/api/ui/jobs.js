// The Jobs page: GET /jobs with kind and status filters and cursor paging, refreshed every few
// seconds while the page is visible; two jobs picked with their checkboxes open the Compare page
// (the newer is the candidate, the older the baseline).

import { api } from "./api.js";
import { formatDuration, formatTime, h, replace, statusBadge } from "./dom.js";
import { whoami } from "./identity.js";
import { compareJobsHash } from "./compare.js";

const REFRESH_MS = 3000;
const PAGE_SIZE = 20;
const STATUSES = ["queued", "running", "succeeded", "failed", "cancelled", "interrupted"];

/** Filters, position and the jobs picked to compare (by id), kept while the tab lives so
 * returning to the list finds it as left. */
const view = { kind: "", status: "", launchedBy: "", cursors: [null], picked: new Map() };

function select(id, label, options, current, onChange) {
  const element = h("select", { id },
    h("option", { value: "", text: "all" }),
    options.map((option) => h("option", { value: option, text: option })));
  element.value = current;
  element.addEventListener("change", () => onChange(element.value));
  return h("div", { class: "field" }, h("label", { for: id, text: label }), element);
}

function jobRow(job, onPick) {
  const pick = h("input", { type: "checkbox", class: "pick", dataset: { job: job.id }, checked: view.picked.has(job.id), "aria-label": `Pick job ${job.id} to compare` });
  pick.addEventListener("change", () => {
    if (pick.checked) view.picked.set(job.id, job);
    else view.picked.delete(job.id);
    onPick();
  });
  return h("tr", { dataset: { job: job.id } },
    h("td", { class: "job-cell" }, pick, " ", h("a", { href: `#/jobs/${job.id}`, class: "mono", "aria-label": `Job ${job.id}` }, job.id.slice(0, 8) + "…" + job.id.slice(-4))),
    h("td", { text: job.kind }),
    h("td", {}, statusBadge(job.status)),
    h("td", { class: "launched-by", text: job.launched_by ?? "—" }),
    h("td", { text: formatTime(job.created_at) }),
    h("td", { text: job.started_at ? formatDuration(job.started_at, job.finished_at) : "—" }),
    h("td", { text: job.error ? `${job.error.kind}: ${job.error.message}` : "" }));
}

/** The launched-by filter: a token name, applied when the field changes. */
function launchedByField() {
  const input = h("input", { id: "filter-launched-by", type: "search", placeholder: "token name", autocomplete: "off", value: view.launchedBy });
  input.addEventListener("change", () => {
    view.launchedBy = input.value.trim();
    view.cursors = [null];
    input.dispatchEvent(new CustomEvent("filters-changed", { bubbles: true }));
  });
  return h("div", { class: "field" }, h("label", { for: "filter-launched-by", text: "Launched by" }), input);
}

/** Renders the job list and keeps it fresh. */
export async function renderJobs(ctx) {
  document.title = "Jobs · asynclab";
  const [{ data: catalogue }] = await Promise.all([api("/experiments"), whoami()]);
  if (!ctx.active()) return;
  const heading = h("h1", { text: "Jobs" });
  const body = h("tbody", { id: "jobs-body" });
  const status = h("p", { class: "muted", id: "jobs-updated" });
  const newer = h("button", { type: "button", id: "jobs-newer", text: "← Newer" });
  const older = h("button", { type: "button", id: "jobs-older", text: "Older →" });
  const pageLabel = h("span", { class: "muted" });
  const compare = h("button", { type: "button", id: "jobs-compare", class: "primary", text: "Compare" });
  const pickedNote = h("span", { class: "muted", id: "jobs-picked" });
  const showPicked = () => {
    const picked = [...view.picked.values()];
    const sameKind = picked.length === 2 && picked[0].kind === picked[1].kind;
    compare.disabled = !sameKind;
    pickedNote.textContent = picked.length === 2 && !sameKind ? "The two jobs are of different kinds."
      : `${picked.length} picked; pick two jobs of one kind to compare them (the newer against the older).`;
  };
  compare.addEventListener("click", () => {
    const picked = [...view.picked.values()];
    if (picked.length !== 2) return;
    view.picked.clear();
    ctx.navigate(compareJobsHash(picked[0], picked[1]));
  });

  let loading = false;
  const load = async () => {
    if (loading) return;
    loading = true;
    try {
      const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
      if (view.kind) query.set("kind", view.kind);
      if (view.status) query.set("status", view.status);
      if (view.launchedBy) query.set("launched_by", view.launchedBy);
      const cursor = view.cursors[view.cursors.length - 1];
      if (cursor) query.set("cursor", cursor);
      const { data: page } = await api(`/jobs?${query}`);
      if (!ctx.active()) return;
      replace(body, page.jobs.length
        ? page.jobs.map((job) => jobRow(job, showPicked))
        : h("tr", {}, h("td", { colspan: 7, class: "muted", text: "No jobs match." })));
      newer.disabled = view.cursors.length === 1;
      older.disabled = !page.next_cursor;
      older.dataset.cursor = page.next_cursor || "";
      pageLabel.textContent = `Page ${view.cursors.length}`;
      status.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshes every ${REFRESH_MS / 1000} s.`;
    } catch (error) {
      if (ctx.active()) status.textContent = `Could not load the jobs: ${error.message}`;
    } finally {
      loading = false;
    }
  };
  const restart = () => {
    view.cursors = [null];
    load();
  };
  newer.addEventListener("click", () => {
    if (view.cursors.length > 1) view.cursors.pop();
    load();
  });
  older.addEventListener("click", () => {
    if (older.dataset.cursor) view.cursors.push(older.dataset.cursor);
    load();
  });

  const filters = h("form", { class: "filters", "aria-label": "Filters" },
    select("filter-kind", "Kind", catalogue.map((experiment) => experiment.kind), view.kind, (kind) => { view.kind = kind; restart(); }),
    select("filter-status", "Status", STATUSES, view.status, (value) => { view.status = value; restart(); }),
    launchedByField());
  filters.addEventListener("submit", (event) => event.preventDefault());
  filters.addEventListener("filters-changed", () => load());

  const table = h("table", { class: "jobs" },
    h("caption", { class: "visually-hidden", text: "Jobs, newest first" }),
    h("thead", {}, h("tr", {}, ["Job", "Kind", "Status", "Launched by", "Created", "Duration", "Error"].map((name) => h("th", { scope: "col", text: name })))),
    body);
  showPicked();
  replace(ctx.main, heading, filters, h("div", { class: "compare-bar" }, compare, pickedNote), h("div", { class: "table-scroll" }, table),
    h("nav", { class: "pager", "aria-label": "Pages" }, newer, pageLabel, older), status);
  ctx.focus(heading);
  await load();
  const timer = setInterval(() => { if (!document.hidden) load(); }, REFRESH_MS);
  ctx.onLeave(() => clearInterval(timer));
}
