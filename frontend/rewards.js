// Your points: totals and level, the community's goals and what its labels trained, streak,
// badges earned and the next ones, the last 30 days as a chart, the leaderboards (this week,
// all time) with your own row wherever you stand, and the reward settings (time zone,
// leaderboard opt-out). Talks to /api/rewards.
import { $, api, element, forgetMe, signInHref } from "./api.js";
import { render as renderHeader, ready as signedIn } from "./site.js";

const SVG = "http://www.w3.org/2000/svg";
let board = "week";

function make(tag, attributes, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function badgeItem(badge, earned) {
  const detail = earned
    ? `earned ${new Date(badge.awarded_at).toLocaleDateString()}`
    : `${Math.round((badge.progress || 0) * 100)} % of the way`;
  return element(
    "li",
    { class: earned ? "badge earned" : "badge", "data-testid": earned ? "badge" : "next-badge" },
    element("strong", { text: badge.name }),
    element("span", { text: badge.description }),
    element("span", { class: "muted", text: `${badge.points} points · ${detail}` }),
  );
}

// Points per day as bars, the mean quality of their answers as a line (0..1, right axis).
// Every day of the last ``span`` gets its slot (a day without points stays empty).
export function fillDays(days, span = 30, today = new Date()) {
  const byDay = new Map(days.map((d) => [d.day, d]));
  const out = [];
  for (let back = span - 1; back >= 0; back -= 1) {
    const day = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - back)).toISOString().slice(0, 10);
    out.push(byDay.get(day) || { day, points: 0, quality: null });
  }
  return out;
}

export function drawHistory(svg, days) {
  const [left, top, width, height] = [30, 8, 360, 100];
  const most = Math.max(10, ...days.map((d) => d.points));
  const n = Math.max(days.length, 1);
  const step = width / n;
  const parts = [
    make("line", { x1: left, x2: left + width, y1: top + height, y2: top + height }),
    make("text", { x: 2, y: top + 8 }, String(most)),
    make("text", { x: 2, y: top + height }, "0"),
  ];
  if (!days.some((d) => d.points)) parts.push(make("text", { x: left + 10, y: top + height / 2 }, "No points yet"));
  days.forEach((day, i) => {
    const h = (Math.max(day.points, 0) / most) * height;
    const bar = make("rect", { class: "bar", x: left + i * step + 1, y: top + height - h, width: Math.max(step - 2, 1), height: h });
    bar.append(make("title", {}, `${day.day}: ${day.points} points`));
    parts.push(bar);
  });
  const quality = days.filter((d) => d.quality !== null);
  if (quality.length) {
    const points = days
      .map((d, i) => (d.quality === null ? null : `${left + i * step + step / 2},${top + (1 - d.quality) * height}`))
      .filter(Boolean)
      .join(" ");
    parts.push(make("polyline", { points }));
  }
  if (days.length) {
    parts.push(make("text", { x: left, y: top + height + 16 }, days[0].day));
    parts.push(make("text", { x: left + width, y: top + height + 16, "text-anchor": "end" }, days[days.length - 1].day));
  }
  svg.replaceChildren(...parts);
}

async function loadMine() {
  const me = await api("GET", "/api/rewards/me");
  $("total").textContent = me.total.toLocaleString();
  $("week").textContent = me.week_points.toLocaleString();
  $("level-name").textContent = `Level ${me.level.number}: ${me.level.name}`;
  $("level-bar").value = me.level.progress;
  $("level-next").textContent =
    me.level.next_floor === null
      ? "The top level."
      : `${(me.level.next_floor - me.total).toLocaleString()} points to level ${me.level.number + 1}${me.level.next_name ? `, ${me.level.next_name}` : ""}.`;
  $("streak").textContent = String(me.streak.days);
  $("streak-unit").textContent = me.streak.days === 1 ? "day" : "days";
  $("longest").textContent = String(me.streak.longest);
  const notes = [];
  notes.push(me.streak.answered_today ? "Today counts already." : "Label a slice today to keep it going.");
  notes.push(
    me.streak.freeze_left
      ? "Missing one day this week will not break your streak: it is forgiven by itself, once a week."
      : "This week's forgiven day is used: label tomorrow to keep the streak.",
  );
  $("streak-note").textContent = notes.join(" ");
  $("badges").replaceChildren(...me.badges.map((b) => badgeItem(b, true)));
  if (!me.badges.length) $("badges").append(element("li", { class: "muted", text: "None yet: your first label earns one." }));
  $("next-badges").replaceChildren(...me.next_badges.map((b) => badgeItem(b, false)));
  $("time-zone").value = me.time_zone;
  $("on-board").checked = me.leaderboard;
  // Everything is on this page: what was new is seen now (exactly what was shown).
  if (me.new_badges.length || me.level_up || me.since.points || me.since.answers) {
    await api("POST", "/api/rewards/me/seen", {
      badges: me.new_badges.map((b) => b.id),
      level: me.level.number,
      through: me.since.through,
    });
  }
}

let goalBars = 0;
function goalBar(goal, prefix) {
  const id = `goal-${(goalBars += 1)}`;
  const share = goal.target ? Math.round((100 * goal.done) / goal.target) : 0;
  return element(
    "div",
    { class: "goal-bar", "data-testid": "goal-bar" },
    element("p", { id, text: `${prefix}: ${goal.done.toLocaleString()} of ${goal.target.toLocaleString()} ${goal.label} (${share} %)` }),
    element("progress", { max: String(Math.max(goal.target, 1)), value: String(goal.done), "aria-labelledby": id }),
  );
}

