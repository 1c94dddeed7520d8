// Which charts a job gets: for http-fanout, requests per second and p50/p99 latency over the
// run (per-second series when there are complete seconds, else the progress snapshots) and the
// latency histogram of its report; for other kinds, the main numeric figure of their progress.

import { isObject } from "./dom.js";
import { barChart, lineChart } from "./charts.js";

/** Progress fields that say how far a job is, most telling first. */
const MAIN_FIGURES = ["completed", "completed_round_trips", "objects_done", "files_done", "step_rows", "steps_done"];

function perSecond(state) {
  const reported = isObject(state.result) && Array.isArray(state.result.series) ? state.result.series : [];
  if (reported.length) return reported;
  return [...state.seconds.values()].sort((a, b) => a.second - b.second);
}

function histogram(result) {
  const buckets = isObject(result) && Array.isArray(result.histogram) ? result.histogram : [];
  const first = buckets.findIndex((bucket) => bucket.count > 0);
  if (first < 0) return null;
  const last = buckets.length - 1 - [...buckets].reverse().findIndex((bucket) => bucket.count > 0);
  return barChart({
    id: "chart-histogram",
    title: "Latency histogram (buckets doubling from 0.1 ms)",
    bars: buckets.slice(first, last + 1).map((bucket) => ({ label: `≤${bucket.le_ms}`, value: bucket.count })),
    xUnit: "latency, ms (upper bound)",
    yUnit: "requests",
  });
}

/** The charts of an http-fanout job. */
export function fanoutCharts(state) {
  const charts = [];
  const seconds = perSecond(state);
  if (seconds.length >= 2) {
    charts.push(lineChart({
      id: "chart-rps", title: "Requests per second", xUnit: "second of the run", yUnit: "req/s",
      series: [{ name: "requests/s", className: "s1", points: seconds.map((second) => [second.second, second.requests]) }],
    }));
    charts.push(lineChart({
      id: "chart-latency", title: "Latency per second", xUnit: "second of the run", yUnit: "ms",
      series: [
        { name: "p50", className: "s2", points: seconds.map((second) => [second.second, second.p50_ms]) },
        { name: "p99", className: "s3", points: seconds.map((second) => [second.second, second.p99_ms]) },
      ],
    }));
  } else {
    const snapshots = state.timeline.filter((point) => isObject(point.data) && typeof point.data.elapsed_ms === "number");
    if (snapshots.length) {
      const at = (point) => point.data.elapsed_ms / 1000;
      charts.push(lineChart({
        id: "chart-rps", title: "Requests per second (between snapshots)", xUnit: "seconds since the first request", yUnit: "req/s",
        series: [{ name: "requests/s", className: "s1", points: snapshots.map((point) => [at(point), point.data.current_rps]) }],
      }));
      charts.push(lineChart({
        id: "chart-latency", title: "Latency so far", xUnit: "seconds since the first request", yUnit: "ms",
        series: [
          { name: "p50", className: "s2", points: snapshots.map((point) => [at(point), point.data.p50_ms]) },
          { name: "p99", className: "s3", points: snapshots.map((point) => [at(point), point.data.p99_ms]) },
        ],
      }));
    }
  }
  const bars = histogram(state.result);
  if (bars) charts.push(bars);
  return charts;
}

/** A chart of the main numeric figure of any other kind's progress, when one changes over time. */
export function progressChart(state) {
  const points = (key) => state.timeline.filter((point) => isObject(point.data) && typeof point.data[key] === "number");
  const keys = [...new Set(state.timeline.flatMap((point) => (isObject(point.data) ? Object.keys(point.data) : [])))];
  const changing = keys.filter((key) => new Set(points(key).map((point) => point.data[key])).size >= 2);
  const key = MAIN_FIGURES.find((name) => changing.includes(name)) || changing[0];
  if (!key) return [];
  return [lineChart({
    id: "chart-progress", title: `${key} over time`, xUnit: "seconds since the first event", yUnit: key,
    series: [{ name: key, className: "s1", points: points(key).map((point) => [point.t, point.data[key]]) }],
  })];
}
