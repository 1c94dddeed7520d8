// Any JSON value as tables: objects as key/value tables, arrays of objects as tables with a
// column per key, scalars as text. Used for reports, errors and parameters of every kind.

import { formatScalar, h, isObject } from "./dom.js";

/** Rows shown of a long array; the rest are counted. */
const MAX_ROWS = 200;
/** Arrays longer than this start folded. */
const FOLD_ROWS = 12;
const MAX_DEPTH = 6;

function isScalar(value) {
  return value === null || typeof value !== "object";
}

function arrayOfObjects(items, depth) {
  const columns = [];
  for (const item of items.slice(0, MAX_ROWS)) {
    for (const key of Object.keys(item)) if (!columns.includes(key)) columns.push(key);
  }
  const table = h("table", { class: "data" },
    h("thead", {}, h("tr", {}, columns.map((column) => h("th", { scope: "col", text: column })))),
    h("tbody", {}, items.slice(0, MAX_ROWS).map((item) =>
      h("tr", {}, columns.map((column) => h("td", { class: cellClass(item[column]) }, renderValue(item[column], depth + 1)))))));
  const more = items.length > MAX_ROWS ? h("p", { class: "muted", text: `… and ${items.length - MAX_ROWS} more rows` }) : null;
  const content = h("div", { class: "table-scroll" }, table, more);
  if (items.length <= FOLD_ROWS) return content;
  return h("details", {}, h("summary", { text: `${items.length} rows` }), content);
}

function cellClass(value) {
  return typeof value === "number" ? "num" : null;
}

/** A node showing `value`. */
export function renderValue(value, depth = 0) {
  if (isScalar(value)) return document.createTextNode(formatScalar(value));
  if (depth >= MAX_DEPTH) return h("code", { text: JSON.stringify(value) });
  if (Array.isArray(value)) {
    if (value.length === 0) return document.createTextNode("none");
    if (value.every(isScalar)) return document.createTextNode(value.map(formatScalar).join(", "));
    if (value.every(isObject)) return arrayOfObjects(value, depth);
    return h("ol", { class: "plain" }, value.map((item) => h("li", {}, renderValue(item, depth + 1))));
  }
  const entries = Object.entries(value);
  if (entries.length === 0) return document.createTextNode("—");
  return h("table", { class: depth === 0 ? "data report" : "data nested" },
    h("tbody", {}, entries.map(([key, item]) =>
      h("tr", {}, h("th", { scope: "row", text: key }), h("td", { class: cellClass(item) }, renderValue(item, depth + 1))))));
}
