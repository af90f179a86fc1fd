// The labelling loop: lease a slice, show it, keep the mask in progress in the browser
// (drafts.js), submit, skip or report, and show the next slice at once (it is leased and its
// images loaded while the volunteer paints the current one). The counters in the header come
// from the server (GET /api/tasks/progress), so a reload never resets them; an acknowledged
// answer adds one, and a skip or a report asks the server again (they never count as answers).
import { $, api, element } from "./api.js";
import { flushPending, send } from "./answers.js";
import { dropDraft, loadDraft, pruneDrafts, saveDraft } from "./drafts.js";
import { count, decodeRle, encodeRle } from "./mask.js";
import { checkRewards, pointsLink, setUpNotices } from "./notices.js";
import { setUpTools, showTask } from "./tools.js";
import { feedbackText, show, status, toast } from "./ui.js";
import { Viewer, cutSprite } from "./viewer.js";

const UI = "studio";
const VERSION = "2";

const state = {
  task: null,
  key: null,
  started: 0,
  next: null, // the prefetched lease: a promise of a task or null
  busy: false,
  paused: false,
  pointer: null,
  saveTimer: null,
};
const progress = { answers: 0, answers_today: 0, skipped: 0, skipped_today: 0, reported: 0 };

const viewer = new Viewer($("view"), { onChange: masked, onHint: (text) => toast(text) });
// Read-only inspection for the browser tests (the mask, the view): nothing is sent from here.
$("view").viewer = viewer;
setUpNotices();

function newKey() {
  return crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(36).slice(2)}`;
}

// --- counters -------------------------------------------------------------------------------

async function refreshProgress() {
  const offset = -new Date().getTimezoneOffset(); // minutes ahead of UTC: where today starts
  try {
    Object.assign(progress, await api("GET", `/api/tasks/progress?utc_offset=${offset}`));
  } catch {
    // The counters keep their last values; the next answer or reload asks again.
  }
  showProgress();
}

function showProgress() {
  const counter = $("session-count");
  counter.replaceChildren(
    `${progress.answers} done`,
    element("span", { class: "today", text: ` · ${progress.answers_today} today` }),
    pointsLink(),
  );
  counter.dataset.answers = String(progress.answers);
  counter.dataset.today = String(progress.answers_today);
  counter.title = `${progress.answers} answers in all, ${progress.answers_today} today; ${progress.skipped} slices skipped or reported`;
  counter.hidden = false;
  const skipped = progress.skipped_today ? ` · ${progress.skipped_today} skipped` : "";
  $("slice-badge").textContent = `Slice ${progress.answers_today + 1} today${skipped}`;
}

function answered() {
  progress.answers += 1;
  progress.answers_today += 1;
  showProgress();
}

// --- leases ---------------------------------------------------------------------------------

export async function beginLabelling() {
  await pruneDrafts();
  // Answers from before a reload go out first; the counters are read after them, so an
  // answer stored but never acknowledged is counted once, by the server.
  await flushPending();
  await refreshProgress();
  await loadTask(await lease());
  checkRewards(showProgress); // not awaited: the slice never waits for the rewards
}

async function lease(after) {
  try {
    return await api("POST", after ? `/api/tasks/next?after=${after}` : "/api/tasks/next");
  } catch (error) {
    if (error.code === "rater_suspended") {
      paused(error.message);
      return null;
    }
    if (error.code === "qualification_required") {
      // A prefetch leaves the slice on screen to be answered; the next lease says it.
      if (!after) qualify(error);
      return null;
    }
    if (error.status === 403) {
      status(error.message);
      return null;
    }
    throw error;
  }
}

// Each lease has its own image URLs and bytes (backend/imaging/variant.py): an image seen
// under one lease must not be recognisable under another, or a volunteer could tell gold and
// repeated slices apart. So nothing is cached across leases here, not even a neighbour that
// the next slice shares: the next lease's images are fetched ahead (below), not reused.
function preload(task) {
  if (!task) return task;
  const { slice } = task;
  if (slice.sprite) {
    // One sprite holds the slice's contrasts and its neighbours' FLAIR
    // (backend/imaging/sprite.py): fetched and cut into frames while the volunteer paints.
    slice.sprite.cut = cutSprite(slice.sprite, slice.width, slice.height);
    slice.sprite.cut.catch(() => {}); // the viewer tries again when it shows the task
    return task;
  }
  const urls = [...Object.values(slice.images), ...task.neighbours.map((n) => n.images.flair)];
  for (const url of urls) new Image().src = url;
  return task;
}

function prefetch() {
  state.next = lease(state.task.id)
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

// A new volunteer of a project that asks for its test first: the way there, not a status line.
function qualify(error) {
  state.paused = true;
  state.task = null;
  $("qualify-reason").textContent = error.message;
  $("qualify-go").href = error.href || "/tutorials";
  $("session-count").hidden = true; // "0 done" says nothing yet
  show("qualify");
  $("qualify-go").focus({ preventScroll: true });
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
  showTask(task);
  showProgress();
  prefetch();
}

async function advance(message) {
  const next = state.next ? await state.next : null;
  state.next = null;
  await loadTask(next || (await lease()));
  if (message && state.task) {
    toast(message, 5000);
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
    answered();
    status(empty ? "Saved: no lesions. Thank you!" : "Saved. Thank you!");
    const { feedback, reward } = result.stored;
    if (feedback) await showFeedback(feedback, reward);
    await advance(`Saved ✓ ${progress.answers_today} done today.${rewardLine(reward)} This is a new slice.`);
    // The rewards are read (badges judged: a handful of queries) when they can have moved:
    // after points, after a first answer, and every fifth answer; not after every submit.
    if (reward?.status === "awarded" || progress.answers === 1 || progress.answers % 5 === 0) checkRewards(showProgress);
  } finally {
    busy(false);
  }
}

function busy(on) {
  state.busy = on;
  for (const id of ["submit", "no-lesions", "skip", "report"]) $(id).disabled = on;
}

// The points of an answer, in a few words: a check answer's at once, a crowd answer's later.
function rewardLine(reward) {
  if (!reward) return "";
  if (reward.status === "awarded") return ` +${reward.points} points ${reward.message}.`;
  if (reward.status === "pending") return " Points come once other volunteers have labelled this slice too (see Points).";
  return ` ${reward.message}`;
}

function showFeedback(feedback, reward) {
  $("feedback-text").textContent = feedbackText(feedback) + rewardLine(reward);
  // Inline in a fresh answer (no second request); a replayed answer carries the URL alone.
  $("feedback-image").src = feedback.overlay_png || feedback.overlay_url;
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

// Skip or report: the lease goes back, the next slice comes, and the counters are read again.
async function release(path, body, message) {
  if (state.busy || !state.task) return;
  const { task } = state;
  busy(true);
  try {
    await api("POST", `/api/tasks/${task.id}/${path}`, body);
    clearTimeout(state.saveTimer);
    await dropDraft(task.id);
    await refreshProgress();
    await advance(message);
  } catch (error) {
    status(error.message);
  } finally {
    busy(false);
  }
}

const skip = () => release("skip", undefined, "Skipped. Here is another slice.");

$("submit").addEventListener("click", () => submit(false));
$("no-lesions").addEventListener("click", () => submit(true));
$("skip").addEventListener("click", skip);
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
$("view").addEventListener("pointerdown", (event) => {
  state.pointer = event.pointerType || state.pointer;
});

setUpTools(viewer, { submit, skip });

// The mask in progress is written at once when the page is hidden or closed.
window.addEventListener("pagehide", () => {
  if (state.task && !state.busy) keepDraft(state.task, state.key);
});
