// A project's qualification test on the tutorial page (/tutorials?project=NAME#test): where
// the volunteer stands (GET /api/tutorials/qualification), what passes, the items one by one
// in the painting view with no feedback until the end, then the verdict with its reasons,
// notes, the lessons to take again, each item's feedback and the cool-down before the next
// attempt. Refusals are said in words (429 with when to come back, the test unavailable, a
// paused rater).
import { $, api, button, element } from "./api.js";
import { leaveItem, paint } from "./itemview.js";
import { toast } from "./ui.js";

let ctx = null; // { project, show, titleOf, isCurrent(token), next() }
let ticking = null;

export function setUpTest(context) {
  ctx = context;
}

// --- where the volunteer stands -------------------------------------------------------------

const quoted = () => `“${ctx.project}”`;
const projectQuery = () => `project=${encodeURIComponent(ctx.project)}`;

// The API's times: aware UTC, though SQLite's come back without their "Z".
function parseTime(text) {
  return new Date(/(Z|[+-]\d\d:?\d\d)$/i.test(text) ? text : `${text}Z`);
}

function standing() {
  return api("GET", `/api/tutorials/qualification?${projectQuery()}`);
}

// Where the volunteer stands, or the error that says why it is not known.
export function standingOrError() {
  return standing().catch((error) => ({ error }));
}

// The lessons the last failed attempt points to (none when it passed or there is none).
export function retakeOf(now) {
  const last = now.last_attempt;
  return !now.error && !now.qualified && last && last.result && !last.result.passed ? last.result.lessons : [];
}

function startLabelling(text = "Start labelling") {
  return element("a", { class: "button primary", href: "/", "data-testid": "start-labelling", text });
}

// The card above the lesson list: the test's state (``now``, from standingOrError) in a
// line, and the way to it.
export function testCard(now, lessons) {
  const go = $("test-card-go");
  let text;
  go.hidden = false;
  go.href = "#test";
  go.textContent = "Go to the test";
  go.className = "button primary";
  const first = $("test-card-first");
  first.hidden = true;
  if (now.error) {
    text = now.error.status === 404 ? `There is no project called ${quoted()}.` : `The test's state could not be loaded: ${now.error.message}`;
    go.hidden = true;
  } else if (now.qualified || !now.required) {
    text = now.qualified ? `You passed the test for ${quoted()}: you can label its slices.` : `${quoted()} asks for no test: you can label straight away.`;
    go.href = "/";
    go.textContent = "Start labelling";
  } else if (closedBecause(now)) {
    text = closedBecause(now);
    go.hidden = true;
  } else if (now.open_attempt) {
    text = `Your test for ${quoted()} is under way: ${now.open_attempt.answered} of ${now.open_attempt.total} slices answered.`;
    go.textContent = "Resume the test";
  } else if (now.last_attempt && now.last_attempt.passed === false) {
    text = `Your last test for ${quoted()} did not pass. The lessons marked below help; then try again.`;
    go.textContent = "See the result";
  } else {
    const minutes = lessons.reduce((sum, l) => sum + l.minutes, 0);
    text =
      `${quoted()} asks new volunteers to pass a short test before labelling: ${now.items} slices, ` +
      `no time limit. Read the lessons first (about ${minutes} minutes in all); they show what the test asks.`;
    const unread = lessons.find((l) => l.completed_version === null);
    if (unread) {
      first.href = `#lesson/${unread.id}`;
      first.textContent = `Start with lesson ${unread.order}: ${unread.title}`;
      first.hidden = false;
      go.className = "button";
      go.textContent = "Skip to the test";
    }
  }
  $("test-card-text").textContent = text;
  $("test-card").hidden = false;
}

// --- the test's page ------------------------------------------------------------------------

function body(...nodes) {
  $("qualification-body").replaceChildren(...nodes);
}

function stopTicking() {
  clearInterval(ticking);
  ticking = null;
}

