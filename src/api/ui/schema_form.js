// A form generated from an experiment's parameter JSON Schema: a select for enums, a checkbox
// for booleans (mixed while left to the server's default), text inputs for numbers and strings, and a JSON text area for anything nested.
// Server validation errors (`errors[{field, reason}]`) are shown next to the field they name.

import { h, isObject } from "./dom.js";

/** What control a property gets, from its (possibly nullable, possibly `oneOf`-wrapped) schema. */
function controlFor(schema) {
  let resolved = schema;
  let nullable = false;
  if (Array.isArray(schema.oneOf)) {
    const choices = schema.oneOf.filter((choice) => choice.type !== "null");
    nullable = choices.length < schema.oneOf.length;
    if (choices.length !== 1) return { kind: "json", nullable };
    resolved = choices[0];
  }
  let type = resolved.type;
  if (Array.isArray(type)) {
    nullable = nullable || type.includes("null");
    const types = type.filter((each) => each !== "null");
    type = types.length === 1 ? types[0] : undefined;
  }
  if (Array.isArray(resolved.enum) && resolved.enum.every((value) => typeof value === "string")) {
    return { kind: "enum", options: resolved.enum, nullable };
  }
  if (type === "boolean") return { kind: "boolean", nullable };
  if (type === "integer" || type === "number") return { kind: type, nullable };
  if (type === "string") return { kind: "string", nullable };
  return { kind: "json", nullable };
}

/** One form field bound to one top-level property. */
function buildField(name, schema, required) {
  const control = controlFor(schema);
  const id = `field-${name}`;
  const hintId = `${id}-hint`;
  const errorId = `${id}-error`;
  const description = (schema.description || "").split("\n").join(" ");
  const hint = description ? h("p", { class: "hint", id: hintId, text: description }) : null;
  const error = h("p", { class: "field-error", id: errorId, hidden: true });
  const describedBy = [hint ? hintId : null, errorId].filter(Boolean).join(" ");
  const common = { id, name, "aria-describedby": describedBy, "aria-required": required ? "true" : false };
  let input;
  if (control.kind === "enum") {
    input = h("select", common,
      required ? null : h("option", { value: "", text: "(default)" }),
      control.options.map((option) => h("option", { value: option, text: option })));
  } else if (control.kind === "boolean") {
    input = h("input", { ...common, type: "checkbox" });
  } else if (control.kind === "json") {
    input = h("textarea", { ...common, rows: 4, spellcheck: "false", class: "code" });
  } else {
    const numeric = control.kind === "integer" || control.kind === "number";
    input = h("input", { ...common, type: "text", inputmode: numeric ? (control.kind === "integer" ? "numeric" : "decimal") : false, autocomplete: "off", spellcheck: "false" });
  }
  const label = h("label", { for: id }, h("code", { text: name }), required ? h("span", { class: "required", text: " (required)" }) : null);
  const element = control.kind === "boolean"
    ? h("div", { class: "field field-checkbox", dataset: { field: name } }, input, label, hint, error)
    : h("div", { class: "field", dataset: { field: name } }, label, hint, input, error);

  return {
    name,
    element,
    input,
    error,
    /** Shows `value` (undefined: empty). */
    set(value) {
      // A switch left out shows as mixed (the server's default) until it is clicked.
      if (control.kind === "boolean") {
        input.checked = value === true;
        input.indeterminate = typeof value !== "boolean";
      }
      else if (control.kind === "json") input.value = value === undefined || value === null ? "" : JSON.stringify(value, null, 2);
      else input.value = value === undefined || value === null ? "" : String(value);
    },
    /** `{value}` to send, `{}` to leave out, or `{problem}` when the input cannot be read. */
    read() {
      if (control.kind === "boolean") return input.indeterminate ? {} : { value: input.checked };
      const text = input.value.trim();
      if (text === "") return control.kind === "string" && required ? { value: "" } : {};
      if (control.kind === "integer" || control.kind === "number") {
        const number = Number(text);
        if (!Number.isFinite(number)) return { problem: "must be a number" };
        if (control.kind === "integer" && !Number.isInteger(number)) return { problem: "must be a whole number" };
        return { value: number };
      }
      if (control.kind === "json") {
        try {
          return { value: JSON.parse(text) };
        } catch (parseError) {
          return { problem: `is not valid JSON (${parseError.message})` };
        }
      }
      return { value: input.value };
    },
  };
}

/** Builds the fields of `schema` filled with `example`. */
export function schemaForm(schema, example) {
  const required = new Set(schema.required || []);
  const fields = Object.entries(schema.properties || {}).map(([name, property]) => buildField(name, property, required.has(name)));
  const byName = new Map(fields.map((field) => [field.name, field]));
  const element = h("div", { class: "fields" }, fields.map((field) => field.element));

  const form = {
    element,
    /** Names that are not fields of the form. */
    unknownKeys(params) {
      return Object.keys(params).filter((key) => !byName.has(key));
    },
    setValues(params) {
      for (const field of fields) field.set(params[field.name]);
    },
    /** `{params, problems}`: the parameters, and the inputs that could not be read. */
    values() {
      const params = {};
      const problems = [];
      for (const field of fields) {
        const read = field.read();
        if ("problem" in read) problems.push({ field: field.name, reason: read.problem });
        else if ("value" in read) params[field.name] = read.value;
      }
      return { params, problems };
    },
    clearErrors() {
      for (const field of fields) {
        field.error.hidden = true;
        field.error.replaceChildren();
        field.input.removeAttribute("aria-invalid");
      }
    },
    /** Shows each error next to its field (`processes[2].program` goes to `processes`); returns the rest. */
    showErrors(errors) {
      const unplaced = [];
      let first = null;
      for (const { field: path, reason } of errors) {
        const field = byName.get(String(path).split(/[.[]/)[0]);
        if (!field) {
          unplaced.push({ field: path, reason });
          continue;
        }
        field.error.append(h("span", { text: path === field.name ? reason : `${path}: ${reason}` }));
        field.error.hidden = false;
        field.input.setAttribute("aria-invalid", "true");
        first = first || field;
      }
      if (first) first.input.focus();
      return unplaced;
    },
  };
  form.setValues(isObject(example) ? example : {});
  return form;
}
