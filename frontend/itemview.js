// The tutorial page's painting view: a practice or test item on the studio's Viewer, with the
// studio's tools (tools.js drives the same markup, by the same ids, in tutorials.html), and
// the answer sent to POST /api/tutorials/items/{id}/answer in the encoding the studio's
// submissions use. Practice feedback shows over the slice as the studio's gold feedback does.
import { $, api } from "./api.js";
import { count, encodeRle } from "./mask.js";
import { setUpTools, showTask } from "./tools.js";
import { feedbackText, status, toast } from "./ui.js";
import { Viewer } from "./viewer.js";

const viewer = new Viewer($("view"), { onChange: masked, onHint: (text) => toast(text) });
// Read-only inspection for the browser tests (the mask, the view): nothing is sent from here.
$("view").viewer = viewer;

const state = { item: null, started: 0, busy: false, finish: null };

function masked({ pixels, canUndo, canRedo }) {
  $("undo").disabled = !canUndo;
  $("redo").disabled = !canRedo;
  $("clear").disabled = pixels === 0;
}

function busy(on) {
  state.busy = on;
  for (const id of ["submit", "no-lesions", "leave"]) $(id).disabled = on;
}

// Shows ``item`` (its section must be on screen: the view takes its size) under ``title``
// (what to do) and ``badge`` (where it stands); ``leave`` ({text, title}) names the way out.
// Resolves with the server's answer
// (ItemAnswerRead) once it has it, or with null when the volunteer leaves.
export async function paint(item, { title, badge, leave }) {
  if (state.finish) state.finish(null);
  state.item = item;
  $("task-title").textContent = title;
  $("slice-badge").textContent = badge;
  $("leave").textContent = leave.text;
  $("leave").title = leave.title;
  $("feedback").hidden = true;
  status("");
  const answered = new Promise((resolve) => {
    state.finish = resolve;
  });
  $("loading").hidden = false;
  try {
    await viewer.setSlice(item.slice, item.neighbours);
  } finally {
    $("loading").hidden = true;
  }
  showTask(item);
  state.started = performance.now();
  return answered;
}

function done(answer) {
  const finish = state.finish;
  state.finish = null;
  state.item = null;
  if (finish) finish(answer);
}

// Leaves the item unanswered (the page goes elsewhere).
export function leaveItem() {
  done(null);
}

async function submit(empty) {
  const { item } = state;
  if (state.busy || !item || !$("feedback").hidden) return;
  const painted = count(viewer.mask);
  if (empty && painted > 0 && !window.confirm(`You painted ${painted} pixels. Answer "no lesions" and drop them?`)) {
    return;
  }
  if (!empty && painted === 0) {
    toast('Nothing is painted. If this slice has no lesions, press "No lesions".');
    return;
  }
  const mask = empty ? new Uint8Array(viewer.mask.length) : viewer.mask;
  const { width, height } = item.slice;
  busy(true);
  status("Sending…");
  try {
    const answer = await api("POST", `/api/tutorials/items/${item.id}/answer`, {
      mask: { encoding: "rle", width, height, counts: encodeRle(mask) },
      duration_ms: Math.round(performance.now() - state.started),
    });
    status("");
    done(answer);
  } catch (error) {
    if (error.status === 409) {
      // Answered already (a reply lost on the way): the page asks where things stand.
      status("");
      done({ item_id: item.id, conflict: true });
      return;
    }
    status(`Not sent: ${error.message}`);
    toast(`Not sent: ${error.message}. Press Submit to try again.`, 5000);
  } finally {
    busy(false);
  }
}

// Practice feedback over the slice: the overlay in the gold feedback's colours, the scores in
// words and the lesson's explanation. Resolves with "again" or "back", the button pressed.
export function showFeedback(feedback) {
  let text = feedbackText(feedback);
  if (feedback.mimic) text += ` This slice shows a look-alike: ${feedback.mimic.replaceAll("_", " ")}.`;
  $("feedback-text").textContent = text;
  $("feedback-explanation").textContent = feedback.explanation || "";
  $("feedback-explanation").hidden = !feedback.explanation;
  $("feedback-image").src = feedback.overlay_png || feedback.overlay_url;
  $("feedback").hidden = false;
  // The painting tools and the answer buttons step aside while the feedback is read (on a
  // phone they hid its explanation and its buttons under the fold).
  $("studio").classList.add("reviewing");
  $("feedback").scrollTop = 0;
  $("feedback-back").focus({ preventScroll: true });
  return new Promise((resolve) => {
    const pick = (choice) => () => {
      $("feedback-again").removeEventListener("click", again);
      $("feedback-back").removeEventListener("click", back);
      $("feedback").hidden = true;
      $("studio").classList.remove("reviewing");
      resolve(choice);
    };
    const again = pick("again");
    const back = pick("back");
    $("feedback-again").addEventListener("click", again);
    $("feedback-back").addEventListener("click", back);
  });
}

// The Back button of the view: ``onLeave`` decides where to go (the lesson, the test's page).
export function setUpItemView(onLeave) {
  $("submit").addEventListener("click", () => submit(false));
  $("no-lesions").addEventListener("click", () => submit(true));
  $("leave").addEventListener("click", () => onLeave());
  // Tutorial items cannot be skipped: "S" does nothing here.
  setUpTools(viewer, { submit, skip: () => {} });
}
