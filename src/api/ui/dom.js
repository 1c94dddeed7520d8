// Small DOM and formatting helpers shared by the pages. Elements are built with `h`, never
// from HTML strings, so no server value is ever parsed as markup.

/**
 * Creates an element. `attrs` keys: `class`, `text`, `dataset` (object), `on` (event → handler),
 * attributes by name otherwise (`false`/`null`/`undefined` leave an attribute out).
 */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "class") element.className = value;
    else if (name === "text") element.textContent = value;
    else if (name === "dataset") Object.assign(element.dataset, value);
    else if (name === "on") for (const [event, handler] of Object.entries(value)) element.addEventListener(event, handler);
    else if (name === "value") element.value = value;
    else if (name === "checked") element.checked = Boolean(value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  append(element, children);
  return element;
}

/** Appends children (nodes, strings, nested arrays; null and false are skipped). */
export function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

/** Replaces an element's content. */
export function replace(parent, ...children) {
  parent.replaceChildren();
  return append(parent, children);
}

/** A number for people: grouped digits, at most `digits` decimals. */
export function formatNumber(value, digits = 2) {
  if (typeof value !== "number" || !Number.isFinite(value)) return String(value);
  return value.toLocaleString("en-US", { maximumFractionDigits: Number.isInteger(value) ? 0 : digits });
}

/** Any JSON scalar for people. */
export function formatScalar(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "number") return formatNumber(value, 3);
  if (typeof value === "boolean") return value ? "yes" : "no";
  return String(value);
}

/** A timestamp as local date and time, or a dash. */
export function formatTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

/** Milliseconds between two timestamps as a short duration, or a dash. */
export function formatDuration(startIso, endIso) {
  if (!startIso) return "—";
  const ms = (endIso ? new Date(endIso) : new Date()) - new Date(startIso);
  if (!Number.isFinite(ms)) return "—";
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

/** A status badge; `data-status` drives its colour. */
export function statusBadge(status) {
  return h("span", { class: "badge", dataset: { status }, text: status });
}

/** Says `message` to screen readers through the live region. */
export function announce(message) {
  const region = document.getElementById("announcer");
  if (region) region.textContent = message;
}

/** Whether a value is a plain JSON object. */
export function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}
