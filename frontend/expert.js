// Expert workspace: lists on the left (gold candidates, gold, experts' answers; the review
// queue), the selected slice in the detail pane on the right (expert-detail.js), the rater
// table (expert-raters.js) and volunteers' problem reports; keyboard shortcuts for all of it.
// ES modules served as they are (no build step); they talk to /api/quality/* with the cookie.
import { $, api, button, element, staffProjects } from "./api.js";
import * as detail from "./expert-detail.js";
import { ItemList } from "./expert-lists.js";
import { loadRaters } from "./expert-raters.js";
import { loadTraining } from "./expert-training.js";

const STRATA = { empty: "Empty", mimic: "Bright look-alike", small: "Small", medium: "Medium", large: "Large" };
const state = { project: null, tab: "tab-gold", goldKind: "candidates" };

function say(text) {
  $("status").textContent = text;
}

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

// --- the gold list --------------------------------------------------------------------------

function goldQuery(offset, limit) {
  const query = new URLSearchParams({ project_id: state.project, offset, limit });
  if (state.goldKind === "candidates") {
    if ($("filter-case").value) query.set("case", $("filter-case").value);
    if ($("filter-stratum").value) query.set("stratum", $("filter-stratum").value);
    query.set("empty", $("filter-empty").value);
  }
  return query;
}

const GOLD_PATHS = { candidates: "candidates", gold: "gold", answers: "answers" };

function describeGold(item) {
  const [title, where] = [`Slice ${item.index}`, `Case ${item.case}`];
  if (state.goldKind === "candidates") {
    const load = STRATA[item.stratum] || item.stratum;
    return { title, lines: [where, `${load}: ${plural(item.reference_pixels ?? 0, "lesion pixel")}`] };
  }
  if (state.goldKind === "gold") {
    return { title, lines: [where, `Gold v${item.version} (${item.source}), ${plural(item.lesion_pixels, "pixel")}`] };
  }
  return {
    title,
    lines: [where, `${item.expert}: ${plural(item.lesion_pixels, "pixel")}`],
    badge: item.is_gold_slice ? "slice is gold" : "",
  };
}

function fillFilters(page) {
  if (state.goldKind !== "candidates") return;
  $("count-candidates").textContent = String(page.cases.reduce((sum, c) => sum + c.count, 0));
  const keep = (select, options) => {
    const value = select.value;
    select.replaceChildren(...options.map(([v, text]) => new Option(text, v)));
    select.value = options.some(([v]) => v === value) ? value : "";
  };
  keep($("filter-case"), [["", "All cases"], ...page.cases.map((c) => [c.value, `${c.value} (${c.count})`])]);
  const strata = new Map(page.strata.map((s) => [s.value, s.count]));
  const chosen = $("filter-stratum").value;
  if (chosen && !strata.has(chosen)) strata.set(chosen, 0);
  keep($("filter-stratum"), [["", "Any"], ...[...strata].map(([v, n]) => [v, `${STRATA[v] || v} (${n})`])]);
}

const goldList = new ItemList({
  list: $("gold-list"),
  range: $("gold-range"),
  prev: $("gold-prev"),
  next: $("gold-next"),
  empty: "Nothing to list.",
  fetchPage: (offset, limit) =>
    api("GET", `/api/quality/workspace/${GOLD_PATHS[state.goldKind]}?${goldQuery(offset, limit)}`),
  describe: describeGold,
  onSelect: (item) => detail.show(item, state.goldKind),
  onPage: (page) => {
    fillFilters(page);
    if (state.goldKind === "gold") $("count-gold").textContent = String(page.total);
  },
});

const GOLD_HINTS = {
  candidates: "Slices with a reference mask, spread over cases and lesion loads. Approve freezes the mask as gold.",
  gold: "The project's gold slices, newest first. Edit one to make a new version; reject it to retire it.",
  answers: "Answers experts gave to crowd tasks; approve one to make it the slice's gold.",
};

