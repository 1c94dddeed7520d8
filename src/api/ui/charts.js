// Charts as inline SVG (no library, nothing fetched): line charts over time, a bar chart for
// histograms, side-by-side bars for histograms of several runs, and values over dates with
// each point a link. Colours come from classes in app.css.

import { formatNumber, h } from "./dom.js";

const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 2 });

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 640;
const HEIGHT = 220;
const MARGIN = { top: 12, right: 16, bottom: 34, left: 64 };

function svg(tag, attrs = {}, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) element.setAttribute(name, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

/** A round upper bound and its tick step for values up to `max`. */
function niceScale(max, ticks = 4) {
  if (!(max > 0)) return { top: 1, step: 0.25 };
  const rough = max / ticks;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 2.5, 5, 10].map((factor) => factor * magnitude).find((candidate) => candidate >= rough);
  return { top: step * Math.ceil(max / step), step };
}

function frame(titleId, descId) {
  return svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-labelledby": titleId, "aria-describedby": descId, class: "chart-svg", preserveAspectRatio: "xMidYMid meet" });
}

function yAxis(root, top, step, unit) {
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  for (let value = 0; value <= top + step / 2; value += step) {
    const y = MARGIN.top + plotHeight - (value / top) * plotHeight;
    root.append(svg("line", { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y, y2: y, class: "grid" }));
    root.append(svg("text", { x: MARGIN.left - 6, y: y + 4, "text-anchor": "end", class: "tick" }, compact.format(value)));
  }
  root.append(svg("text", { x: 12, y: MARGIN.top + plotHeight / 2, transform: `rotate(-90 12 ${MARGIN.top + plotHeight / 2})`, "text-anchor": "middle", class: "axis-label" }, unit));
}

/**
 * A line chart. `series`: [{name, className, points: [[x, y], …]}]; x in `xUnit`, y in `yUnit`.
 * Returns a <figure> with a caption, a legend and a text summary for screen readers.
 */
export function lineChart({ id, title, series, xUnit, yUnit }) {
  const titleId = `${id}-title`;
  const descId = `${id}-desc`;
  const all = series.flatMap((line) => line.points);
  const xMax = Math.max(1e-9, ...all.map(([x]) => x));
  const xMin = Math.min(xMax, ...all.map(([x]) => x));
  const { top, step } = niceScale(Math.max(0, ...all.map(([, y]) => y)));
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const xOf = (x) => MARGIN.left + (xMax === xMin ? plotWidth / 2 : ((x - xMin) / (xMax - xMin)) * plotWidth);
  const yOf = (y) => MARGIN.top + plotHeight - (y / top) * plotHeight;
  const root = frame(titleId, descId);
  yAxis(root, top, step, yUnit);
  for (const x of [xMin, (xMin + xMax) / 2, xMax]) {
    root.append(svg("text", { x: xOf(x), y: HEIGHT - MARGIN.bottom + 16, "text-anchor": "middle", class: "tick" }, formatNumber(x, 1)));
  }
  root.append(svg("text", { x: MARGIN.left + plotWidth / 2, y: HEIGHT - 4, "text-anchor": "middle", class: "axis-label" }, xUnit));
  for (const line of series) {
    if (!line.points.length) continue;
    const path = line.points.map(([x, y]) => `${xOf(x).toFixed(1)},${yOf(y).toFixed(1)}`).join(" ");
    root.append(svg("polyline", { points: path, class: `line ${line.className}` }));
    if (line.points.length === 1) {
      const [[x, y]] = line.points;
      root.append(svg("circle", { cx: xOf(x), cy: yOf(y), r: 3, class: `dot ${line.className}` }));
    }
  }
  const summary = series
    .map((line) => `${line.name}: ${line.points.length ? formatNumber(line.points[line.points.length - 1][1], 3) : "no data"} ${yUnit} latest`)
    .join("; ");
  return h("figure", { class: "chart", id },
    h("figcaption", { id: titleId, text: title }),
    root,
    h("ul", { class: "legend", "aria-hidden": "true" }, series.map((line) => h("li", {}, h("span", { class: `swatch ${line.className}` }), line.name))),
    h("p", { class: "visually-hidden", id: descId, text: summary }));
}

/** A bar chart of labelled counts (a histogram). */
export function barChart({ id, title, bars, xUnit, yUnit }) {
  const titleId = `${id}-title`;
  const descId = `${id}-desc`;
  const { top, step } = niceScale(Math.max(0, ...bars.map((bar) => bar.value)));
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const slot = plotWidth / Math.max(1, bars.length);
  const root = frame(titleId, descId);
  yAxis(root, top, step, yUnit);
  const labelEvery = Math.ceil(bars.length / 12);
  bars.forEach((bar, index) => {
    const height = (bar.value / top) * plotHeight;
    const x = MARGIN.left + index * slot;
    const rect = svg("rect", { x: x + slot * 0.1, y: MARGIN.top + plotHeight - height, width: slot * 0.8, height, class: "bar" });
    rect.append(svg("title", {}, `${bar.label}: ${formatNumber(bar.value)}`));
    root.append(rect);
    if (index % labelEvery === 0) {
      root.append(svg("text", { x: x + slot / 2, y: HEIGHT - MARGIN.bottom + 16, "text-anchor": "middle", class: "tick" }, bar.label));
    }
  });
  root.append(svg("text", { x: MARGIN.left + plotWidth / 2, y: HEIGHT - 4, "text-anchor": "middle", class: "axis-label" }, xUnit));
  const summary = bars.map((bar) => `${bar.label}: ${formatNumber(bar.value)}`).join("; ");
  return h("figure", { class: "chart", id },
    h("figcaption", { id: titleId, text: title }),
    root,
    h("p", { class: "visually-hidden", id: descId, text: summary }));
}

