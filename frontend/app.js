// The volunteer studio: log in or sign up, accept the consent, then label slices one after
// another. The view and the tools are viewer.js; masks are kept in the browser until the
// server acknowledges them (drafts.js); the next slice is leased and its images loaded while
// the volunteer paints the current one, so it appears at once.
import { $, api } from "./api.js";
import { dropDraft, loadDraft, pendingDrafts, pruneDrafts, saveDraft } from "./drafts.js";
import { count, decodeRle, encodeRle } from "./mask.js";
import { Viewer } from "./viewer.js";

const UI = "studio";
const VERSION = "1";
const RETRY_SECONDS = [1, 2, 4, 8, 15, 30];

const state = {
  me: null,
  task: null,
  key: null,
  started: 0,
  next: null, // the prefetched lease: a promise of a task or null
  done: 0,
  busy: false,
  pointer: null,
  saveTimer: null,
  retryNow: null,
};

const viewer = new Viewer($("view"), { onChange: masked, onHint: (text) => toast(text) });
// Read-only inspection for the browser tests (the mask, the view): nothing is sent from here.
$("view").viewer = viewer;

function show(section) {
  for (const id of ["auth", "consent", "studio", "empty", "paused"]) $(id).hidden = id !== section;
  document.body.dataset.section = section;
}

