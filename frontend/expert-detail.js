// The detail pane: the selected slice large in the studio's viewer (viewer.js: zoom, pan,
// brightness and contrast, FLAIR/T1/T2, neighbouring slices), every mask on it as a toggled
// overlay (reference, gold, fused label, each rater's answer named by pseudonym in its own
// colour), and the actions: approve, edit (paint from the reference or the fused label, with
// undo; saved as a new gold version) and reject (with a reason).
import { $, api, element } from "./api.js";
import { decodeRle, encodeRle } from "./mask.js";
import { Viewer, bindWindowSliders } from "./viewer.js";

// Okabe-Ito and Tableau colours, told apart with the common colour-vision deficiencies.
// The reference yellow, gold sky blue, the fused label magenta (white vanished on bright
// lesions); the volunteers' colours avoid all three (Okabe-Ito and Dark2 hues).
const FIXED = { reference: [240, 228, 66], gold: [86, 180, 233], fused: [255, 0, 255] };
const RATERS = [
  [0, 158, 115],
  [213, 94, 0],
  [0, 114, 178],
  [166, 118, 29],
  [102, 166, 30],
];
const KIND = { candidates: "candidate", gold: "gold", answers: "answer", review: "review" };
const STRATA = { empty: "empty", mimic: "bright look-alike", small: "small", medium: "medium", large: "large" };

const state = {
  item: null, // the list row shown, with .list: "candidates" | "gold" | "answers" | "review"
  detail: null, // GET /api/quality/workspace/slices/{id}
  overlays: [], // [{key, label, kind, colour, mask, on}]
  hidden: new Set(), // overlay keys the expert switched off (kept across slices)
  showOverlays: true,
  editing: false,
  loading: 0,
  say: () => {},
  changed: async () => {},
};

const viewer = new Viewer($("view"), { onChange: masked, onHint: (text) => state.say(text) });
$("view").viewer = viewer; // read-only inspection for the browser tests
viewer.tool = "pan";

const colourCss = ([r, g, b]) => `rgb(${r}, ${g}, ${b})`;
const where = (d) => `Case ${d.case}, slice ${d.index}`;

export function initDetail({ say, changed }) {
  state.say = say;
  state.changed = changed;
  bindControls();
  clear();
}

export const isEditing = () => state.editing;
export const isRejecting = () => !$("reject-form").hidden;

// --- showing a slice ------------------------------------------------------------------------

export async function show(item, list) {
  const ticket = ++state.loading;
  $("detail").dataset.shown = ""; // set again once the slice and its overlays are drawn
  if (!item) {
    clear();
    return;
  }
  const detail = await api("GET", `/api/quality/workspace/slices/${item.slice_id}`);
  if (ticket !== state.loading) return; // a later selection won
  state.item = { ...item, list };
  state.detail = detail;
  stopEditing();
  closeReject();
  $("detail").classList.remove("empty");
  $("detail-title").textContent = where(detail);
  $("detail-facts").textContent = facts(detail);
  await viewer.setSlice({ width: detail.width, height: detail.height, images: detail.images }, detail.neighbours);
  if (ticket !== state.loading) return;
  let rater = 0;
  state.overlays = detail.overlays.map((o) => ({
    ...o,
    colour: FIXED[o.kind] || RATERS[rater++ % RATERS.length],
    bits: decodeRle(o.mask.counts, detail.width * detail.height),
  }));
  renderOverlayList();
  applyOverlays();
  updateContrasts();
  offsetShown();
  slidersFromWindow();
  updateActions();
  $("rejections").replaceChildren(
    ...detail.rejections.map((r) =>
      element("li", { text: `Rejected as ${r.kind} ${r.created_at.slice(0, 10)}: ${r.reason}` }),
    ),
  );
  $("detail").dataset.shown = String(detail.slice_id);
}

function facts(d) {
  const parts = [];
  if (d.stratum) parts.push(`lesion load: ${STRATA[d.stratum] || d.stratum}`);
  if (d.gold_version_id) parts.push("gold");
  else if (d.candidate) parts.push("gold candidate");
  if (d.entropy !== null) parts.push(`fused entropy ${d.entropy.toFixed(2)} bits`);
  const answers = d.overlays.filter((o) => o.kind === "volunteer").length;
  if (answers) parts.push(`${answers} volunteer answer${answers > 1 ? "s" : ""}`);
  return parts.join(" · ");
}

function clear() {
  state.loading += 1;
  state.item = null;
  state.detail = null;
  state.overlays = [];
  stopEditing();
  closeReject();
  $("detail").classList.add("empty");
  $("detail-title").textContent = "Nothing selected";
  $("detail-facts").textContent = "";
  $("overlay-list").replaceChildren();
  $("rejections").replaceChildren();
  viewer.setOverlays([]);
  updateActions();
}

// --- overlays -------------------------------------------------------------------------------