/**
 * Bars of several series side by side in each slot (histograms of several runs on one chart).
 * `labels`: the slots' labels; `series`: [{name, className, key, values}] with one value per slot.
 */
export function groupedBarChart({ id, title, labels, series, xUnit, yUnit }) {
  const titleId = `${id}-title`;
  const descId = `${id}-desc`;
  const { top, step } = niceScale(Math.max(0, ...series.flatMap((one) => one.values)));
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const slot = plotWidth / Math.max(1, labels.length);
  const width = (slot * 0.8) / Math.max(1, series.length);
  const root = frame(titleId, descId);
  yAxis(root, top, step, yUnit);
  series.forEach((one, index) => {
    const group = svg("g", { class: `series ${one.className}`, "data-series": one.key });
    one.values.forEach((value, at) => {
      const height = (value / top) * plotHeight;
      const rect = svg("rect", { x: MARGIN.left + at * slot + slot * 0.1 + index * width, y: MARGIN.top + plotHeight - height, width, height, class: `bar ${one.className}` });
      rect.append(svg("title", {}, `${one.name}, ${labels[at]}: ${formatNumber(value)} ${yUnit}`));
      group.append(rect);
    });
    root.append(group);
  });
  const labelEvery = Math.ceil(labels.length / 12);
  labels.forEach((label, at) => {
    if (at % labelEvery === 0) root.append(svg("text", { x: MARGIN.left + at * slot + slot / 2, y: HEIGHT - MARGIN.bottom + 16, "text-anchor": "middle", class: "tick" }, label));
  });
  root.append(svg("text", { x: MARGIN.left + plotWidth / 2, y: HEIGHT - 4, "text-anchor": "middle", class: "axis-label" }, xUnit));
  const summary = series.map((one) => `${one.name}: ${labels.map((label, at) => `${label} ${formatNumber(one.values[at])}`).join(", ")}`).join("; ");
  return h("figure", { class: "chart", id },
    h("figcaption", { id: titleId, text: title }),
    root,
    h("ul", { class: "legend", "aria-hidden": "true" }, series.map((one) => h("li", {}, h("span", { class: `swatch ${one.className}` }), one.name))),
    h("p", { class: "visually-hidden", id: descId, text: summary }));
}

/**
 * Values over time, each point a link: `points` [{at (ms since the epoch), value, href, label}].
 * The points are joined by a line in time order.
 */
export function timeChart({ id, title, points, yUnit }) {
  const titleId = `${id}-title`;
  const descId = `${id}-desc`;
  const times = points.map((point) => point.at);
  const first = Math.min(...times);
  const last = Math.max(...times);
  const { top, step } = niceScale(Math.max(0, ...points.map((point) => point.value)));
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const xOf = (at) => MARGIN.left + (last === first ? plotWidth / 2 : ((at - first) / (last - first)) * plotWidth);
  const yOf = (value) => MARGIN.top + plotHeight - (Math.max(0, value) / top) * plotHeight;
  const root = frame(titleId, descId);
  yAxis(root, top, step, yUnit);
  const span = last - first;
  const format = new Intl.DateTimeFormat(undefined, span < 3_600_000 ? { hour: "2-digit", minute: "2-digit", second: "2-digit" }
    : span < 86_400_000 ? { hour: "2-digit", minute: "2-digit" } : { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  const ticks = span === 0 ? [[first, "middle"]] : [[first, "start"], [(first + last) / 2, "middle"], [last, "end"]];
  for (const [at, anchor] of ticks) {
    root.append(svg("text", { x: xOf(at), y: HEIGHT - MARGIN.bottom + 16, "text-anchor": anchor, class: "tick" }, format.format(new Date(at))));
  }
  root.append(svg("text", { x: MARGIN.left + plotWidth / 2, y: HEIGHT - 4, "text-anchor": "middle", class: "axis-label" }, "launched"));
  const ordered = [...points].sort((a, b) => a.at - b.at);
  root.append(svg("polyline", { points: ordered.map((point) => `${xOf(point.at).toFixed(1)},${yOf(point.value).toFixed(1)}`).join(" "), class: "line s1" }));
  for (const point of ordered) {
    const link = svg("a", { href: point.href, "data-job": point.job, "aria-label": point.label });
    const dot = svg("circle", { cx: xOf(point.at), cy: yOf(point.value), r: 4, class: "dot s1" });
    dot.append(svg("title", {}, point.label));
    link.append(dot);
    root.append(link);
  }
  const summary = ordered.map((point) => point.label).join("; ");
  return h("figure", { class: "chart", id },
    h("figcaption", { id: titleId, text: title }),
    root,
    h("p", { class: "visually-hidden", id: descId, text: summary }));
}
