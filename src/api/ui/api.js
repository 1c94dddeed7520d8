// Talking to the JSON API: the bearer token (asked for on a 401, kept in session storage),
// problem+json errors, and the event stream's URL (EventSource cannot send headers, so the
// token goes in its query as `access_token`, which only that route accepts).

const TOKEN_KEY = "asynclab.token";

/** An API answer that is not a success: `status` and the problem+json body (if any). */
export class ApiProblem extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `the server answered ${status}`);
    this.status = status;
    this.problem = problem || {};
  }

  /** The `errors[{field, reason}]` of the problem. */
  get fieldErrors() {
    return Array.isArray(this.problem.errors) ? this.problem.errors : [];
  }
}

/** The token this tab uses, if any. */
export function currentToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

let tokenPrompt = null;

/** Shows the token dialog once however many calls are waiting; resolves with the token or null. */
export function askForToken(message) {
  if (tokenPrompt) return tokenPrompt;
  const dialog = document.getElementById("token-dialog");
  const form = document.getElementById("token-form");
  const input = document.getElementById("token-input");
  const hint = document.getElementById("token-hint");
  const cancel = document.getElementById("token-cancel");
  tokenPrompt = new Promise((resolve) => {
    hint.textContent = message || "This server needs a token. It is kept in this tab only (session storage).";
    input.value = "";
    const finish = (token) => {
      form.removeEventListener("submit", onSubmit);
      cancel.removeEventListener("click", onCancel);
      dialog.removeEventListener("cancel", onEscape);
      if (dialog.open) dialog.close();
      tokenPrompt = null;
      resolve(token);
    };
    const onSubmit = (event) => {
      event.preventDefault();
      const token = input.value.trim();
      if (!token) return;
      sessionStorage.setItem(TOKEN_KEY, token);
      finish(token);
    };
    const onCancel = () => finish(null);
    const onEscape = () => finish(null);
    form.addEventListener("submit", onSubmit);
    cancel.addEventListener("click", onCancel);
    dialog.addEventListener("cancel", onEscape);
    dialog.showModal();
    input.focus();
  });
  return tokenPrompt;
}

/**
 * Calls the API; resolves with `{data, response}`, rejects with an ApiProblem. On a 401 it asks
 * for the token and retries.
 */
export async function api(path, { method = "GET", body, signal } = {}) {
  for (;;) {
    const headers = { accept: "application/json, application/problem+json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    const token = currentToken();
    if (token) headers.authorization = `Bearer ${token}`;
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: "no-store",
    });
    if (response.status === 401) {
      const given = await askForToken(token ? "The server refused the token. Enter the right one." : undefined);
      if (given) continue;
    }
    const type = response.headers.get("content-type") || "";
    const data = type.includes("json") ? await response.json().catch(() => null) : null;
    if (!response.ok) throw new ApiProblem(response.status, data);
    return { data, response };
  }
}

/** The URL of a job's event stream, resuming after `after`. */
export function eventsUrl(jobId, after) {
  const query = new URLSearchParams();
  if (after > 0) query.set("after", String(after));
  const token = currentToken();
  if (token) query.set("access_token", token);
  const search = query.toString();
  return `/jobs/${encodeURIComponent(jobId)}/events${search ? `?${search}` : ""}`;
}