function passMarks(now) {
  const t = now.thresholds;
  const percent = Math.round(t.clean * 100);
  return element(
    "ul",
    { class: "pass-marks", "data-testid": "pass-marks" },
    element("li", { text: `Find the lesions without marking spots that are none: a lesion score (F1) of at least ${t.lesion_f1.toFixed(2)} out of 1.` }),
    element("li", { text: `Outline them closely: an overlap with the experts' outlines (Dice) of at least ${t.dice.toFixed(2)} out of 1.` }),
    element("li", { text: `Leave the slices without lesions unpainted: at least ${percent}% of them.` }),
  );
}

function intro(now) {
  const open = now.open_attempt;
  const action = open
    ? button(`Resume the test (${open.answered} of ${open.total} answered)`, () => begin(), { class: "primary", id: "test-start", "data-testid": "test-start" })
    : button("Start the test", () => begin(), { class: "primary", id: "test-start", "data-testid": "test-start" });
  return [
    element(
      "p",
      { class: "lead" },
      `Before you label in ${quoted()}, show on ${now.items} slices that you can find lesions. About half of ` +
        "them show lesions; the others have none, or only a look-alike. Paint every lesion, or press No " +
        "lesions. You see how you did at the end, not after each slice.",
    ),
    element("h2", { text: "To pass" }),
    passMarks(now),
    element(
      "p",
      { class: "note" },
      `Up to ${now.attempts_per_day} attempts a day. After one that does not pass, wait a little and read ` +
        "the lessons it points to. The field guide (Guide, at the top) stays open beside the slices if you like.",
    ),
    element("div", { class: "row" }, action),
    element("p", { id: "test-error", class: "error", role: "alert", "data-testid": "test-error" }),
  ];
}

// Why no test can start, in words (null: it can).
function closedBecause(now) {
  if (now.suspended && !now.may_requalify) {
    return "Your labelling in this project is paused, so its test is closed for now: an expert must allow a new attempt first. The lessons stay open meanwhile.";
  }
  if (!now.ready) {
    return "The test is not available yet: this site has no tutorial slices to draw it from. An administrator adds them; please come back later. The lessons are open meanwhile.";
  }
  return null;
}

export async function openTest(mine) {
  leaveItem();
  stopTicking();
  let now;
  try {
    now = await standing();
  } catch (error) {
    if (!ctx.isCurrent(mine)) return;
    body(element("p", { class: "error", text: error.status === 404 ? `There is no project called ${quoted()}.` : error.message }));
    ctx.show("qualification");
    return;
  }
  if (!ctx.isCurrent(mine)) return;
  $("qualification-title").textContent = `The test for ${quoted()}`;
  const closed = closedBecause(now);
  const last = now.last_attempt;
  if (now.qualified || !now.required) {
    const when = now.qualified_at ? ` on ${parseTime(now.qualified_at).toLocaleDateString()}` : "";
    body(
      element("p", { class: "lead", text: now.qualified ? `You passed this test${when}. Thank you!` : "This project asks for no test." }),
      element("div", { class: "row" }, startLabelling()),
    );
  } else if (closed) {
    body(element("p", { class: "notice", "data-testid": "test-closed", text: closed }));
  } else if (!now.open_attempt && last && last.passed === false && last.result) {
    body(...verdict(last, now));
  } else {
    body(...intro(now));
  }
  ctx.show("qualification");
}

