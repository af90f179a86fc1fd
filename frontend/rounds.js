// Active-learning rounds for engineers and admins: the learning curve, each round's stage with
// its progress and ETA (polled while a worker is on it), and start/close/resume.
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

function progressCell(r) {
  if (r.status === "labelling") {
    return element("td", { text: `${r.labelled} of ${r.selected} labelled` });
  }
  if (!WORKING.has(r.status)) return element("td", { text: r.status === "closed" ? "done" : "" });
  const bar = element("progress", { max: "100", value: String(r.progress), "aria-label": `Round ${r.number} ${r.status}` });
  const eta = r.eta_seconds === null ? "" : `, about ${duration(r.eta_seconds)} left`;
  return element("td", {}, bar, element("div", { text: `${Math.round(r.progress)} %${eta}: ${r.detail}` }));
}

function modelCell(r) {
  if (!r.model) return element("td", { text: "–" });
  const dice = r.model.dice === null ? "no held-out case" : `Dice ${r.model.dice.toFixed(3)}, lesion F1 ${r.model.lesion_f1.toFixed(3)}`;
  return element("td", { text: `v${r.model.id} (${r.model.status}): ${dice}` });
}

function actionCell(r) {
  const act = (verb, label) =>
    button(label, async () => {
      try {
        await api("POST", `/api/rounds/${r.id}/${verb}`);
        say(`Round ${r.number}: ${label.toLowerCase()}.`);
      } catch (error) {
        say(error.message);
      }
      await load();
    }, { "data-testid": `${verb}-${r.number}` });
  if (r.status === "labelling") return element("td", {}, act("close", "Close labelling"));
  if (WORKING.has(r.status) && r.error) return element("td", {}, act("resume", "Resume"));
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
  const caption = make("text", { x: left, y: 145 });
  caption.textContent = shown.length
    ? `labelled slices used (0 to ${most})`
    : "No round has a model with held-out figures yet.";
  const marks = shown.map((p) => {
    const dot = make("circle", { cx: x(p.labels_used), cy: y(p.dice), r: 3.5, fill: "#1d4ed8" });
    const title = make("title", {});
    title.textContent = `Round ${p.round}: ${p.labels_used} slices, Dice ${p.dice.toFixed(3)}`;
    dot.append(title);
    return dot;
  });
  const line = make("polyline", { points: shown.map((p) => `${x(p.labels_used)},${y(p.dice)}`).join(" ") });
  svg.replaceChildren(...axis, caption, line, ...marks);
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
        element("td", { text: String(r.selected) }),
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

async function start() {
  const projects = await staffProjects(["engineer", "admin"], "Rounds are run by ML engineers and admins.");
  if (projects === null) return;
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
