// The header every page shares (the element with class "site"): the brand, the pages the
// signed-in role may use, the user's pseudonym and Log out; for a visitor signed out, Create
// account and Log in. A page's own items (the studio's counter and help) sit in the header's
// .site-tools and stay where they are. Loading this module draws the header; pages that sign
// people in or out call render() again.
import { api, element, forgetMe, pagesFor, signInHref, whoAmI } from "./api.js";

const header = document.querySelector(".site");

function brand() {
  return element(
    "a",
    { class: "site-brand", href: "/", "aria-label": "mscrowd home" },
    element("img", { src: new URL("./favicon.svg", import.meta.url).href, alt: "", width: "24", height: "24" }),
    element("span", { text: "mscrowd" }),
  );
}

function navigation(me) {
  const pages = me ? pagesFor(me.role) : [];
  const here = window.location.pathname;
  const list = element("ul");
  for (const page of pages) {
    // "Expert workspace" reads "Expert" on a phone: the rest is hidden there, not replaced,
    // so the link's name is always words it shows.
    const rest = page.label.startsWith(page.short) ? page.label.slice(page.short.length) : "";
    const link = element("a", { href: page.path }, rest ? page.short : page.label);
    if (rest) link.append(element("span", { class: "more", text: rest }));
    if (page.path === here) link.setAttribute("aria-current", "page");
    list.append(element("li", page.wide && page.path !== here ? { class: "wide" } : {}, link));
  }
  // Counted as a phone shows them (one page alone is not listed there).
  const shown = pages.filter((page) => !page.wide || page.path === here).length;
  return element("nav", { class: "site-nav", "aria-label": "Pages", "data-count": String(shown), hidden: "" }, list);
}

function account(me) {
  if (me) {
    const out = element("button", { type: "button", id: "logout", class: "quiet" });
    out.textContent = "Log out";
    out.addEventListener("click", () => logout());
    return element(
      "div",
      { id: "who", class: "who" },
      element("span", { id: "display-name", "data-testid": "display-name", text: me.display_name, title: `Signed in as ${me.display_name}` }),
      out,
    );
  }
  // On the landing page the forms are right there; elsewhere, to them and back here.
  const onLanding = window.location.pathname === "/";
  const href = (form) => (onLanding ? `#${form}-form` : signInHref(window.location.pathname + window.location.search, form));
  return element(
    "div",
    { class: "guest" },
    element("a", { class: "button primary", href: href("signup"), text: "Create account" }),
    element("a", { class: "button", href: href("login"), text: "Log in" }),
  );
}

// Draws the header for ``me`` (null: signed out; undefined: not known yet, so neither a name
// nor the sign-in links flash by); the page's own .site-tools are kept.
export function render(me) {
  if (!header) return;
  const tools = header.querySelector(".site-tools");
  const nav = navigation(me);
  const parts = [brand(), nav, element("span", { class: "spacer" }), ...(tools ? [tools] : [])];
  if (me !== undefined) parts.push(account(me));
  header.replaceChildren(...parts);
  nav.hidden = !me;
  header.dataset.role = me ? me.role : me === null ? "guest" : "";
}

// Log out here, and start again signed out on the landing page.
export async function logout() {
  try {
    await api("POST", "/api/auth/logout");
  } finally {
    forgetMe();
    window.location.assign("/");
  }
}

render(undefined);

// The header for the user signed in when the page loaded (null: nobody). Rejects when the
// server could not say (the page decides what to show); the header then offers to sign in.
export const ready = whoAmI().then((me) => {
  render(me);
  return me;
});
ready.catch(() => render(null));