async function setGoldKind(kind) {
  state.goldKind = kind;
  for (const b of document.querySelectorAll(".gold-kind")) b.setAttribute("aria-pressed", String(b.dataset.kind === kind));
  $("candidate-filters").hidden = kind !== "candidates";
  $("gold-hint").textContent = GOLD_HINTS[kind];
  await goldList.reset();
}

// --- the review queue -----------------------------------------------------------------------

const reviewList = new ItemList({
  list: $("review-list"),
  range: $("review-range"),
  prev: $("review-prev"),
  next: $("review-next"),
  empty: "No slice with two or more volunteer answers to review.",
  fetchPage: (offset, limit) => {
    const query = new URLSearchParams({ project_id: state.project, offset, limit, sort: $("review-sort").value });
    return api("GET", `/api/quality/workspace/review?${query}`);
  },
  describe: (item) => ({
    title: `Slice ${item.index}`,
    lines: [
      `Case ${item.case}`,
      (item.entropy === null ? "Not fused yet" : `Entropy ${item.entropy.toFixed(2)}`) + ` · Dice ${item.mean_dice.toFixed(2)}`,
      item.raters.map((r) => r.pseudonym).join(", "),
    ],
    badge: item.escalated ? "escalated" : "",
  }),
  onSelect: (item) => detail.show(item, "review"),
});

// --- problem reports ------------------------------------------------------------------------

const REASONS = {
  bad_image: "Unreadable image",
  artefact: "Artefact",
  unsure: "Unsure: needs an expert",
  other: "Something else",
};

async function loadReports() {
  const reports = await api("GET", `/api/reports?project_id=${state.project}`);
  $("report-list").replaceChildren(
    ...reports.map((r) =>
      element(
        "div",
        { class: "card", "data-testid": "report-item" },
        element("img", { src: `/api/slices/${r.slice_id}/images/flair.png`, alt: "FLAIR", loading: "lazy" }),
        element("p", { text: `${REASONS[r.reason] || r.reason}: case ${r.case_public_id}, slice ${r.slice_index}` }),
        element("p", { text: r.note ? `"${r.note}"` : "No note." }),
        element("p", { class: "hint", text: `${r.reporter}, ${new Date(r.created_at).toLocaleString()}` }),
        button("Mark as seen", async () => {
          await api("POST", `/api/reports/${r.id}/resolve`);
          say("Report marked as seen.");
          await loadReports();
        }),
      ),
    ),
  );
  if (!reports.length) $("report-list").append(element("p", { text: "No open report." }));
}

// --- tabs -----------------------------------------------------------------------------------

const TABS = {
  "tab-gold": ["gold", () => goldList.load(Math.max(goldList.selected, 0))],
  "tab-review": ["review", () => reviewList.load(Math.max(reviewList.selected, 0))],
  "tab-raters": ["raters", () => loadRaters(state.project, say)],
  "tab-reports": ["reports", loadReports],
  "tab-training": ["training", loadTraining],
};

const activeList = () => ({ "tab-gold": goldList, "tab-review": reviewList })[state.tab] || null;

function selectTab(id) {
  state.tab = id;
  for (const [tab, [panel]] of Object.entries(TABS)) {
    $(tab).setAttribute("aria-selected", String(tab === id));
    $(tab).tabIndex = tab === id ? 0 : -1;
    $(panel).hidden = tab !== id;
  }
  $("workspace").dataset.tab = TABS[id][0];
  $("detail").hidden = !activeList();
  // The pane shows this tab's row once its list is in: never the other tab's, where a key
  // would act on a row no longer in sight.
  if (activeList()) detail.show(null);
  return TABS[id][1]().catch((error) => say(error.message));
}

// After an approval, an edit or a rejection: the open list again, the same row position.
async function changed() {
  const list = activeList();
  if (list) await list.load(Math.max(list.selected, 0));
}