function renderOverlayList() {
  $("overlay-list").replaceChildren(
    ...state.overlays.map((o) => {
      const box = element("input", { type: "checkbox", "data-key": o.key, "data-testid": "overlay-toggle" });
      box.checked = !state.hidden.has(o.key);
      box.addEventListener("change", () => {
        if (box.checked) state.hidden.delete(o.key);
        else state.hidden.add(o.key);
        applyOverlays();
      });
      const swatch = element("span", { class: "swatch", "aria-hidden": "true" });
      swatch.style.borderColor = colourCss(o.colour);
      const notes = [];
      if (o.kind === "volunteer" || o.kind === "expert") notes.push(o.kind === "expert" ? "expert" : o.trust || "volunteer");
      if (o.excluded) notes.push("left out of fusion");
      if (o.dice !== null && o.dice !== undefined) notes.push(`Dice ${o.dice.toFixed(2)}`);
      notes.push(`${o.pixels} px`);
      return element(
        "li",
        {},
        element("label", { class: "check" }, box, swatch, element("span", { text: o.label }), element("small", { text: notes.join(", ") })),
      );
    }),
  );
  if (!state.overlays.length) $("overlay-list").append(element("li", { class: "hint", text: "No mask on this slice." }));
}

function applyOverlays() {
  const shown = state.showOverlays ? state.overlays.filter((o) => !state.hidden.has(o.key)) : [];
  viewer.setOverlays(shown.map((o) => ({ mask: o.bits, colour: o.colour })));
  $("view").dataset.overlays = shown.map((o) => o.key).join(" ");
}

export function toggleOverlays() {
  state.showOverlays = !state.showOverlays;
  $("overlays-on").checked = state.showOverlays;
  applyOverlays();
}

// --- actions --------------------------------------------------------------------------------

const overlay = (key) => state.overlays.find((o) => o.key === key);

// What Approve does for the row shown, or why it cannot.
function approval() {
  const item = state.item;
  if (!item || !state.detail) return { why: "" };
  if (item.list === "candidates") return { run: () => api("POST", `/api/quality/slices/${item.slice_id}/gold`, { source: "reference" }), done: "Its reference mask is gold now." };
  if (item.list === "answers") {
    return { run: () => api("POST", `/api/quality/annotations/${item.annotation_id}/gold`), done: `${item.expert}'s answer is the slice's gold now.` };
  }
  if (item.list === "gold") return { why: "Already gold: edit it to make a new version, or reject it to retire it." };
  const fused = overlay("fused");
  if (!fused) return { why: "No fused label yet: edit to paint gold." };
  return { run: () => saveMask(fused.mask.counts), done: "The fused label is the slice's gold now." };
}

function updateActions() {
  const ready = Boolean(state.detail) && !state.editing;
  const approve = approval();
  $("approve").disabled = !ready || !approve.run;
  $("edit").disabled = !ready;
  $("reject").disabled = !ready || state.item.list === "answers";
  $("action-hint").textContent = ready && !approve.run ? approve.why : "";
  $("actions").hidden = state.editing || isRejecting();
}

export async function approve() {
  const action = approval();
  if ($("approve").disabled || !action.run) return;
  const label = where(state.detail);
  await act(async () => {
    await action.run();
    state.say(`${label}: ${action.done}`);
  });
}

// Run an action, then let the lists reload (the row may have left its list).
async function act(work) {
  for (const id of ["approve", "edit", "reject", "save"]) $(id).disabled = true;
  try {
    await work();
    stopEditing();
    await state.changed();
  } catch (error) {
    state.say(error.message);
    updateActions();
    $("save").disabled = false;
  }
}

function saveMask(counts) {
  const d = state.detail;
  return api("POST", `/api/quality/slices/${d.slice_id}/gold`, {
    source: "expert",
    mask: { encoding: "rle", width: d.width, height: d.height, counts },
  });
}

// --- editing --------------------------------------------------------------------------------

export async function startEdit() {
  if ($("edit").disabled) return;
  const d = state.detail;
  const sources = [...state.overlays.map((o) => [o.key, o.label]), ["", "Empty mask"]];
  $("edit-start").replaceChildren(...sources.map(([value, text]) => new Option(text, value)));
  const first = ["gold", "reference", "fused"].find((key) => overlay(key)) || "";
  $("edit-start").value = first;
  state.editing = true;
  await viewer.home();
  offsetShown();
  viewer.setMask(first ? overlay(first).bits.slice() : new Uint8Array(d.width * d.height));
  setTool("brush");
  $("edit-tools").hidden = false;
  $("detail").classList.add("editing");
  updateActions();
  state.say(`Editing ${where(d)}: paint with the brush, then save it as gold.`);
}

function startFrom(key) {
  const d = state.detail;
  viewer.remember(viewer.mask.slice()); // undo goes back to what was painted before
  viewer.mask = key ? overlay(key).bits.slice() : new Uint8Array(d.width * d.height);
  viewer.changed();
}

function stopEditing() {
  state.editing = false;
  $("edit-tools").hidden = true;
  $("detail").classList.remove("editing");
  if (state.detail) viewer.setMask(new Uint8Array(state.detail.width * state.detail.height));
  viewer.tool = "pan";
  viewer.render();
  updateActions();
}

