// Expert workspace: gold candidates and expert answers, the review queue with a small painter
// for gold masks, and the rater table with each rater's history and suspend/reinstate.
// An ES module served as is (no build step); it talks to /api/quality/* with the session cookie.

import { $, api, button, element, staffProjects } from "./api.js";

const state = { project: null, painting: null };

function say(text) {
  $("status").textContent = text;
}

function image(src, alt) {
  return element("img", { src, alt, loading: "lazy" });
}

const percent = (x) => (x === null || x === undefined ? "–" : `${Math.round(x * 100)} %`);

// --- gold ---------------------------------------------------------------------------------

async function loadGold() {
  const p = state.project;
  const candidates = await api("GET", `/api/quality/gold-candidates?project_id=${p}&limit=24`);
  $("candidates").replaceChildren(
    ...candidates.map((c) =>
      element(
        "div",
        { class: "card", "data-testid": "candidate" },
        element("div", { class: "images" }, image(c.flair_url, "FLAIR"), image(c.reference_url, "Reference mask")),
        element("p", { text: `Case ${c.case}, slice ${c.index}: ${c.reference_pixels} lesion px` }),
        button("Approve as gold", async () => {
          await api("POST", `/api/quality/slices/${c.slice_id}/gold`, { source: "reference" });
          say(`Slice ${c.index} of case ${c.case} is gold.`);
          await loadGold();
        }, { "data-testid": "approve" }),
      ),
    ),
  );
  if (!candidates.length) $("candidates").append(element("p", { text: "No candidates left." }));
  const gold = await api("GET", `/api/quality/gold?project_id=${p}&limit=24`);
  $("gold-slices").replaceChildren(
    ...gold.map((g) =>
      element(
        "div",
        { class: "card", "data-testid": "gold-slice" },
        element("div", { class: "images" }, image(g.flair_url, "FLAIR"), image(g.mask_url, "Gold mask")),
        element("p", { text: `Case ${g.case}, slice ${g.index}: version ${g.version} (${g.source})` }),
        button("Retire", async () => {
          await api("DELETE", `/api/quality/slices/${g.slice_id}/gold`);
          say(`Slice ${g.index} of case ${g.case} is no longer gold.`);
          await loadGold();
        }, { class: "secondary", "data-testid": "retire" }),
      ),
    ),
  );
  if (!gold.length) $("gold-slices").append(element("p", { text: "No gold yet." }));
  const answers = await api("GET", `/api/quality/expert-answers?project_id=${p}&limit=24`);
  $("answers").replaceChildren(
    ...answers.map((a) =>
      element(
        "div",
        { class: "card" },
        element("div", { class: "images" }, image(a.flair_url, "FLAIR"), image(a.mask_url, "Expert mask")),
        element("p", { text: `${a.expert}: ${a.lesion_pixels} px${a.is_gold_slice ? " (slice is gold)" : ""}` }),
        button("Make gold", async () => {
          await api("POST", `/api/quality/annotations/${a.annotation_id}/gold`);
          say("The answer is the slice's gold now.");
          await loadGold();
        }),
      ),
    ),
  );
  if (!answers.length) $("answers").append(element("p", { text: "No expert answers yet." }));
}

// --- review queue and painter -------------------------------------------------------------

async function loadReview() {
  const items = await api("GET", `/api/quality/review?project_id=${state.project}`);
  $("queue").replaceChildren(
    ...items.map((item) =>
      element(
        "div",
        { class: "card", "data-testid": "review-item" },
        element(
          "div",
          { class: "images" },
          image(item.flair_url, "FLAIR"),
          ...item.mask_urls.map((url, n) => image(url, `Volunteer answer ${n + 1}`)),
        ),
        element("p", {
          text:
            (item.escalated ? "Still uncertain after the most labels the project allows. " : "") +
            `Mean pairwise Dice ${item.mean_dice.toFixed(2)} (${item.min_dice.toFixed(2)}–${item.max_dice.toFixed(2)})`,
        }),
        button("Paint gold", () => openPainter(item.slice_id, item.flair_url), { "data-testid": "paint-gold" }),
      ),
    ),
  );
  if (!items.length) $("queue").append(element("p", { text: "No slice with two or more answers yet." }));
}

