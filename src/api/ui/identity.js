// Who the dashboard acts as (GET /whoami: the token's name and role) and what that role may do,
// so the pages hide what the server would refuse. The server stays the authority: a hidden
// button is a courtesy, not the check.

import { api } from "./api.js";
import { h, replace } from "./dom.js";

const RANK = { viewer: 0, launcher: 1, admin: 2 };

/** The caller: `{name, role, tokens_required}`; asked of the server on every page. */
export async function whoami() {
  const { data } = await api("/whoami");
  showIdentity(data);
  return data;
}

/** Whether the caller may launch jobs. */
export function mayLaunch(identity) {
  return RANK[identity.role] >= RANK.launcher;
}

/** Whether the caller may cancel `job`: an admin any job, a launcher the jobs it launched. */
export function mayCancel(identity, job) {
  return identity.role === "admin" || (identity.role === "launcher" && job.launched_by === identity.name);
}

/** Shows the token's name and role in the header. */
function showIdentity(identity) {
  const slot = document.getElementById("identity");
  if (!slot) return;
  slot.dataset.role = identity.role;
  replace(slot, "Token ", h("strong", { id: "identity-name", text: identity.name }), " · role ",
    h("strong", { id: "identity-role", text: identity.role }));
}