export function cancel() {
  if (state.editing) {
    stopEditing();
    state.say("Edit cancelled; nothing was saved.");
  } else if (isRejecting()) closeReject();
}

export async function save() {
  if (!state.editing) return;
  const label = where(state.detail);
  await act(async () => {
    const version = await saveMask(encodeRle(viewer.mask));
    state.say(`${label}: your mask is gold version ${version.version}.`);
  });
}

export function setTool(tool) {
  if (!state.editing) return;
  viewer.tool = tool;
  for (const button of document.querySelectorAll(".tool")) {
    button.setAttribute("aria-pressed", String(button.dataset.tool === tool));
  }
  viewer.render();
}

export function setSize(size) {
  const value = Math.min(15, Math.max(1, size));
  $("brush-size").value = String(value);
  $("size-value").textContent = String(value);
  viewer.size = value;
  viewer.render();
}

export const undo = () => state.editing && viewer.undo();
export const redo = () => state.editing && viewer.redo();

function masked({ canUndo, canRedo }) {
  $("undo").disabled = !canUndo;
  $("redo").disabled = !canRedo;
}

// --- rejecting ------------------------------------------------------------------------------

export function openReject() {
  if ($("reject").disabled) return;
  $("reject-form").hidden = false;
  $("reject-reason").value = "";
  $("reject-reason").focus();
  updateActions();
}

function closeReject() {
  $("reject-form").hidden = true;
  updateActions();
}

async function reject(event) {
  event.preventDefault();
  const reason = $("reject-reason").value.trim();
  if (reason.length < 3) {
    state.say("Say why in a few words (3 characters or more).");
    return;
  }
  const { slice_id: sliceId, list } = state.item;
  const label = where(state.detail);
  closeReject();
  await act(async () => {
    await api("POST", `/api/quality/workspace/slices/${sliceId}/reject`, { kind: KIND[list], reason });
    const what = { candidates: "is no gold candidate any more", gold: "is no longer gold", review: "left the review queue" };
    state.say(`${label} ${what[list]}.`);
  });
}

// --- the view -------------------------------------------------------------------------------

export async function setContrast(name) {
  if (await viewer.setContrast(name)) updateContrasts();
}

function updateContrasts() {
  for (const button of document.querySelectorAll(".contrast")) {
    button.hidden = !(viewer.contrasts || ["flair"]).includes(button.dataset.contrast);
    button.setAttribute("aria-pressed", String(button.dataset.contrast === viewer.contrast));
  }
}

export async function step(direction) {
  if (state.detail && (await viewer.step(direction))) offsetShown();
}

export async function home() {
  if (!state.detail) return;
  await viewer.home();
  offsetShown();
}

export const zoom = (factor) => state.detail && viewer.zoomCentre(factor);
export const fit = () => state.detail && viewer.fit();

function offsetShown() {
  const offset = viewer.offset;
  const badge = $("offset-badge");
  badge.textContent =
    offset === 0 ? "This slice" : `Context: ${Math.abs(offset)} slice${Math.abs(offset) > 1 ? "s" : ""} ${offset > 0 ? "above" : "below"} (view only)`;
  badge.classList.toggle("context", offset !== 0);
  const offsets = viewer.offsets || [0];
  $("slice-up").disabled = offset === Math.max(...offsets);
  $("slice-down").disabled = offset === Math.min(...offsets);
}

let slidersFromWindow = () => {};

function bindControls() {
  $("approve").addEventListener("click", approve);
  $("edit").addEventListener("click", startEdit);
  $("reject").addEventListener("click", openReject);
  $("reject-form").addEventListener("submit", reject);
  $("reject-cancel").addEventListener("click", closeReject);
  $("save").addEventListener("click", save);
  $("edit-cancel").addEventListener("click", cancel);
  $("edit-start").addEventListener("change", () => startFrom($("edit-start").value));
  $("undo").addEventListener("click", undo);
  $("redo").addEventListener("click", redo);
  $("clear").addEventListener("click", () => viewer.clear());
  $("brush-size").addEventListener("input", () => setSize(Number($("brush-size").value)));
  for (const button of document.querySelectorAll(".tool")) button.addEventListener("click", () => setTool(button.dataset.tool));
  for (const button of document.querySelectorAll(".contrast")) button.addEventListener("click", () => setContrast(button.dataset.contrast));
  $("overlays-on").addEventListener("change", () => {
    if ($("overlays-on").checked !== state.showOverlays) toggleOverlays();
  });
  $("slice-up").addEventListener("click", () => step(1));
  $("slice-down").addEventListener("click", () => step(-1));
  $("slice-home").addEventListener("click", home);
  $("zoom-in").addEventListener("click", () => zoom(1.25));
  $("zoom-out").addEventListener("click", () => zoom(0.8));
  $("fit").addEventListener("click", fit);
  slidersFromWindow = bindWindowSliders(viewer, {
    brightness: $("brightness"),
    contrast: $("contrast-level"),
    reset: $("window-reset"),
    view: $("view"),
  });
  setSize(3);
}

export function holdSpace(held) {
  viewer.spaceHeld = held;
  viewer.render();
}