async function openPainter(sliceId, flairUrl) {
  const img = await new Promise((resolve, reject) => {
    const node = new Image();
    node.onload = () => resolve(node);
    node.onerror = reject;
    node.src = flairUrl;
  });
  const [w, h] = [img.naturalWidth, img.naturalHeight];
  for (const id of ["paint-image", "paint-mask"]) Object.assign($(id), { width: w, height: h });
  $("paint-image").getContext("2d").drawImage(img, 0, 0);
  state.painting = { sliceId, w, h, mask: new Uint8Array(w * h), erase: false };
  renderPaint();
  $("painter").hidden = false;
}

function renderPaint() {
  const { w, h, mask } = state.painting;
  const ctx = $("paint-mask").getContext("2d");
  const pixels = ctx.createImageData(w, h);
  for (let i = 0; i < mask.length; i++) {
    if (mask[i]) pixels.data.set([230, 159, 0, 170], i * 4);
  }
  ctx.putImageData(pixels, 0, 0);
}

function paintAt(event) {
  const p = state.painting;
  const box = $("paint-mask").getBoundingClientRect();
  const x = Math.floor(((event.clientX - box.left) / box.width) * p.w);
  const y = Math.floor(((event.clientY - box.top) / box.height) * p.h);
  const r = Number($("paint-size").value) - 1;
  for (let yy = y - r; yy <= y + r; yy++) {
    for (let xx = x - r; xx <= x + r; xx++) {
      if (xx >= 0 && yy >= 0 && xx < p.w && yy < p.h && (xx - x) ** 2 + (yy - y) ** 2 <= r * r) {
        p.mask[yy * p.w + xx] = p.erase ? 0 : 1;
      }
    }
  }
  renderPaint();
}

function encodeRle(mask) {
  const counts = [];
  let value = 0;
  let run = 0;
  for (const pixel of mask) {
    if (pixel === value) run++;
    else {
      counts.push(run);
      value = pixel;
      run = 1;
    }
  }
  counts.push(run);
  return counts;
}

function setUpPainter() {
  const canvas = $("paint-mask");
  let down = false;
  canvas.addEventListener("pointerdown", (event) => {
    down = true;
    canvas.setPointerCapture(event.pointerId);
    paintAt(event);
  });
  canvas.addEventListener("pointermove", (event) => down && paintAt(event));
  canvas.addEventListener("pointerup", () => (down = false));
  $("paint-erase").addEventListener("click", () => {
    state.painting.erase = !state.painting.erase;
    $("paint-erase").setAttribute("aria-pressed", String(state.painting.erase));
  });
  $("paint-clear").addEventListener("click", () => {
    state.painting.mask.fill(0);
    renderPaint();
  });
  $("paint-cancel").addEventListener("click", () => ($("painter").hidden = true));
  $("paint-save").addEventListener("click", async () => {
    const { sliceId, w, h, mask } = state.painting;
    const body = { source: "expert", mask: { encoding: "rle", width: w, height: h, counts: encodeRle(mask) } };
    const version = await api("POST", `/api/quality/slices/${sliceId}/gold`, body);
    $("painter").hidden = true;
    say(`Your mask is gold version ${version.version} of the slice.`);
    await loadReview();
  });
}

// --- raters -------------------------------------------------------------------------------

async function loadRaters() {
  const rows = await api("GET", `/api/quality/raters?project_id=${state.project}`);
  $("rater-rows").replaceChildren(
    ...rows.map((r) => {
      const DONE = { suspend: "suspended", reinstate: "reinstated", "clear-flag": "cleared" };
      const decide = async (verb) => {
        const reason = window.prompt(`Why ${verb.replace("-", " ")} ${r.display_name}? (shown to them)`);
        if (!reason) return;
        await api("POST", `/api/quality/raters/${r.user_id}/${verb}`, { project_id: state.project, reason });
        say(`${r.display_name}: ${DONE[verb]}.`);
        await loadRaters();
      };
      const verb = r.trust === "suspended" ? "reinstate" : "suspend";
      const flagged = r.flagged_reason !== null;
      const why = r.suspended_reason || r.flagged_reason || "";
      const row = element(
        "tr",
        { class: flagged ? `${r.trust} flagged` : r.trust, "data-testid": "rater-row" },
        element("td", {}, button(r.display_name, () => showRater(r), { class: "secondary" })),
        element("td", { text: flagged ? `${r.trust}, flagged` : r.trust }),
        element("td", { text: String(r.answered) }),
        element("td", { text: String(r.gold) }),
        element("td", { text: `${percent(r.sensitivity.mean)} (${percent(r.sensitivity.low)}–${percent(r.sensitivity.high)})` }),
        element("td", { text: percent(r.lesion_f1) }),
        element("td", { text: percent(r.consistency) }),
        element("td", { text: r.mean_seconds === null ? "–" : `${r.mean_seconds.toFixed(1)} s` }),
        element("td", { text: percent(r.quality) }),
        element("td", { text: new Date(r.last_active).toLocaleString() }),
        element("td", { class: "why", text: why || "–" }),
        element(
          "td",
          {},
          button(verb === "suspend" ? "Suspend" : "Reinstate", () => decide(verb), { "data-testid": verb }),
          ...(flagged ? [button("Clear flag", () => decide("clear-flag"), { "data-testid": "clear-flag" })] : []),
        ),
      );
      return row;
    }),
  );
}

