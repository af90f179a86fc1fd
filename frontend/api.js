// What every page needs to talk to the API: element lookup, the CSRF token from its cookie,
// and fetch with errors turned into sentences for the person at the screen.

export const $ = (id) => document.getElementById(id);

export function csrfToken() {
  const match = document.cookie.match(/(?:^|; )mscrowd_csrf=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

export async function api(method, path, body, headers = {}) {
  const init = { method, credentials: "same-origin", headers: { ...headers } };
  if (method !== "GET") init.headers["X-CSRF-Token"] = csrfToken();
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (response.status === 204) return null;
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(describeError(response, data));
    error.status = response.status;
    error.code = data.code || null; // machine-readable reason ("rater_suspended", ...)
    throw error;
  }
  return data;
}

// Field names as people read them in the forms.
const FIELD_NAMES = { email: "Email", password: "Password", display_name: "Pseudonym" };

// A sentence for the person at the screen: one line per invalid field, or the server's detail
// (a 429 or 503 detail already says how long to wait).
export function describeError(response, data) {
  if (Array.isArray(data.errors) && data.errors.length) {
    return data.errors
      .map((e) => {
        const field = e.loc.filter((part) => !["body", "query", "path"].includes(part)).join(".");
        return `${FIELD_NAMES[field] || field}: ${e.msg}`;
      })
      .join(" ");
  }
  return data.detail || `The server answered ${response.status}`;
}

// A DOM element with attributes ("text" sets its text) and children.
export function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

export function button(label, onClick, attributes = {}) {
  const node = element("button", { type: "button", ...attributes, text: label });
  node.addEventListener("click", onClick);
  return node;
}

// The start of a staff page: the caller must be logged in with one of ``roles`` (else the
// page's #gate says why, and null comes back); fills the #project picker; the projects.
export async function staffProjects(roles, refusal) {
  const gate = (text) => {
    $("gate").textContent = text;
    $("gate").hidden = false;
    return null;
  };
  let me;
  try {
    me = await api("GET", "/api/auth/me");
  } catch (error) {
    return gate("Log in on the labelling page first, then come back here.");
  }
  if (!roles.includes(me.role)) return gate(refusal);
  const projects = await api("GET", "/api/projects");
  $("project").replaceChildren(...projects.map((p) => new Option(p.name, p.id)));
  return projects;
}
