// The studio page's few shared pieces of screen: which section shows, the toast over the
// slice, and the status line under the actions.
import { $ } from "./api.js";

const SECTIONS = ["auth", "consent", "studio", "empty", "paused"];

export function show(section) {
  const changed = document.body.dataset.section !== section;
  for (const id of SECTIONS) $(id).hidden = id !== section;
  document.body.dataset.section = section;
  // A new screen starts at its top (the consent after signing up at the foot of the landing
  // page opened scrolled down, without its title and the header).
  if (changed) window.scrollTo(0, 0);
  // Help is about labelling: not on the landing page, where it would only puzzle.
  $("help-open").hidden = section === "auth";
}

let toastTimer = null;
export function toast(text, ms = 2600) {
  const node = $("toast");
  node.textContent = text;
  node.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    node.hidden = true;
  }, ms);
}

export function status(text) {
  $("status").textContent = text;
}