async function showRater(r) {
  const p = state.project;
  const [history, actions] = await Promise.all([
    api("GET", `/api/quality/raters/${r.user_id}/history?project_id=${p}`),
    api("GET", `/api/quality/raters/${r.user_id}/actions?project_id=${p}`),
  ]);
  $("rater-name").textContent = `${r.display_name}: Dice of each gold answer`;
  const svg = $("history");
  const ns = "http://www.w3.org/2000/svg";
  const make = (tag, attributes) => {
    const node = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, v);
    return node;
  };
  const [left, top, width, height] = [30, 10, 360, 90];
  const x = (i) => left + (history.length > 1 ? (i / (history.length - 1)) * width : width / 2);
  const y = (d) => top + (1 - d) * height;
  const points = history.map((h, i) => `${x(i)},${y(h.dice)}`).join(" ");
  const axis = [0, 0.5, 1].flatMap((d) => {
    const label = make("text", { x: 2, y: y(d) + 3 });
    label.textContent = d.toFixed(1);
    return [make("line", { x1: left, x2: left + width, y1: y(d), y2: y(d) }), label];
  });
  // One answer draws no line: every answer is also a dot, titled with its Dice.
  const dots = history.map((h, i) => {
    const dot = make("circle", { cx: x(i), cy: y(h.dice), r: 3 });
    const title = make("title", {});
    title.textContent = `Gold answer ${i + 1}: Dice ${h.dice.toFixed(2)}`;
    dot.append(title);
    return dot;
  });
  svg.replaceChildren(...axis, make("polyline", { points }), ...dots);
  if (!history.length) {
    const none = make("text", { x: left + 10, y: top + height / 2 });
    none.textContent = "No gold answer yet";
    svg.append(none);
  }
  $("rater-actions").replaceChildren(
    ...actions.map((a) =>
      element("li", { text: `${a.created_at.slice(0, 16)}: ${a.action} by ${a.by_user_id === null ? "the rules" : `user ${a.by_user_id}`}: ${a.reason}` }),
    ),
  );
  $("rater-detail").hidden = false;
}

// --- set-up -------------------------------------------------------------------------------

// --- problem reports ----------------------------------------------------------------------

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
        element("div", { class: "images" }, image(`/api/slices/${r.slice_id}/images/flair.png`, "FLAIR")),
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

const TABS = {
  "tab-gold": ["gold", loadGold],
  "tab-review": ["review", loadReview],
  "tab-raters": ["raters", loadRaters],
  "tab-reports": ["reports", loadReports],
};

function selectTab(id) {
  for (const [tab, [panel]] of Object.entries(TABS)) {
    $(tab).setAttribute("aria-selected", String(tab === id));
    $(panel).hidden = tab !== id;
  }
  return TABS[id][1]().catch((error) => say(error.message));
}

async function start() {
  const projects = await staffProjects(["expert", "admin"], "This workspace is for experts and admins.");
  if (projects === null) return;
  state.project = projects.length ? Number(projects[0].id) : null;
  $("project").addEventListener("change", (event) => {
    state.project = Number(event.target.value);
    const open = Object.keys(TABS).find((tab) => $(tab).getAttribute("aria-selected") === "true");
    selectTab(open);
  });
  for (const tab of Object.keys(TABS)) $(tab).addEventListener("click", () => selectTab(tab));
  setUpPainter();
  $("workspace").hidden = false;
  if (state.project !== null) await selectTab("tab-gold");
}

start();
