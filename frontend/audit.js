// The audit log for admins: filters (action, object, days), newest first, 50 a page.
import { $, api, element, signInHref, whoAmI } from "./api.js";

const PAGE = 50;
const state = { offset: 0, total: 0 };
const NAMES = {
  case_import: "Case imported",
  release: "Release built",
  download: "Release downloaded",
  withdrawal: "Withdrawal or erasure",
  role_change: "Role given",
  suspension: "Rater suspended or flagged",
  reinstatement: "Rater reinstated",
  consent_change: "Consent given or changed",
  login: "Staff sign-in",
};

function query() {
  const params = new URLSearchParams({ offset: String(state.offset), limit: String(PAGE) });
  if ($("action").value) params.set("action", $("action").value);
  const object = $("object").value.trim();
  if (object) params.set("object_id", object);
  if ($("since").value) params.set("since", `${$("since").value}T00:00:00Z`);
  if ($("until").value) {
    const end = new Date(`${$("until").value}T00:00:00Z`);
    end.setUTCDate(end.getUTCDate() + 1); // the whole last day
    params.set("until", end.toISOString());
  }
  return params;
}

// The action, told apart by what it acted on where one action covers two kinds of object.
function actionName(row) {
  if (row.action === "withdrawal") return row.object_type === "user" ? "Account erased" : "Case withdrawn";
  if (row.action === "consent_change") return row.object_type === "case" ? "Case consent changed" : "Volunteer consent";
  return NAMES[row.action] || row.action;
}

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
const scopes = (list) => (list && list.length ? list.join(", ").replaceAll("_", " ") : "experts only");

// The detail in a few words: an import's slices and de-identification, a reason, a role.
function detailText(row) {
  const d = row.detail || {};
  if (row.action === "withdrawal" && d.erasure) {
    return `${plural(d.annotations || 0, "answer")} and ${plural(d.assignments || 0, "lease")} removed; ${plural(d.tasks_refused || 0, "fused label")} made again without them`;
  }
  if (row.action === "withdrawal") {
    const flagged = d.model_versions_flagged ? `; ${plural(d.model_versions_flagged, "model version")} flagged` : "";
    return `“${d.reason}”: ${plural(d.slices || 0, "slice")}, ${plural(d.tasks || 0, "task")}, ${plural(d.answers || 0, "answer")} and ${plural(d.files || 0, "file")} removed from ${d.project}${flagged}`;
  }
  if (row.action === "consent_change" && d.after) {
    return `${scopes(d.before)} → ${scopes(d.after)} (licence ${d.licence}; ${plural(d.tasks_opened || 0, "task")} opened, ${plural(d.tasks_withheld || 0, "open task")} withheld)`;
  }
  if (row.action === "case_import") {
    const deid = d.deidentification ? `; DICOM de-identified: ${d.deidentification.files} files, only geometry and pixels kept` : "";
    const consent = Array.isArray(d.consent) ? scopes(d.consent) : d.consent;
    return `${d.slices} slices into ${d.project} (${d.licence}, consent: ${consent})${deid}`;
  }
  if (d.reason) return `${d.kind}: ${d.reason} (project ${d.project_id}, by ${d.by})`;
  if (d.role) return `role ${d.role}`;
  if (d.consent_version) return `consent version ${d.consent_version}`;
  return Object.keys(d).length ? JSON.stringify(d) : "";
}

async function load() {
  let page;
  try {
    page = await api("GET", `/api/audit?${query()}`);
  } catch (error) {
    $("summary").textContent = error.message;
    return;
  }
  state.total = page.total;
  $("rows").replaceChildren(
    ...page.rows.map((row) =>
      element(
        "tr",
        { "data-testid": "audit-row" },
        element("td", { text: row.created_at.replace("T", " ").slice(0, 19) }),
        element("td", { text: actionName(row) }),
        element("td", { text: `${row.object_type} ${row.object_id}` }),
        element("td", { text: row.actor_id === null ? "system" : `user ${row.actor_id}${row.actor_role ? ` (${row.actor_role})` : ""}` }),
        element("td", { class: "detail", text: detailText(row) }),
      ),
    ),
  );
  const last = Math.min(state.offset + page.rows.length, page.total);
  $("summary").textContent = page.total ? `Entries ${state.offset + 1} to ${last} of ${page.total}, newest first.` : "No entry matches.";
  $("newer").disabled = state.offset === 0;
  $("older").disabled = last >= page.total;
}

async function start() {
  const user = await whoAmI().catch(() => null);
  const gate = (...content) => {
    $("gate").replaceChildren(...content);
    $("gate").hidden = false;
  };
  if (!user) return gate("This page is for admins. ", element("a", { href: signInHref(), text: "Log in" }), ".");
  if (user.role !== "admin") return gate("The audit log is for admins. ", element("a", { href: "/", text: "Back to labelling" }), ".");
  $("workspace").hidden = false;
  $("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    state.offset = 0;
    load();
  });
  $("newer").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - PAGE);
    load();
  });
  $("older").addEventListener("click", () => {
    state.offset += PAGE;
    load();
  });
  await load();
}

start();
