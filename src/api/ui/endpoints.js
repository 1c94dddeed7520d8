// The per-endpoint table of an http-fanout job, like Locust's statistics: live from the progress
// events (which carry each endpoint's figures when there are at most 20 endpoints), then from
// the report's full breakdown. Sortable by requests, failures, p50 and p99.

import { formatNumber, h, isObject, replace } from "./dom.js";

/** Rows shown; the rest are counted (the report keeps them all). */
const MAX_ROWS = 500;
/** The sortable columns: field, heading. */
const COLUMNS = [["requests", "requests"], ["failures", "failures"], ["p50_ms", "p50 ms"], ["p99_ms", "p99 ms"]];

/** The rows to show: the report's breakdown once there is one, else the latest progress's. */
export function endpointRows(state) {
  const reported = isObject(state.result) && Array.isArray(state.result.endpoints) ? state.result.endpoints : null;
  if (reported) {
    return reported.map((endpoint) => ({
      key: endpoint.key,
      requests: endpoint.requests,
      failures: Math.round((endpoint.error_rate || 0) * endpoint.requests),
      p50_ms: endpoint.latency?.count ? endpoint.latency.p50_ms : null,
      p99_ms: endpoint.latency?.count ? endpoint.latency.p99_ms : null,
    }));
  }
  return isObject(state.progress) && Array.isArray(state.progress.endpoints) ? state.progress.endpoints : [];
}

/**
 * The table, built once so its sort buttons stay put while rows change; `update(rows, sort)`
 * shows `rows` sorted by `sort` (`{ field, descending }`, or null for the parameters' order).
 * Clicking a column's heading calls `onSort` with the new order.
 */
export function endpointTable(onSort) {
  let current = null;
  const buttons = COLUMNS.map(([field]) => h("button", { type: "button", class: "sort", dataset: { sort: field }, on: { click: () => {
    onSort({ field, descending: !(current && current.field === field && current.descending) });
  } } }));
  const headings = COLUMNS.map((_, index) => h("th", { scope: "col", class: "num" }, buttons[index]));
  const body = h("tbody");
  const more = h("p", { class: "muted", hidden: true });
  const table = h("table", { class: "data", id: "endpoint-table" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col", text: "endpoint" }), headings)), body);
  const update = (rows, sort) => {
    current = sort;
    COLUMNS.forEach(([field, label], index) => {
      const active = sort && sort.field === field;
      headings[index].setAttribute("aria-sort", active ? (sort.descending ? "descending" : "ascending") : "none");
      buttons[index].textContent = `${label}${active ? (sort.descending ? " ▼" : " ▲") : ""}`;
    });
    const sorted = sort ? [...rows].sort((a, b) => (sort.descending ? -1 : 1) * ((a[sort.field] ?? 0) - (b[sort.field] ?? 0))) : rows;
    replace(body, sorted.slice(0, MAX_ROWS).map((row) =>
      h("tr", { dataset: { endpoint: row.key } },
        h("th", { scope: "row", class: "mono", text: row.key }),
        COLUMNS.map(([field]) => h("td", { class: "num", dataset: { field }, text: typeof row[field] === "number" ? formatNumber(row[field], 2) : "—" })))));
    more.hidden = sorted.length <= MAX_ROWS;
    more.textContent = `… and ${sorted.length - MAX_ROWS} more endpoints`;
  };
  return { element: h("div", { class: "table-scroll" }, table, more), update };
}
