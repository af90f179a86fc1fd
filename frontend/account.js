// The landing page's two forms (Create account first, then Log in) and the consent a
// volunteer gives before the first slice. Someone sent here from a staff page to sign in
// (/?next=/expert) goes back there afterwards.
import { $, api, forgetMe, pageOf, safeNext } from "./api.js";
import { logout, render as renderSite } from "./site.js";
import { show } from "./ui.js";

export const next = safeNext(new URLSearchParams(window.location.search).get("next"));
let ready = async () => {};

// ``onReady(me)`` runs once someone has signed in (or consented), to start their work.
export function setUpAccount(onReady) {
  ready = onReady;
}

// A link to one of the forms (the header's, a staff page's) shows all of it, ready to type.
function focusForm() {
  const form = window.location.hash.slice(1);
  const field = { "login-form": "login-email", "signup-form": "signup-name" }[form];
  if (!field || $("auth").hidden) return;
  $(form).scrollIntoView({ block: "nearest" });
  $(field).focus({ preventScroll: true });
}
window.addEventListener("hashchange", focusForm);

export function landing() {
  if (next) {
    const page = pageOf(next);
    $("next-note").textContent = `Log in to open “${page.label}”; you will be taken there afterwards.`;
    $("next-note").hidden = false;
  }
  show("auth");
  focusForm();
}

async function signedIn(session) {
  forgetMe(session.user);
  renderSite(session.user);
  if (next) {
    window.location.assign(next);
    return;
  }
  await ready(session.user);
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  const name = $("login-email").value.trim();
  const body = { password: $("login-password").value };
  if (name.includes("@")) body.email = name;
  else body.display_name = name;
  try {
    const session = await api("POST", "/api/auth/login", body);
    $("login-password").value = "";
    await signedIn(session);
  } catch (error) {
    $("login-error").textContent = error.message;
  }
});

$("signup-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("signup-error").textContent = "";
  const body = { password: $("signup-password").value };
  const name = $("signup-name").value.trim();
  const email = $("signup-email").value.trim();
  if (name) body.display_name = name;
  if (email) body.email = email;
  if (!name && !email) {
    $("signup-error").textContent = "Pseudonym: choose one to log in with.";
    return;
  }
  if (body.password.length < 10) {
    $("signup-error").textContent = "Password: use at least 10 characters.";
    return;
  }
  try {
    const session = await api("POST", "/api/auth/signup", body);
    $("signup-password").value = "";
    await signedIn(session);
  } catch (error) {
    $("signup-error").textContent = error.message;
  }
});

export async function askConsent() {
  const text = await api("GET", "/api/auth/consent");
  $("consent-title").textContent = text.title;
  $("consent-points").replaceChildren(
    ...text.points.map((point) => {
      const item = document.createElement("li");
      item.textContent = point;
      return item;
    }),
  );
  $("consent-version").textContent = text.version;
  $("consent-accept").dataset.version = text.version;
  show("consent");
  $("consent-accept").focus({ preventScroll: true });
}

$("consent-accept").addEventListener("click", async () => {
  $("consent-error").textContent = "";
  try {
    const me = await api("POST", "/api/auth/consent", { version: $("consent-accept").dataset.version });
    forgetMe(me);
    await ready(me);
  } catch (error) {
    $("consent-error").textContent = error.message;
  }
});
$("consent-decline").addEventListener("click", () => logout());