function refusal(error) {
  if (error.status === 429) {
    const wait = error.retryAfter;
    const at = wait ? new Date(Date.now() + wait * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : null;
    return at ? `Not yet: you can start the test again at ${at}. ${error.message}.` : `Not yet: ${error.message}.`;
  }
  if (error.code === "qualification_unavailable") {
    return "The test is not available yet: this site has no tutorial slices to draw it from. Please come back later.";
  }
  if (error.code === "rater_suspended") {
    return "Your labelling in this project is paused, so its test is closed: an expert must allow a new attempt first.";
  }
  if (error.code === "consent_required") {
    return "Test answers are kept: read and accept the consent on the labelling page first.";
  }
  return error.message;
}

async function begin() {
  const mine = ctx.next();
  const go = $("test-start");
  if (go) go.disabled = true;
  let attempt;
  try {
    attempt = await api("POST", `/api/tutorials/qualification?${projectQuery()}`);
  } catch (error) {
    if (error.code === "already_qualified") return openTest(mine);
    if (go) go.disabled = false;
    const shown = $("test-error");
    if (shown) shown.textContent = refusal(error);
    else toast(refusal(error), 6000);
    return;
  }
  await answerItems(attempt, mine);
}

async function answerItems(attempt, mine) {
  for (;;) {
    let item;
    try {
      item = await api("POST", `/api/tutorials/qualification/${attempt.id}/next`);
    } catch (error) {
      if (!ctx.isCurrent(mine)) return;
      if (error.status === 409) return openTest(mine); // finished meanwhile: its verdict
      body(element("p", { class: "error", role: "alert", text: refusal(error) }));
      ctx.show("qualification");
      return;
    }
    if (!ctx.isCurrent(mine)) return;
    if (!item) return openTest(mine); // every item answered
    ctx.show("studio");
    const answer = await paint(item, {
      title: "Test: paint every lesion on the marked slice, or press No lesions",
      badge: `Item ${item.position} of ${item.total}`,
      leave: { text: "Pause test", title: "Pause the test: your answers so far are kept; resume later" },
    });
    if (!answer || !ctx.isCurrent(mine)) return;
    if (answer.conflict) continue;
    const progress = answer.attempt;
    if (progress.finished_at) {
      let now = null;
      try {
        now = await standing(); // for the cool-down's end
      } catch {
        // The verdict shows without it.
      }
      if (!ctx.isCurrent(mine)) return;
      $("qualification-title").textContent = `The test for ${quoted()}`;
      body(...verdict(progress, now));
      ctx.show("qualification");
      return;
    }
    toast(`Saved: ${progress.answered} of ${progress.total} answered.`, 1800);
  }
}

// --- the verdict ----------------------------------------------------------------------------

function score(label, value, needed) {
  return element("li", {}, element("span", { class: "score-label", text: label }), " ", element("strong", { text: value }), needed ? ` (needed: ${needed})` : "");
}

function verdict(attempt, now) {
  const r = attempt.result;
  const t = now ? now.thresholds : null;
  const nodes = [];
  const head = element(
    "div",
    { class: `verdict ${r.passed ? "passed" : "failed"}`, "data-testid": "verdict" },
    element("h2", { id: "verdict-title", tabindex: "-1", text: r.passed ? "You passed ✓" : "Not passed this time" }),
    element("p", {
      class: "lead",
      text: r.passed
        ? `Well done: you can label the slices of ${quoted()} now.`
        : "Nothing is lost: the lessons below show what to look for. Then take the test again.",
    }),
  );
  const scores = element(
    "ul",
    { class: "scores", "data-testid": "scores" },
    score("Lesions found:", `${r.lesions_found} of ${r.lesions_reference}`),
    score("Lesion score (F1):", r.lesion_f1.toFixed(2), t && t.lesion_f1.toFixed(2)),
    score("Overlap with the experts (Dice):", r.dice.toFixed(2), t && t.dice.toFixed(2)),
    score("Slices without lesions left unpainted:", `${r.clean} of ${r.clean_total}`, t && `${Math.ceil(t.clean * r.clean_total - 1e-9)} of ${r.clean_total}`),
  );
  head.append(scores);
  nodes.push(head);
  const list = (title, lines, testid) =>
    element("section", { class: "verdict-part", "data-testid": testid }, element("h3", { text: title }), element("ul", {}, ...lines.map((line) => element("li", { text: line }))));
  if (r.reasons.length) nodes.push(list("What went wrong", r.reasons, "reasons"));
  if (r.notes.length) nodes.push(list(r.passed ? "Worth minding" : "Tips for next time", r.notes, "notes"));
  if (r.lessons.length) {
    nodes.push(
      element(
        "section",
        { class: "verdict-part", "data-testid": "retake" },
        element("h3", { text: "Lessons to take again" }),
        element("ul", {}, ...r.lessons.map((id) => element("li", {}, element("a", { href: `#lesson/${id}`, text: ctx.titleOf(id) })))),
      ),
    );
  }
  if (r.passed) {
    nodes.push(element("div", { class: "row" }, startLabelling()));
  } else {
    nodes.push(again(now));
  }
  nodes.push(itemResults(attempt));
  return nodes;
}

// The cool-down before the next attempt, counting down, then the button.
function again(now) {
  const text = element("p", { id: "cooldown", class: "cooldown", "data-testid": "cooldown" });
  const go = button("Try again", () => begin(), { class: "primary", id: "test-start", "data-testid": "test-again" });
  const error = element("p", { id: "test-error", class: "error", role: "alert", "data-testid": "test-error" });
  const until = now && now.next_attempt_at ? parseTime(now.next_attempt_at).getTime() : 0;
  const tick = () => {
    const left = Math.ceil((until - Date.now()) / 1000);
    if (left <= 0) {
      stopTicking();
      text.textContent = "You can take the test again now.";
      go.disabled = false;
      return;
    }
    const minutes = Math.floor(left / 60);
    const seconds = String(left % 60).padStart(2, "0");
    const at = new Date(until).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    text.textContent = `You can try again in ${minutes}:${seconds} (at ${at}). Read the lessons above meanwhile.`;
    go.disabled = true;
  };
  stopTicking();
  tick();
  if (until > Date.now()) ticking = setInterval(tick, 1000);
  return element("section", { class: "verdict-part again" }, text, element("div", { class: "row" }, go), error);
}

// Each item's overlay and counts (GET /api/tutorials/items/{id}/feedback), now the attempt is
// finished: the attempt's items come from GET /api/tutorials/qualification/{id}/items.
function itemResults(attempt) {
  const part = element(
    "section",
    { class: "verdict-part", "data-testid": "item-results" },
    element("h3", { text: "Slice by slice" }),
  );
  api("GET", `/api/tutorials/qualification/${attempt.id}/items`).then(
    (held) => fillResults(part, held),
    (error) => part.append(element("p", { class: "note", text: error.message })),
  );
  return part;
}

function fillResults(part, held) {
  part.append(
    element(
      "ul",
      { class: "legend" },
      element("li", {}, element("span", { class: "swatch hit" }), "Hit (you and the expert)"),
      element("li", {}, element("span", { class: "swatch false" }), "False alarm (you only)"),
    ),
    // The test's slices must stay unknown to the next volunteers: what was missed is said in
    // words, and the lessons' practice slices show where lesions sit.
    element("p", { class: "note", text: "Lesions you missed are counted below, not drawn: the test's answers stay secret. The practice slices in the lessons show them." }),
  );
  const grid = element("ol", { class: "item-results" });
  part.append(grid);
  for (const { position, id } of held) {
    const caption = element("figcaption", { text: `Slice ${position}: loading…` });
    const figure = element("figure", {}, caption);
    grid.append(element("li", { "data-testid": "item-result" }, figure));
    api("GET", `/api/tutorials/items/${id}/feedback`).then(
      (f) => {
        const found = f.lesions_reference
          ? `found ${f.lesions_found} of ${f.lesions_reference} lesion${f.lesions_reference > 1 ? "s" : ""}`
          : f.mimic
            ? `no lesion, a look-alike (${f.mimic.replaceAll("_", " ")})`
            : "no lesion";
        const alarms = f.false_alarms ? `, ${f.false_alarms} false alarm${f.false_alarms > 1 ? "s" : ""}` : ", no false alarm";
        const overlap = f.lesions_reference ? `, overlap ${f.dice.toFixed(2)}` : "";
        caption.textContent = `Slice ${position}: ${found}${alarms}${overlap}.`;
        figure.prepend(element("img", { src: f.overlay_url, alt: `Slice ${position}: your answer over the expert's` }));
      },
      (error) => {
        caption.textContent = `Slice ${position}: ${error.message}`;
      },
    );
  }
}
