// The studio page's few shared pieces of screen: which section shows, the toast over the
// slice, the status line under the actions, and the words of an answer's feedback (the
// tutorial page's painting view uses the last three too).
import { $ } from "./api.js";

const SECTIONS = ["auth", "consent", "studio", "empty", "paused", "qualify"];

export function show(section) {
  const changed = document.body.dataset.section !== section;
  for (const id of SECTIONS) $(id).hidden = id !== section;
  document.body.dataset.section = section;
  // A new screen starts at its top (the consent after signing up at the foot of the landing
  // page opened scrolled down, without its title and the header).
  if (changed) window.scrollTo(0, 0);
  // Help and the field guide are about labelling: not on the landing page, where they would
  // only puzzle (and the guide needs an account).
  $("help-open").hidden = section === "auth";
  $("guide-open").hidden = section === "auth";
  if (section === "auth") $("reward-notice").hidden = true; // logged out: not theirs to see
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

// An answer compared with the expert's (a gold task's or a tutorial item's feedback), in words.
export function feedbackText(feedback) {
  const found = feedback.lesions_found;
  const total = feedback.lesions_reference;
  return [
    `Overlap with the expert: ${Math.round(feedback.dice * 100)} %.`,
    total ? `Lesions found: ${found} of ${total}; missed: ${feedback.lesions_missed}.` : "The expert saw no lesion here.",
    `False alarms: ${feedback.false_alarms}.`,
  ].join(" ");
}
