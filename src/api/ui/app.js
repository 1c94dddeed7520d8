// The dashboard's entry point: hash routing (`#/experiments[/kind]`, `#/jobs`, `#/jobs/<id>`,
// `#/compare/<candidate>/<baseline>`, `#/trends[/kind]`, each with an optional `?query`), since
// the plain paths belong to the JSON API, and the page lifecycle (each page registers what
// to stop — timers, event streams — when the reader leaves it).

import { h, replace } from "./dom.js";
import { renderExperiments } from "./experiments.js";
import { renderJobs } from "./jobs.js";
import { renderJob } from "./job.js";
import { renderCompare } from "./compare.js";
import { renderTrends } from "./trends.js";

const main = document.getElementById("main");
let generation = 0;
let cleanups = [];

/** The page a hash names; `query` holds what follows its `?`. */
function parseRoute(hash) {
  const [path, search = ""] = hash.replace(/^#\/?/, "").split("?", 2);
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const query = new URLSearchParams(search);
  if (parts[0] === "jobs" && parts[1]) return { page: "job", id: parts[1], query };
  if (parts[0] === "jobs") return { page: "jobs", query };
  if (parts[0] === "compare" && parts[1] && parts[2]) return { page: "compare", candidate: parts[1], baseline: parts[2], query };
  if (parts[0] === "trends") return { page: "trends", kind: parts[1], query };
  return { page: "experiments", kind: parts[0] === "experiments" ? parts[1] : undefined, query };
}

const PAGES = { experiments: renderExperiments, jobs: renderJobs, job: renderJob, compare: renderCompare, trends: renderTrends };
/** The navigation entry a page belongs to. */
const SECTION = { job: "jobs", compare: "jobs" };

function markNavigation(page) {
  for (const link of document.querySelectorAll("[data-nav]")) {
    const current = link.dataset.nav === (SECTION[page] ?? page);
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function showRoute({ focus }) {
  // In-page anchors such as the skip link are not routes.
  if (location.hash && !location.hash.startsWith("#/")) return;
  for (const cleanup of cleanups.splice(0)) cleanup();
  const mine = ++generation;
  const route = parseRoute(location.hash);
  markNavigation(route.page);
  const context = {
    main,
    route,
    /** Whether this page is still the one shown (false once the reader navigated away). */
    active: () => mine === generation,
    /** Registers something to stop when the page is left. */
    onLeave: (cleanup) => cleanups.push(cleanup),
    navigate: (hash) => { location.hash = hash; },
    /** Moves keyboard focus to a page's heading after navigation. */
    focus: (element) => {
      if (focus && element) {
        element.setAttribute("tabindex", "-1");
        element.focus();
      }
    },
  };
  try {
    await PAGES[route.page](context);
  } catch (error) {
    if (!context.active()) return;
    replace(main, h("h1", { text: "Something went wrong" }), h("p", { class: "error", role: "alert", text: error.message }));
  }
}

document.getElementById("skip-link").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});
window.addEventListener("hashchange", () => showRoute({ focus: true }));
if (!location.hash) history.replaceState(null, "", "#/experiments");
showRoute({ focus: false });