function goalBlock(found, several) {
  const block = element("div", { class: "goal", "data-testid": "goal" });
  if (several) block.append(element("h3", { text: found.project }));
  block.append(goalBar(found.goal, "The project"));
  const needs = found.labels_per_slice === 1 ? "one volunteer" : `${found.labels_per_slice} volunteers`;
  const yours = found.your_answers === 1 ? "1 answer" : `${found.your_answers.toLocaleString()} answers`;
  block.append(element("p", { class: "muted", text: `A slice is finished once ${needs} labelled it. Yours so far: ${yours}.` }));
  if (found.round) block.append(goalBar(found.round, `Round ${found.round_number}`));
  if (found.impact.length) {
    block.append(element("p", { text: "What the crowd's labels taught the computer model:" }));
    block.append(element("ul", { class: "impact", "data-testid": "impact" }, ...found.impact.map((line) => element("li", { text: line }))));
  }
  return block;
}

// Each project's goal, its open round's, and what its labels trained (the first three).
async function loadGoals() {
  const projects = (await api("GET", "/api/projects")).slice(0, 3);
  const found = await Promise.all(projects.map((p) => api("GET", `/api/rewards/goals?project=${encodeURIComponent(p.name)}`)));
  $("goals").replaceChildren(...found.map((g) => goalBlock(g, found.length > 1)));
  if (!found.length) $("goals").append(element("p", { class: "muted", text: "No project is open yet." }));
}

async function loadBoard() {
  for (const b of document.querySelectorAll(".board")) b.setAttribute("aria-pressed", String(b.dataset.board === board));
  const page = await api("GET", `/api/rewards/leaderboard?board=${board}&limit=20`);
  const row = (r) =>
    element(
      "tr",
      { class: r.you ? "you" : "", "data-testid": "board-row" },
      element("td", { class: "num", text: String(r.rank) }),
      element("th", { scope: "row", text: r.you ? `${r.name} (you)` : r.name }),
      element("td", { class: "num", text: r.points.toLocaleString() }),
    );
  $("board-rows").replaceChildren(...page.rows.map(row));
  if (!page.rows.length) {
    $("board-rows").append(element("tr", {}, element("td", { colspan: "3", text: board === "week" ? "No points this week yet." : "No points yet." })));
  }
  const listed = page.rows.some((r) => r.you);
  $("board-me").textContent = page.me
    ? listed
      ? `You are number ${page.me.rank} of ${page.total}.`
      : `You: number ${page.me.rank} of ${page.total}, with ${page.me.points.toLocaleString()} points.`
    : "You are not on this board (no points here yet, or you chose not to be shown).";
}

async function saveSettings(event) {
  event.preventDefault();
  try {
    const saved = await api("PUT", "/api/rewards/me/settings", {
      time_zone: $("time-zone").value.trim(),
      leaderboard: $("on-board").checked,
    });
    $("settings-status").textContent = `Saved: ${saved.time_zone}, ${saved.leaderboard ? "shown" : "not shown"} on the leaderboards.`;
    await loadMine();
    await loadBoard();
  } catch (error) {
    $("settings-status").textContent = `Not saved: ${error.message}`;
  }
}

async function eraseAccount(event) {
  event.preventDefault();
  $("erase-status").classList.remove("error");
  $("erase-status").textContent = "Deleting…";
  try {
    const done = await api("POST", "/api/auth/me/erase", { password: $("erase-password").value });
    $("erase-password").value = "";
    const answers = done.removed.annotations || 0;
    forgetMe();
    renderHeader(null); // signed out: the server ended the session
    $("page").replaceChildren(
      element(
        "section",
        { class: "card wide erased" },
        element("p", { role: "status", "data-testid": "erased", text: `Your account is deleted, with your ${answers} answer${answers === 1 ? "" : "s"}. Thank you for the time you gave.` }),
        element("a", { class: "button", href: "/", text: "Back to the start page" }),
      ),
    );
  } catch (error) {
    $("erase-status").classList.add("error");
    $("erase-status").textContent = `Not deleted: ${error.message.replace(/\.?$/, ".")}`;
  }
}

async function start() {
  const me = await signedIn;
  if (!me) {
    $("gate").append("Log in to see your points. ", element("a", { href: signInHref(), text: "Log in" }));
    $("gate").hidden = false;
    return;
  }
  const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  $("zones").replaceChildren(...zones.map((z) => element("option", { value: z })));
  $("page").hidden = false;
  for (const b of document.querySelectorAll(".board")) {
    b.addEventListener("click", () => {
      board = b.dataset.board;
      loadBoard().catch((error) => ($("board-me").textContent = error.message));
    });
  }
  $("settings").addEventListener("submit", saveSettings);
  $("erase-form").addEventListener("submit", eraseAccount);
  // The board after the profile: reading the profile awards any badge due, whose points the
  // board must show too.
  const [, days] = await Promise.all([loadMine(), api("GET", "/api/rewards/me/history?days=30")]);
  await loadBoard();
  loadGoals().catch((error) => ($("goals").textContent = error.message));
  drawHistory($("history"), fillDays(days));
  if (days.some((d) => d.quality !== null)) {
    $("history-note").textContent = "Bars: points per day. Line: how well the answers that earned them matched (0 to 100 %).";
  }
  // A first visit in another time zone than the default: offer the browser's.
  const here = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if ($("time-zone").value === "UTC" && here && here !== "UTC") {
    $("settings-status").textContent = `Your browser says ${here}: save it to count your days from your midnight.`;
    $("time-zone").value = here;
  }
}

start().catch((error) => {
  $("gate").textContent = error.message;
  $("gate").hidden = false;
});