function newKey() {
  return crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(36).slice(2)}`;
}

let toastTimer = null;
function toast(text, ms = 2600) {
  const node = $("toast");
  node.textContent = text;
  node.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    node.hidden = true;
  }, ms);
}

function status(text) {
  $("status").textContent = text;
}

// --- accounts and consent -------------------------------------------------------------------

async function start() {
  try {
    state.me = await api("GET", "/api/auth/me");
  } catch (error) {
    if (error.status !== 401) throw error;
    state.me = null;
    $("who").hidden = true;
    showAuthTab("login");
    show("auth");
    return;
  }
  $("display-name").textContent = state.me.display_name;
  $("who").hidden = false;
  if (state.me.role === "volunteer" && !state.me.consent_current) {
    await showConsent();
    return;
  }
  await beginLabelling();
}

function showAuthTab(tab) {
  for (const name of ["login", "signup"]) {
    $(`tab-${name}`).setAttribute("aria-selected", String(name === tab));
    $(`${name}-form`).hidden = name !== tab;
  }
}
$("tab-login").addEventListener("click", () => showAuthTab("login"));
$("tab-signup").addEventListener("click", () => showAuthTab("signup"));

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  const name = $("login-email").value.trim();
  const body = { password: $("login-password").value };
  if (name.includes("@")) body.email = name;
  else body.display_name = name;
  try {
    await api("POST", "/api/auth/login", body);
    $("login-password").value = "";
    await start();
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
    await api("POST", "/api/auth/signup", body);
    $("signup-password").value = "";
    await start();
  } catch (error) {
    $("signup-error").textContent = error.message;
  }
});

async function logout() {
  await api("POST", "/api/auth/logout");
  state.task = null;
  state.next = null;
  state.done = 0;
  $("session-count").hidden = true;
  await start();
}
$("logout").addEventListener("click", logout);
$("consent-decline").addEventListener("click", logout);

async function showConsent() {
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
    state.me = await api("POST", "/api/auth/consent", { version: $("consent-accept").dataset.version });
    await beginLabelling();
  } catch (error) {
    $("consent-error").textContent = error.message;
  }
});

// --- tasks ----------------------------------------------------------------------------------

async function beginLabelling() {
  await pruneDrafts();
  await flushPending();
  await loadTask(await lease());
}

async function lease(after) {
  try {
    return await api("POST", after ? `/api/tasks/next?after=${after}` : "/api/tasks/next");
  } catch (error) {
    if (error.code === "rater_suspended") {
      paused(error.message);
      return null;
    }
    if (error.status === 403) {
      status(error.message);
      return null;
    }
    throw error;
  }
}

function preload(task) {
  if (!task) return task;
  const urls = [...Object.values(task.slice.images), ...task.neighbours.map((n) => n.images.flair)];
  for (const url of urls) new Image().src = url;
  return task;
}

function prefetch() {
  const current = state.task;
  state.next = lease(current.id)
    .then(preload)
    .catch(() => null);
}

// A suspended volunteer sees why and what to do, not "all caught up".
function paused(message) {
  state.paused = true;
  state.task = null;
  $("paused-reason").textContent = message;
  show("paused");
}

async function loadTask(task) {
  clearTimeout(state.saveTimer);
  if (!task) {
    state.task = null;
    if (!state.paused) show("empty");
    return;
  }
  state.task = task;
  $("loading").hidden = false;
  show("studio");
  await viewer.setSlice(task.slice, task.neighbours);
  $("loading").hidden = true;
  const draft = await loadDraft(task.id);
  state.key = draft && draft.key ? draft.key : newKey();
  if (draft && draft.counts && draft.width === task.slice.width && draft.height === task.slice.height) {
    viewer.setMask(decodeRle(draft.counts, task.slice.width * task.slice.height));
    toast("Your unfinished mask on this slice is back.");
  }
  state.started = performance.now();
  updateContrasts(Object.keys(task.slice.images));
  thumbnails(task);
  offsetShown();
  sliceBadge();
  prefetch();
}

function sliceBadge() {
  $("slice-badge").textContent = `Slice ${state.done + 1} of this session`;
  $("session-count").textContent = `${state.done} done`;
  $("session-count").hidden = false;
}

async function advance(message) {
  const next = state.next ? await state.next : null;
  state.next = null;
  await loadTask(next || (await lease()));
  if (message && state.task) {
    toast(message);
    const stage = $("stage");
    stage.classList.remove("flash");
    void stage.offsetWidth; // restart the animation
    stage.classList.add("flash");
  }
}

// --- drafts and submission ------------------------------------------------------------------

function masked({ edited, pixels, canUndo, canRedo }) {
  $("undo").disabled = !canUndo;
  $("redo").disabled = !canRedo;
  $("clear").disabled = pixels === 0;
  if (!edited || !state.task) return;
  clearTimeout(state.saveTimer);
  const { task, key } = state;
  state.saveTimer = setTimeout(() => keepDraft(task, key), 200);
}

function keepDraft(task, key) {
  return saveDraft({
    lease: task.id,
    counts: encodeRle(viewer.mask),
    width: task.slice.width,
    height: task.slice.height,
    key,
    pending: false,
  });
}

function offline(text, seconds) {
  $("net").hidden = false;
  let left = seconds;
  const tick = () => {
    $("net-text").textContent = `${text} Your label is kept on this device. Retrying in ${left} s.`;
  };
  tick();
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      left -= 1;
      if (left <= 0) finish();
      else tick();
    }, 1000);
    const finish = () => {
      clearInterval(timer);
      window.removeEventListener("online", finish);
      state.retryNow = null;
      resolve();
    };
    state.retryNow = finish;
    window.addEventListener("online", finish);
  });
}

// POST an answer until the server acknowledges it, always with the same Idempotency-Key: a
// retry after a lost answer is recognised and not stored twice. A 4xx other than 408 and 429
// is final (the lease went to someone else, the slice was skipped); the draft is dropped then.
async function send(record) {
  for (let attempt = 0; ; attempt += 1) {
    try {
      const stored = await api("POST", `/api/tasks/${record.lease}/annotations`, record.body, {
        "Idempotency-Key": record.key,
      });
      $("net").hidden = true;
      await dropDraft(record.lease);
      return { stored };
    } catch (error) {
      const final = error.status >= 400 && error.status < 500 && ![408, 429].includes(error.status);
      if (final) {
        $("net").hidden = true;
        await dropDraft(record.lease);
        return { error };
      }
      const why = error.status ? `The server answered ${error.status}.` : "You seem to be offline.";
      await offline(why, RETRY_SECONDS[Math.min(attempt, RETRY_SECONDS.length - 1)]);
    }
  }
}
$("net-retry").addEventListener("click", () => state.retryNow && state.retryNow());

// Answers submitted before a reload or a crash and never acknowledged go out first.
async function flushPending() {
  for (const record of await pendingDrafts()) {
    const result = await send(record);
    if (result.stored) state.done += 1;
  }
}

async function submit(empty) {
  if (state.busy || !state.task) return;
  const { task, key } = state;
  const painted = count(viewer.mask);
  if (empty && painted > 0 && !window.confirm(`You painted ${painted} pixels. Submit "no lesions" and drop them?`)) {
    return;
  }
  if (!empty && painted === 0) {
    toast('Nothing is painted. If this slice has no lesions, press "No lesions".');
    return;
  }
  const mask = empty ? new Uint8Array(viewer.mask.length) : viewer.mask;
  clearTimeout(state.saveTimer);
  const record = {
    lease: task.id,
    counts: encodeRle(mask),
    width: task.slice.width,
    height: task.slice.height,
    key,
    pending: true,
    body: {
      mask: { encoding: "rle", width: task.slice.width, height: task.slice.height, counts: encodeRle(mask) },
      duration_ms: Math.round(performance.now() - state.started),
      client_info: {
        ui: UI,
        version: VERSION,
        viewport: [Math.round(window.innerWidth), Math.round(window.innerHeight)],
        device_pixel_ratio: window.devicePixelRatio || 1,
        pointer: state.pointer || undefined,
        zoom: Math.round(viewer.scale * 1000) / 1000,
      },
    },
  };
  busy(true);
  status("Saving…");
  try {
    await saveDraft(record);
    const result = await send(record);
    if (result.error) {
      if (result.error.code === "rater_suspended") {
        paused(result.error.message);
        return;
      }
      // Said plainly, never dropped in silence: why this answer could not count.
      status(`Not saved: ${result.error.message}`);
      await advance(`Your answer on that slice was not saved: ${result.error.message}. Here is another slice.`);
      return;
    }
    state.done += 1;
    status(empty ? "Saved: no lesions. Thank you!" : "Saved. Thank you!");
    const feedback = result.stored.feedback;
    if (feedback) {
      await showFeedback(feedback);
    }
    await advance(`Saved ✓ Slice ${state.done} done. This is a new slice.`);
  } finally {
    busy(false);
  }
}

function busy(on) {
  state.busy = on;
  for (const id of ["submit", "no-lesions", "skip", "report"]) $(id).disabled = on;
}

function showFeedback(feedback) {
  const found = feedback.lesions_found;
  const total = feedback.lesions_reference;
  const lines = [
    `Overlap with the expert (Dice): ${feedback.dice.toFixed(2)}.`,
    total ? `Lesions found: ${found} of ${total}; missed: ${feedback.lesions_missed}.` : "The expert saw no lesion here.",
    `False alarms: ${feedback.false_alarms}.`,
  ];
  $("feedback-text").textContent = lines.join(" ");
  $("feedback-image").src = feedback.overlay_url;
  $("feedback").hidden = false;
  $("feedback-next").focus();
  return new Promise((resolve) => {
    $("feedback-next").addEventListener(
      "click",
      () => {
        $("feedback").hidden = true;
        resolve();
      },
      { once: true },
    );
  });
}

$("submit").addEventListener("click", () => submit(false));
$("no-lesions").addEventListener("click", () => submit(true));

async function release(path, body, message) {
  if (state.busy || !state.task) return;
  const { task } = state;
  busy(true);
  try {
    await api("POST", `/api/tasks/${task.id}/${path}`, body);
    clearTimeout(state.saveTimer);
    await dropDraft(task.id);
    await advance(message);
  } catch (error) {
    status(error.message);
  } finally {
    busy(false);
  }
}

$("skip").addEventListener("click", () => release("skip", undefined, "Skipped. Here is another slice."));
$("report").addEventListener("click", () => {
  $("report-note").value = "";
  $("report-dialog").showModal();
});
$("report-cancel").addEventListener("click", () => $("report-dialog").close());
$("report-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const reason = new FormData($("report-form")).get("reason");
  $("report-dialog").close();
  release("report", { reason, note: $("report-note").value }, "Thanks: an expert will look at that slice.");
});
$("again").addEventListener("click", () => beginLabelling());

// --- tools and view -------------------------------------------------------------------------

function setTool(tool) {
  viewer.tool = tool;
  for (const button of document.querySelectorAll(".tool")) {
    button.setAttribute("aria-pressed", String(button.dataset.tool === tool));
  }
  viewer.render();
}
for (const button of document.querySelectorAll(".tool")) {
  button.addEventListener("click", () => setTool(button.dataset.tool));
}

function setSize(size) {
  const value = Math.min(15, Math.max(1, size));
  $("brush-size").value = String(value);
  $("brush-size").setAttribute("aria-valuetext", `${value} pixels`);
  viewer.size = value;
  viewer.render();
}
$("brush-size").addEventListener("input", () => setSize(Number($("brush-size").value)));

function updateContrasts(available) {
  for (const button of document.querySelectorAll(".contrast")) {
    button.hidden = !available.includes(button.dataset.contrast);
    button.setAttribute("aria-pressed", String(button.dataset.contrast === viewer.contrast));
  }
}

async function setContrast(name) {
  if (await viewer.setContrast(name)) updateContrasts(viewer.contrasts);
}
for (const button of document.querySelectorAll(".contrast")) {
  button.addEventListener("click", () => setContrast(button.dataset.contrast));
}

$("undo").addEventListener("click", () => viewer.undo());
$("redo").addEventListener("click", () => viewer.redo());
$("clear").addEventListener("click", () => viewer.clear());
$("fit").addEventListener("click", () => viewer.fit());
$("opacity").addEventListener("input", () => {
  viewer.opacity = Number($("opacity").value) / 100;
  viewer.render();
});
function setOutlined(on) {
  $("outlined").checked = on;
  viewer.outlined = on;
  viewer.drawMask();
}
$("outlined").addEventListener("change", () => setOutlined($("outlined").checked));

// Brightness and contrast sliders drive level and window (and follow a right-drag).
function windowFromSliders() {
  viewer.setWindow(255 - Number($("brightness").value), 514 - Number($("contrast-level").value));
}
function slidersFromWindow() {
  $("brightness").value = String(Math.round(255 - viewer.level));
  $("contrast-level").value = String(Math.round(514 - viewer.window));
}
$("brightness").addEventListener("input", windowFromSliders);
$("contrast-level").addEventListener("input", windowFromSliders);
$("window-reset").addEventListener("click", () => {
  viewer.resetWindow();
  slidersFromWindow();
});
$("view").addEventListener("pointerup", slidersFromWindow);
$("view").addEventListener("pointerdown", (event) => {
  state.pointer = event.pointerType || state.pointer;
});

function offsetShown() {
  const offset = viewer.offset;
  const badge = $("offset-badge");
  badge.textContent =
    offset === 0
      ? "Labelling this slice"
      : `Context: ${Math.abs(offset)} slice${Math.abs(offset) > 1 ? "s" : ""} ${offset > 0 ? "above" : "below"} (read-only)`;
  badge.classList.toggle("context", offset !== 0);
  $("stage").classList.toggle("context", offset !== 0);
  $("slice-up").disabled = offset === Math.max(...viewer.offsets);
  $("slice-down").disabled = offset === Math.min(...viewer.offsets);
  $("slice-home").disabled = offset === 0;
  for (const thumb of document.querySelectorAll(".thumb")) {
    thumb.setAttribute("aria-pressed", String(Number(thumb.dataset.offset) === offset));
  }
}

async function goTo(offset) {
  if (await viewer.showOffset(offset)) offsetShown();
}
async function step(direction) {
  if (await viewer.step(direction)) offsetShown();
}
$("slice-up").addEventListener("click", () => step(1));
$("slice-down").addEventListener("click", () => step(-1));
$("slice-home").addEventListener("click", () => goTo(0));

function thumbnails(task) {
  const all = [{ offset: 0, images: task.slice.images }, ...task.neighbours].sort((a, b) => b.offset - a.offset);
  $("thumbs").replaceChildren(
    ...all.map((n) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "thumb";
      button.dataset.offset = String(n.offset);
      const label = n.offset === 0 ? "this slice" : `${n.offset > 0 ? "+" : ""}${n.offset}`;
      button.setAttribute("aria-label", n.offset === 0 ? "The slice being labelled" : `Context slice ${label}`);
      const img = document.createElement("img");
      img.src = n.images.flair;
      img.alt = "";
      const caption = document.createElement("span");
      caption.textContent = label;
      button.append(img, caption);
      button.addEventListener("click", () => goTo(n.offset));
      return button;
    }),
  );
}

// --- help and keys --------------------------------------------------------------------------

$("help-open").addEventListener("click", () => $("help").showModal());
$("help-close").addEventListener("click", () => $("help").close());

const KEYS = {
  b: () => setTool("brush"),
  e: () => setTool("eraser"),
  f: () => setTool("fill"),
  h: () => setTool("pan"),
  "[": () => setSize(viewer.size - 1),
  "]": () => setSize(viewer.size + 1),
  1: () => setContrast("flair"),
  2: () => setContrast("t1"),
  3: () => setContrast("t2"),
  ArrowUp: () => step(1),
  ArrowDown: () => step(-1),
  Home: () => goTo(0),
  "+": () => viewer.zoomCentre(1.25),
  "=": () => viewer.zoomCentre(1.25),
  "-": () => viewer.zoomCentre(0.8),
  0: () => viewer.fit(),
  o: () => setOutlined(!viewer.outlined),
  r: () => $("window-reset").click(),
  n: () => submit(true),
  s: () => release("skip", undefined, "Skipped. Here is another slice."),
  Delete: () => viewer.clear(),
  Backspace: () => viewer.clear(),
  "?": () => $("help").showModal(),
};

document.addEventListener("keydown", (event) => {
  const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(event.target.tagName) && event.target.type !== "range";
  if (typing || document.querySelector("dialog[open]")) return;
  if (event.key === " " && !$("studio").hidden) {
    viewer.spaceHeld = true;
    event.preventDefault();
    return;
  }
  if ($("studio").hidden || !$("feedback").hidden) return;
  const ctrl = event.ctrlKey || event.metaKey;
  if (ctrl && event.key.toLowerCase() === "z") {
    event.preventDefault();
    if (event.shiftKey) viewer.redo();
    else viewer.undo();
    return;
  }
  if (ctrl && event.key.toLowerCase() === "y") {
    event.preventDefault();
    viewer.redo();
    return;
  }
  if (ctrl && event.key === "Enter") {
    event.preventDefault();
    submit(false);
    return;
  }
  if (ctrl || event.altKey) return;
  const action = KEYS[event.key] || KEYS[event.key.toLowerCase()];
  if (action) {
    event.preventDefault();
    action();
  }
});
document.addEventListener("keyup", (event) => {
  if (event.key === " ") {
    viewer.spaceHeld = false;
    viewer.render();
  }
});

// The mask in progress is written at once when the page is hidden or closed.
window.addEventListener("pagehide", () => {
  if (state.task && !state.busy) keepDraft(state.task, state.key);
});

start().catch((error) => status(error.message));
