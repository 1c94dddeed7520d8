// The dashboard's entry point: hash routing (`#/experiments[/kind]`, `#/jobs`, `#/jobs/<id>`),
// since the plain paths belong to the JSON API, and the page lifecycle (each page registers what
// to stop — timers, event streams — when the reader leaves it).

import { h, replace } from "./dom.js";
import { renderExperiments } from "./experiments.js";
import { renderJobs } from "./jobs.js";
import { renderJob } from "./job.js";

const main = document.getElementById("main");
let generation = 0;
let cleanups = [];

/** The page a hash names. */
function parseRoute(hash) {
  const parts = hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "jobs" && parts[1]) return { page: "job", id: parts[1] };
  if (parts[0] === "jobs") return { page: "jobs" };
  return { page: "experiments", kind: parts[0] === "experiments" ? parts[1] : undefined };
}

const PAGES = { experiments: renderExperiments, jobs: renderJobs, job: renderJob };

function markNavigation(page) {
  for (const link of document.querySelectorAll("[data-nav]")) {
    const current = link.dataset.nav === page || (page === "job" && link.dataset.nav === "jobs");
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
