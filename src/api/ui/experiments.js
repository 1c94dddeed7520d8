// The Experiments page: the catalogue from GET /experiments and, for the chosen kind, a launch
// form generated from its parameter schema (or raw JSON), showing validation errors by field.

import { api, ApiProblem } from "./api.js";
import { announce, h, isObject, replace } from "./dom.js";
import { mayLaunch, whoami } from "./identity.js";
import { schemaForm } from "./schema_form.js";

function catalogueList(catalogue, selectedKind) {
  return h("nav", { class: "kinds", "aria-label": "Experiment kinds" },
    h("ul", {}, catalogue.map((experiment) => h("li", { class: experiment.available ? "kind" : "kind unavailable" },
      h("a", {
        href: `#/experiments/${encodeURIComponent(experiment.kind)}`,
        "aria-current": experiment.kind === selectedKind ? "page" : false,
        dataset: { kind: experiment.kind },
      }, experiment.kind),
      experiment.available ? null : h("span", { class: "tag", text: "unavailable" }),
      h("p", { class: "summary", text: experiment.summary })))));
}

/** Shows problem details that belong to no field (and the detail when nothing else explains). */
function showGeneral(area, message, errors = []) {
  replace(area, h("p", { text: message }),
    errors.length ? h("ul", {}, errors.map(({ field, reason }) => h("li", {}, h("code", { text: field }), `: ${reason}`))) : null);
  area.hidden = false;
}

function launchForm(ctx, experiment) {
  const titleId = "launch-title";
  const general = h("div", { class: "general-error", id: "launch-error", role: "alert", hidden: true });
  const fields = schemaForm(experiment.params_schema || {}, experiment.example);
  const raw = h("textarea", { id: "raw-json", class: "code", rows: 16, spellcheck: "false", "aria-describedby": "raw-json-hint" });
  const rawField = h("div", { class: "field", hidden: true },
    h("label", { for: "raw-json", text: "Parameters (JSON)" }),
    h("p", { class: "hint", id: "raw-json-hint", text: "The request body of POST " + experiment.endpoint + "." }),
    raw);
  const toggle = h("input", { type: "checkbox", id: "raw-toggle" });
  const launch = h("button", { type: "submit", class: "primary", id: "launch", text: "Launch" });
  const reset = h("button", { type: "button", text: "Reset to the example" });
  const fieldset = h("fieldset", { disabled: !experiment.available },
    h("legend", { class: "visually-hidden", text: `Parameters of ${experiment.kind}` }),
    h("div", { class: "field field-checkbox mode" }, toggle, h("label", { for: "raw-toggle", text: "Edit as raw JSON" })),
    fields.element, rawField,
    h("div", { class: "actions" }, launch, reset));
  const form = h("form", { novalidate: true, "aria-labelledby": titleId }, general, fieldset);

  const clearErrors = () => {
    general.hidden = true;
    general.replaceChildren();
    fields.clearErrors();
  };
  const setRaw = (on) => {
    toggle.checked = on;
    rawField.hidden = !on;
    fields.element.hidden = on;
  };

  toggle.addEventListener("change", () => {
    clearErrors();
    if (toggle.checked) {
      const { params, problems } = fields.values();
      if (problems.length) {
        setRaw(false);
        fields.showErrors(problems);
        return;
      }
      raw.value = JSON.stringify(params, null, 2);
      setRaw(true);
      raw.focus();
      return;
    }
    let params;
    try {
      params = JSON.parse(raw.value);
    } catch (error) {
      setRaw(true);
      showGeneral(general, `The JSON does not parse: ${error.message}`);
      return;
    }
    const unknown = isObject(params) ? fields.unknownKeys(params) : ["(not an object)"];
    if (unknown.length) {
      setRaw(true);
      showGeneral(general, `The form has no field for ${unknown.join(", ")}; keep editing the JSON.`);
      return;
    }
    fields.setValues(params);
    setRaw(false);
  });

  reset.addEventListener("click", () => {
    clearErrors();
    fields.setValues(isObject(experiment.example) ? experiment.example : {});
    raw.value = JSON.stringify(experiment.example, null, 2);
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    let params;
    if (toggle.checked) {
      try {
        params = JSON.parse(raw.value);
      } catch (error) {
        showGeneral(general, `The JSON does not parse: ${error.message}`);
        raw.focus();
        return;
      }
    } else {
      const read = fields.values();
      if (read.problems.length) {
        fields.showErrors(read.problems);
        return;
      }
      params = read.params;
    }
    launch.disabled = true;
    launch.setAttribute("aria-busy", "true");
    try {
      const { data: job } = await api(experiment.endpoint, { method: "POST", body: params });
      announce(`Launched ${experiment.kind} job ${job.id}`);
      ctx.navigate(`#/jobs/${job.id}`);
    } catch (error) {
      if (!(error instanceof ApiProblem)) {
        showGeneral(general, `The launch failed: ${error.message}`);
        return;
      }
      const errors = error.fieldErrors;
      const unplaced = toggle.checked ? errors : fields.showErrors(errors);
      if (unplaced.length || errors.length === 0) {
        showGeneral(general, error.problem.title ? `${error.problem.title} (${error.status})` : error.message, unplaced.length ? unplaced : []);
        if (errors.length === 0 && error.problem.detail) general.append(h("p", { text: error.problem.detail }));
      }
    } finally {
      launch.disabled = false;
      launch.removeAttribute("aria-busy");
    }
  });

  return h("section", { class: "launch", "aria-labelledby": titleId },
    h("h2", { id: titleId, text: experiment.kind }),
    h("p", { class: "summary", text: experiment.summary }),
    experiment.available ? null : h("p", { class: "unavailable-reason", id: "unavailable-reason", text: `Unavailable on this server: ${experiment.unavailable_reason || "no reason given"}` }),
    form);
}

/** Renders the catalogue, with the launch form of `ctx.route.kind` when one is chosen. */
export async function renderExperiments(ctx) {
  const [{ data: catalogue }, identity] = await Promise.all([api("/experiments"), whoami()]);
  if (!ctx.active()) return;
  const selected = catalogue.find((experiment) => experiment.kind === ctx.route.kind);
  document.title = selected ? `${selected.kind} · asynclab` : "Experiments · asynclab";
  const heading = h("h1", { text: "Experiments" });
  const detail = selected && !mayLaunch(identity)
    ? h("section", { class: "launch", "aria-labelledby": "launch-title" },
      h("h2", { id: "launch-title", text: selected.kind }),
      h("p", { class: "summary", text: selected.summary }),
      h("p", { class: "muted", id: "launch-not-allowed", text: `The token ${identity.name} has the role ${identity.role}: it may watch jobs and read their reports, not launch them.` }))
    : selected
    ? launchForm(ctx, selected)
    : h("section", { class: "launch", "aria-label": "Launch" },
      h("p", { text: ctx.route.kind ? `There is no experiment “${ctx.route.kind}”.` : "Choose an experiment to see its parameters and launch it." }));
  replace(ctx.main, heading, h("div", { class: "experiments-layout" }, catalogueList(catalogue, selected && selected.kind), detail));
  ctx.focus(selected ? detail.querySelector("h2") : heading);
}
