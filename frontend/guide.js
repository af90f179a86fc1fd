// The field guide (GET /api/tutorials/field-guide): the lesion types to paint and the
// look-alikes to leave unpainted, each with its one-line tell, searchable. A panel beside the
// page on a laptop (the page narrows, so the slice stays whole on screen) and a sheet over the
// lower part of a phone's screen; opened from the header's "Field guide" button on the studio
// and the tutorial page, closed with its Close button or Esc (focus goes back to the button).
import { $, api, button, element } from "./api.js";

const SEARCH_DELAY_MS = 250;
const KINDS = { lesion: "Lesion: paint it", mimic: "Look-alike: leave it" };

let panel = null;
let opener = null;
let asked = 0; // the latest search: answers to older ones are dropped
let timer = null;

function entryNode(entry) {
  const summary = element(
    "summary",
    {},
    element("span", { class: `guide-kind ${entry.kind}`, text: KINDS[entry.kind] || entry.kind }),
    element("strong", { class: "guide-name", text: entry.title }),
    element("span", { class: "guide-tell", text: entry.tell }),
  );
  const more = element("div", { class: "guide-more" });
  if (entry.image_url) {
    const outlined = entry.kind === "lesion" ? ", the lesions outlined in blue" : "";
    more.append(
      element("img", {
        src: entry.image_url,
        alt: `${entry.title}: an example slice${outlined}`,
        loading: "lazy",
        "data-testid": "guide-image",
      }),
    );
  } else {
    more.append(element("p", { class: "note", text: "No example picture of this on this site yet." }));
  }
  more.append(element("p", { text: entry.body }));
  if (entry.looks_like || entry.action) {
    const facts = element("dl", { class: "guide-facts" });
    if (entry.looks_like) facts.append(element("dt", { text: "Looks like" }), element("dd", { text: entry.looks_like }));
    if (entry.action) {
      const action = entry.action.charAt(0).toUpperCase() + entry.action.slice(1);
      facts.append(element("dt", { text: "What to do" }), element("dd", { text: action }));
    }
    more.append(facts);
  }
  return element(
    "li",
    {},
    element("details", { class: `guide-entry ${entry.kind}`, "data-id": entry.id, "data-testid": "guide-entry" }, summary, more),
  );
}

async function search() {
  const words = $("guide-search").value.trim();
  const mine = ++asked;
  let found;
  try {
    found = await api("GET", `/api/tutorials/field-guide?q=${encodeURIComponent(words)}`);
  } catch (error) {
    if (mine === asked) $("guide-count").textContent = `The field guide could not be loaded: ${error.message}`;
    return;
  }
  if (mine !== asked) return;
  const entries = found.entries;
  $("guide-list").replaceChildren(...entries.map(entryNode));
  const count = $("guide-count");
  count.dataset.count = String(entries.length);
  if (!words) count.textContent = `${entries.length} entries. Search, or open one to read more.`;
  else if (entries.length) count.textContent = `${entries.length} ${entries.length === 1 ? "entry matches" : "entries match"} “${words}”.`;
  else count.textContent = `Nothing matches “${words}”. Try another word, such as ventricle, bright or dot.`;
}

function build() {
  const input = element("input", {
    id: "guide-search",
    type: "search",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "ventricle, dot, bright…",
    "aria-describedby": "guide-count",
    "data-testid": "guide-search",
  });
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(search, SEARCH_DELAY_MS);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      clearTimeout(timer);
      search();
    }
  });
  panel = element(
    "aside",
    { id: "guide", class: "guide", "aria-labelledby": "guide-title", "data-testid": "guide", hidden: "" },
    element(
      "div",
      { class: "guide-head" },
      element("h2", { id: "guide-title", text: "Field guide" }),
      button("Close", closeGuide, { id: "guide-close", "aria-label": "Close the field guide", title: "Close (Esc)" }),
    ),
    element("label", { for: "guide-search", text: "Search lesions and look-alikes" }),
    input,
    element("p", { id: "guide-count", class: "guide-count", role: "status", "data-testid": "guide-count" }),
    element("ul", { id: "guide-list", class: "guide-list", "data-testid": "guide-list" }),
    element(
      "p",
      { class: "guide-foot" },
      "Lessons with practice slices: ",
      element("a", { href: "/tutorials", text: "the tutorial" }),
      ".",
    ),
  );
  // Right after the header: Tab from the header's button goes straight into the guide.
  const header = document.querySelector("body > header");
  if (header) header.after(panel);
  else document.body.prepend(panel);
}

export function openGuide() {
  if (!panel.hidden) {
    $("guide-search").focus();
    return;
  }
  panel.hidden = false;
  document.body.classList.add("guide-open");
  if (opener) opener.setAttribute("aria-expanded", "true");
  if (!$("guide-list").childElementCount) search();
  $("guide-search").focus();
}

export function closeGuide() {
  if (!panel || panel.hidden) return;
  panel.hidden = true;
  document.body.classList.remove("guide-open");
  if (opener) {
    opener.setAttribute("aria-expanded", "false");
    if (!opener.hidden) opener.focus();
  }
}

// Wires ``openButton`` (in the header) to the guide, built once per page.
export function setUpGuide(openButton) {
  if (!panel) build();
  opener = openButton;
  opener.setAttribute("aria-controls", "guide");
  opener.setAttribute("aria-expanded", "false");
  opener.addEventListener("click", () => (panel.hidden ? openGuide() : closeGuide()));
  document.addEventListener("keydown", (event) => {
    // A modal dialog (help, report) takes Esc first: it closes itself.
    if (event.key !== "Escape" || panel.hidden || document.querySelector("dialog[open]")) return;
    event.preventDefault();
    closeGuide();
  });
}