// --- keys -----------------------------------------------------------------------------------

// Keys never fire while the expert types (text fields, selects); sliders keep their arrows.
function typing(target, key) {
  if (target.isContentEditable || ["TEXTAREA", "SELECT"].includes(target.tagName)) return true;
  if (target.tagName !== "INPUT") return false;
  if (target.type === "range") return key.startsWith("Arrow") || key === "Home" || key === "End";
  return !["checkbox", "radio", "button", "submit"].includes(target.type);
}

const KEYS = {
  j: () => (detail.isEditing() ? say("Save or cancel the edit first.") : activeList()?.step(1)),
  k: () => (detail.isEditing() ? say("Save or cancel the edit first.") : activeList()?.step(-1)),
  a: () => detail.approve(),
  e: () => detail.startEdit(),
  r: () => detail.openReject(),
  s: () => detail.save(),
  1: () => detail.setContrast("flair"),
  2: () => detail.setContrast("t1"),
  3: () => detail.setContrast("t2"),
  o: () => detail.toggleOverlays(),
  b: () => detail.setTool("brush"),
  x: () => detail.setTool("eraser"),
  "[": () => detail.setSize(Number($("brush-size").value) - 1),
  "]": () => detail.setSize(Number($("brush-size").value) + 1),
  ArrowUp: () => detail.step(1),
  ArrowDown: () => detail.step(-1),
  Home: () => detail.home(),
  "+": () => detail.zoom(1.25),
  "=": () => detail.zoom(1.25),
  "-": () => detail.zoom(0.8),
  0: () => detail.fit(),
  Escape: () => detail.cancel(),
};

function onKey(event) {
  if (!activeList() || typing(event.target, event.key)) {
    if (event.key === "Escape" && detail.isRejecting()) detail.cancel();
    return;
  }
  const ctrl = event.ctrlKey || event.metaKey;
  if (ctrl && ["z", "y"].includes(event.key.toLowerCase())) {
    event.preventDefault();
    if (event.key.toLowerCase() === "y" || event.shiftKey) detail.redo();
    else detail.undo();
    return;
  }
  if (ctrl || event.altKey) return;
  if (event.key === " ") {
    if (["BUTTON", "INPUT", "A", "SUMMARY"].includes(event.target.tagName)) return; // activates it
    detail.holdSpace(true);
    event.preventDefault();
    return;
  }
  const action = KEYS[event.key] || KEYS[event.key.toLowerCase()];
  if (!action) return;
  event.preventDefault();
  Promise.resolve(action()).catch((error) => say(error.message));
}

// --- set-up ---------------------------------------------------------------------------------

async function start() {
  const projects = await staffProjects(["expert", "admin"], "This workspace is for experts and admins.");
  if (projects === null) return;
  state.project = projects.length ? Number(projects[0].id) : null;
  detail.initDetail({ say, changed });
  $("project").addEventListener("change", (event) => {
    state.project = Number(event.target.value);
    goldList.offset = 0;
    reviewList.offset = 0;
    selectTab(state.tab);
  });
  for (const tab of Object.keys(TABS)) $(tab).addEventListener("click", () => selectTab(tab));
  for (const b of document.querySelectorAll(".gold-kind")) {
    b.addEventListener("click", () => setGoldKind(b.dataset.kind).catch((error) => say(error.message)));
  }
  for (const id of ["filter-case", "filter-stratum", "filter-empty"]) {
    $(id).addEventListener("change", () => goldList.reset().catch((error) => say(error.message)));
  }
  $("review-sort").addEventListener("change", () => reviewList.reset().catch((error) => say(error.message)));
  document.addEventListener("keydown", onKey);
  document.addEventListener("keyup", (event) => event.key === " " && detail.holdSpace(false));
  $("workspace").hidden = false;
  if (state.project !== null) await selectTab("tab-gold");
}

start().catch((error) => say(error.message));
