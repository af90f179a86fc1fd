// Active-learning rounds for engineers and admins: the learning curve, each round's stage with
// its progress and ETA (polled while a worker is on it), what each round labelled and trained
// on, and start/close/resume. Closing a round below its labelled share asks first (the server
// refuses with 409 too_few_labelled until the call carries force).
// An ES module served as is (no build step); it talks to /api/rounds with the session cookie.

import { $, api, button, element, staffProjects } from "./api.js";

const state = { project: null, timer: null };
const WORKING = new Set(["fusing", "training", "scoring"]);

function say(text) {
  $("status").textContent = text;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  return `${Math.round(seconds / 60)} min`;
}

function stageCell(r) {
  if (r.error) return element("td", {}, element("span", { class: "error", text: `${r.status}: ${r.error}` }));
  return element("td", { text: r.status });
}

function when(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

function progressCell(r) {
  if (r.status === "labelling") {
    const bar = element("progress", { max: String(Math.max(r.selected, 1)), value: String(r.labelled), "aria-label": `Round ${r.number} labelled` });
    const short = r.labelled < r.labelled_needed ? `; ${r.labelled_needed} needed to close` : "";
    return element("td", {}, bar, element("div", { text: `${r.labelled} of ${r.selected} chosen labelled${short}` }));
  }
  if (!WORKING.has(r.status)) return element("td", { text: r.closed_at ? `closed ${when(r.closed_at)}` : "" });
  const bar = element("progress", { max: "100", value: String(r.progress), "aria-label": `Round ${r.number} ${r.status}` });
  const eta = r.eta_seconds === null ? "" : `, about ${duration(r.eta_seconds)} left`;
  return element("td", {}, bar, element("div", { text: `${Math.round(r.progress)} %${eta}: ${r.detail}` }));
}

const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;

// "N labelled slices (C from this round)": what the model trains on, and of it what the round chose.
function trainingText(r) {
  const from = r.training_chosen === null ? "" : ` (${r.training_chosen} from this round)`;
  return `${plural(r.training_slices, "labelled slice", "labelled slices")}${from}`;
}

// What the round labelled and what its model learns from: chosen N, labelled M, trained on K.
function labelsCell(r) {
  const counts = `chosen ${r.selected}, labelled ${r.labelled}`;
  let training = "";
  if (r.training_slices !== null) {
    if (r.model || r.status === "closed") training = `trained on ${trainingText(r)}`;
    else if (r.status === "labelling") training = `closing now trains on about ${trainingText(r)}`;
    else training = `trains on about ${trainingText(r)}`;
  }
  return element("td", { "data-testid": `labels-${r.number}` }, element("div", { text: counts }), element("div", { class: "hint", text: training }));
}

function modelCell(r) {
  if (!r.model) return element("td", { text: "–" });
  const dice = r.model.dice === null ? "no held-out case" : `Dice ${r.model.dice.toFixed(3)}, lesion F1 ${r.model.lesion_f1.toFixed(3)}`;
  const withdrawn = r.model.withdrawn_cases || [];
  const flag = withdrawn.length
    ? ` ⚠ learned from ${withdrawn.length} case${withdrawn.length === 1 ? "" : "s"} withdrawn since (${withdrawn.join(", ")}): retrain before sharing it`
    : "";
  return element("td", { text: `v${r.model.id} (${r.model.status}): ${dice}${flag}` });
}

// Ask before closing a round whose chosen slices are mostly unlabelled; true: close anyway.
function confirmEarlyClose(r) {
  const dialog = $("close-dialog");
  $("close-title").textContent = `Close round ${r.number}'s labelling early?`;
  const chose = `the ${plural(r.selected, "slice", "slices")} this round chose`;
  $("close-counts").textContent =
    (r.labelled === 0 ? `None of ${chose} is labelled yet` : `Only ${r.labelled} of ${chose} ${r.labelled === 1 ? "is" : "are"} labelled`) +
    `; closing without this question needs ${r.labelled_needed}.`;
  const earlier = r.training_slices - r.training_chosen;
  const fromRound = r.training_chosen === 0 ? "none of them" : `${r.training_chosen} of them`;
  $("close-training").textContent =
    r.training_slices === 0
      ? "Nothing in this project is labelled yet: training would fail."
      : `The model would train on about ${plural(r.training_slices, "labelled slice", "labelled slices")} in all, ` +
        `${fromRound} from this round; the other ${earlier} were labelled before it ` +
        `(earlier rounds, the queue's own order, expert gold). Its point on the learning curve would ` +
        `say little about this round's strategy.`;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "force"), { once: true });
  });
}

async function closeRound(r, control) {
  control.disabled = true;
  try {
    try {
      await api("POST", `/api/rounds/${r.id}/close`, {});
      say(`Round ${r.number}: labelling closed; the workers fuse, train and score next.`);
    } catch (error) {
      if (error.code !== "too_few_labelled") throw error;
      const now = await api("GET", `/api/rounds/${r.id}`);
      if (!(await confirmEarlyClose(now))) {
        say(`Round ${r.number} stays open for labelling.`);
        return;
      }
      await api("POST", `/api/rounds/${r.id}/close`, { force: true });
      say(`Round ${r.number}: labelling closed with ${now.labelled} of ${now.selected} chosen slices labelled.`);
    }
  } catch (error) {
    say(error.message);
  } finally {
    await load().catch((error) => say(error.message));
  }
}

