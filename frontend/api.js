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
    error.href = data.href || null; // where to put it right (the tutorial, for qualification_required)
    // A 429's wait in seconds (Retry-After), for a countdown; null when not said.
    const wait = Number(response.headers.get("Retry-After"));
    error.retryAfter = wait > 0 ? wait : null;
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

// The signed-in user (GET /api/auth/me), or null for a visitor signed out: asked once per page
// load, whoever needs it first (the shared header, the page's own start), until forgetMe().
let me = null;
export function whoAmI() {
  if (!me) {
    me = api("GET", "/api/auth/me").catch((error) => {
      if (error.status === 401) return null;
      me = null; // a network or server error: ask again next time
      throw error;
    });
  }
  return me;
}

// After a log-in, sign-up, consent or log-out: the next whoAmI() asks the server again.
export function forgetMe(known = null) {
  me = known ? Promise.resolve(known) : null;
}

// The pages of the site, and who may use them ("roles": null for everyone signed in). The
// shared header lists the ones the signed-in role may use; a new page adds itself here.
// "wide": listed on laptops only (on a phone the studio keeps that row for the slice; the
// tutorial is linked from the studio's help there, and from the panel a new volunteer sees).
export const PAGES = [
  { path: "/", label: "Label", short: "Label", roles: null },
  { path: "/tutorials", label: "Tutorial", short: "Tutorial", roles: null, wide: true },
  { path: "/rewards", label: "Points", short: "Points", roles: null, wide: true },
  { path: "/expert", label: "Expert workspace", short: "Expert", roles: ["expert", "admin"] },
  { path: "/rounds", label: "Rounds", short: "Rounds", roles: ["engineer", "admin"] },
  { path: "/releases", label: "Releases", short: "Releases", roles: ["engineer", "admin"] },
  { path: "/audit", label: "Audit log", short: "Audit", roles: ["admin"] },
];

export function pagesFor(role) {
  return PAGES.filter((page) => !page.roles || page.roles.includes(role));
}

// Where to send someone after they sign in: one of the site's pages (with its query, such as
// the tutorial's ?project=), nothing else (an arbitrary ?next= would make the log-in form an
// open redirect).
export function safeNext(raw) {
  if (!raw || !raw.startsWith("/") || raw.startsWith("//")) return null;
  let url;
  try {
    url = new URL(raw, window.location.origin);
  } catch {
    return null;
  }
  if (url.origin !== window.location.origin || url.hash) return null;
  const known = PAGES.some((page) => page.path === url.pathname && page.path !== "/");
  return known ? url.pathname + url.search : null;
}

// The page a safe ``next`` leads to (for its name), or undefined.
export function pageOf(next) {
  const path = new URL(next, window.location.origin).pathname;
  return PAGES.find((page) => page.path === path);
}

// The log-in form (or, with ``form`` "signup", the sign-up form) on the landing page, coming
// back to ``path`` afterwards.
export function signInHref(path = window.location.pathname + window.location.search, form = "login") {
  const back = safeNext(path);
  return back ? `/?next=${encodeURIComponent(back)}#${form}-form` : `/#${form}-form`;
}

// The start of a staff page: the caller must be logged in with one of ``roles`` (else the
// page's #gate says why, with the way in or back, and null comes back); fills the #project
// picker; the projects.
export async function staffProjects(roles, refusal) {
  const gate = (...content) => {
    $("gate").replaceChildren(...content);
    $("gate").hidden = false;
    return null;
  };
  const user = await whoAmI().catch(() => null);
  if (!user) {
    return gate(
      "This page is for signed-in staff. ",
      element("a", { href: signInHref(), text: "Log in" }),
      " and you will come back here.",
    );
  }
  if (!roles.includes(user.role)) {
    return gate(`${refusal} `, element("a", { href: "/", text: "Back to labelling" }), ".");
  }
  const projects = await api("GET", "/api/projects");
  $("project").replaceChildren(...projects.map((p) => new Option(p.name, p.id)));
  return projects;
}