function actionCell(r) {
  if (r.status === "labelling") {
    const control = button("Close labelling", () => closeRound(r, control), { "data-testid": `close-${r.number}` });
    return element("td", {}, control);
  }
  if (WORKING.has(r.status) && r.error) {
    return element("td", {}, button("Resume", async () => {
      try {
        await api("POST", `/api/rounds/${r.id}/resume`);
        say(`Round ${r.number}: resumed.`);
      } catch (error) {
        say(error.message);
      }
      await load();
    }, { "data-testid": `resume-${r.number}` }));
  }
  return element("td");
}

function drawCurve(points) {
  const svg = $("curve");
  const ns = "http://www.w3.org/2000/svg";
  const make = (tag, attributes) => {
    const node = document.createElementNS(ns, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    return node;
  };
  const [left, top, width, height] = [34, 10, 370, 110];
  const shown = points.filter((p) => p.dice !== null);
  const most = Math.max(1, ...shown.map((p) => p.labels_used));
  const x = (n) => left + (n / most) * width;
  const y = (d) => top + (1 - d) * height;
  const axis = [0, 0.5, 1].flatMap((d) => {
    const label = make("text", { x: 2, y: y(d) + 3 });
    label.textContent = d.toFixed(1);
    return [make("line", { x1: left, x2: left + width, y1: y(d), y2: y(d) }), label];
  });
  const caption = make("text", { x: left + width / 2, y: 145, "text-anchor": "middle" });
  if (shown.length) caption.textContent = "labelled slices trained on";
  else if (points.length) caption.textContent = "No held-out case: hold cases out (mscrowd holdout) for held-out Dice.";
  else caption.textContent = "No round has a trained model yet.";
  const ticks = shown.length
    ? [[0, "start"], [most, "end"]].map(([n, anchor]) => {
        const tick = make("text", { x: x(n), y: top + height + 12, "text-anchor": anchor });
        tick.textContent = String(n);
        return tick;
      })
    : [];
  const marks = shown.flatMap((p) => {
    const dot = make("circle", { cx: x(p.labels_used), cy: y(p.dice), r: 3.5, fill: "#1d4ed8" });
    const title = make("title", {});
    title.textContent = `Round ${p.round}: ${p.labels_used} slices, Dice ${p.dice.toFixed(3)}`;
    dot.append(title);
    // Each point says which round it is and its Dice (right-aligned near the right edge).
    const anchor = x(p.labels_used) > left + width - 60 ? "end" : "middle";
    const label = make("text", { x: x(p.labels_used), y: y(p.dice) - 7, "text-anchor": anchor });
    label.textContent = `round ${p.round}: ${p.dice.toFixed(2)}`;
    return [dot, label];
  });
  const line = make("polyline", { points: shown.map((p) => `${x(p.labels_used)},${y(p.dice)}`).join(" ") });
  svg.replaceChildren(...axis, ...ticks, caption, line, ...marks);
}

async function load() {
  clearTimeout(state.timer);
  if (state.project === null) return;
  const [rounds, curve] = await Promise.all([
    api("GET", `/api/rounds?project_id=${state.project}`),
    api("GET", `/api/rounds/curve?project_id=${state.project}`),
  ]);
  $("round-rows").replaceChildren(
    ...rounds.map((r) =>
      element(
        "tr",
        { "data-testid": `round-${r.number}` },
        element("td", { text: String(r.number) }),
        stageCell(r),
        progressCell(r),
        labelsCell(r),
        element("td", { text: r.selected_by && r.selected_by !== r.strategy ? `${r.strategy} (${r.selected_by})` : r.strategy }),
        modelCell(r),
        actionCell(r),
      ),
    ),
  );
  if (!rounds.length) $("round-rows").append(element("tr", {}, element("td", { colspan: "7", text: "No round yet." })));
  drawCurve(curve);
  // Poll while something moves on its own (a worker at a stage, or volunteers labelling).
  if (rounds.some((r) => WORKING.has(r.status) || r.status === "labelling")) {
    state.timer = setTimeout(() => load().catch((error) => say(error.message)), 3000);
  }
}

async function startRound(event) {
  event.preventDefault();
  const body = {
    project_id: state.project,
    strategy: $("strategy").value,
    budget: Number($("budget").value),
  };
  if ($("config").value) body.config = $("config").value;
  if ($("minutes").value) body.minutes = Number($("minutes").value);
  try {
    const r = await api("POST", "/api/rounds", body);
    say(`Round ${r.number} started: ${r.detail}.`);
  } catch (error) {
    say(error.message);
  }
  await load();
}

// The strategy picker and its help, from the server's list (the default selected).
async function loadStrategies() {
  const strategies = await api("GET", "/api/rounds/strategies");
  $("strategy").replaceChildren(
    ...strategies.map((s) => new Option(s.default ? `${s.name} (default)` : s.name, s.name, s.default, s.default)),
  );
  $("strategy-list").replaceChildren(
    ...strategies.flatMap((s) => [
      element("dt", {}, element("code", { text: s.name }), s.default ? " (default)" : ""),
      element("dd", { text: s.needs_model ? `${s.help} Needs a previous round's model; without one the round starts cold, as random_fg.` : s.help }),
    ]),
  );
}

async function start() {
  const projects = await staffProjects(["engineer", "admin"], "Rounds are run by ML engineers and admins.");
  if (projects === null) return;
  await loadStrategies().catch((error) => say(error.message));
  state.project = projects.length ? Number(projects[0].id) : null;
  $("project").addEventListener("change", (event) => {
    state.project = Number(event.target.value);
    load().catch((error) => say(error.message));
  });
  $("start").addEventListener("submit", startRound);
  $("workspace").hidden = false;
  await load().catch((error) => say(error.message));
}

start();
