// The rater table (answers, gold, reliability, last active, why suspended or flagged) with
// suspend, reinstate and clear-flag, and each rater's history: the Dice of every gold answer,
// a chart that reads with one point as with a hundred.
import { $, api, button, element } from "./api.js";

const percent = (x) => (x === null || x === undefined ? "–" : `${Math.round(x * 100)} %`);
const DONE = { suspend: "suspended", reinstate: "reinstated", "clear-flag": "cleared" };
const SVG = "http://www.w3.org/2000/svg";

function ago(iso) {
  const minutes = Math.round((Date.now() - new Date(iso).getTime()) / 60000);
  if (minutes < 1) return "just now";
  if (minutes < 60) return `${minutes} min ago`;
  if (minutes < 48 * 60) return `${Math.round(minutes / 60)} h ago`;
  return `${Math.round(minutes / 1440)} days ago`;
}

export async function loadRaters(project, say) {
  const rows = await api("GET", `/api/quality/raters?project_id=${project}`);
  $("rater-rows").replaceChildren(...rows.map((r) => raterRow(r, project, say)));
  if (!rows.length) {
    $("rater-rows").append(element("tr", {}, element("td", { colspan: "12", text: "No rater has answered yet." })));
  }
}

function raterRow(r, project, say) {
  const decide = async (verb) => {
    const reason = window.prompt(`Why ${verb.replace("-", " ")} ${r.display_name}? (shown to them)`);
    if (!reason) return;
    await api("POST", `/api/quality/raters/${r.user_id}/${verb}`, { project_id: project, reason });
    say(`${r.display_name}: ${DONE[verb]}.`);
    await loadRaters(project, say);
  };
  const verb = r.trust === "suspended" ? "reinstate" : "suspend";
  const flagged = r.flagged_reason !== null;
  const why = [r.suspended_reason && `Suspended: ${r.suspended_reason}`, flagged && `Flagged: ${r.flagged_reason}`]
    .filter(Boolean)
    .join(" ");
  const last = element("time", { datetime: r.last_active, title: new Date(r.last_active).toLocaleString(), text: ago(r.last_active) });
  return element(
    "tr",
    { class: flagged ? `${r.trust} flagged` : r.trust, "data-testid": "rater-row" },
    element("th", { scope: "row" }, button(r.display_name, () => showRater(r, project), { class: "secondary", "data-testid": "rater-name" })),
    element("td", { text: flagged ? `${r.trust}, flagged` : r.trust }),
    element("td", { class: "num", text: String(r.answered) }),
    element("td", { class: "num", text: String(r.gold) }),
    element("td", { text: `${percent(r.sensitivity.mean)} (${percent(r.sensitivity.low)}–${percent(r.sensitivity.high)})` }),
    element("td", { class: "num", text: percent(r.lesion_f1) }),
    element("td", { class: "num", text: percent(r.consistency) }),
    element("td", { class: "num", text: r.mean_seconds === null ? "–" : `${r.mean_seconds.toFixed(1)} s` }),
    element("td", { class: "num", text: percent(r.quality) }),
    element("td", {}, last),
    element("td", { class: "why", text: why || "–" }),
    element(
      "td",
      {},
      button(verb === "suspend" ? "Suspend" : "Reinstate", () => decide(verb), { "data-testid": verb }),
      ...(flagged ? [button("Clear flag", () => decide("clear-flag"), { "data-testid": "clear-flag" })] : []),
    ),
  );
}

function make(tag, attributes, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

// Dice of each gold answer in order. One answer is a dot with its value and a dashed level
// line across the chart, so a single point is as legible as a series.
export function drawHistory(svg, history) {
  const [left, top, width, height] = [34, 10, 356, 90];
  const n = history.length;
  const x = (i) => left + (n > 1 ? (i / (n - 1)) * width : width / 2);
  const y = (d) => top + (1 - d) * height;
  const parts = [0, 0.5, 1].flatMap((d) => [
    make("line", { x1: left, x2: left + width, y1: y(d), y2: y(d) }),
    make("text", { x: 4, y: y(d) + 3 }, d.toFixed(1)),
  ]);
  parts.push(make("text", { x: left, y: top + height + 18 }, n ? "first gold answer" : ""));
  if (n > 1) parts.push(make("text", { x: left + width, y: top + height + 18, "text-anchor": "end" }, `answer ${n}`));
  if (n === 1) parts.push(make("line", { class: "level", x1: left, x2: left + width, y1: y(history[0].dice), y2: y(history[0].dice) }));
  parts.push(make("polyline", { points: history.map((h, i) => `${x(i)},${y(h.dice)}`).join(" ") }));
  history.forEach((h, i) => {
    const dot = make("circle", { cx: x(i), cy: y(h.dice), r: n > 40 ? 2 : 3.5 });
    dot.append(make("title", {}, `Gold answer ${i + 1}: Dice ${h.dice.toFixed(2)}`));
    parts.push(dot);
  });
  if (n === 1) parts.push(make("text", { x: x(0) + 8, y: y(history[0].dice) - 6 }, `Dice ${history[0].dice.toFixed(2)}`));
  if (!n) parts.push(make("text", { x: left + 10, y: top + height / 2 }, "No gold answer yet"));
  svg.replaceChildren(...parts);
}

async function showRater(r, project) {
  const [history, actions] = await Promise.all([
    api("GET", `/api/quality/raters/${r.user_id}/history?project_id=${project}`),
    api("GET", `/api/quality/raters/${r.user_id}/actions?project_id=${project}`),
  ]);
  const mean = history.length ? history.reduce((sum, h) => sum + h.dice, 0) / history.length : null;
  $("rater-name").textContent =
    `${r.display_name}: Dice of each gold answer` + (mean === null ? "" : ` (${history.length}, mean ${mean.toFixed(2)})`);
  drawHistory($("history"), history);
  $("rater-actions").replaceChildren(
    ...actions.map((a) =>
      element("li", { text: `${a.created_at.slice(0, 16)}: ${a.action} by ${a.by_user_id === null ? "the rules" : `user ${a.by_user_id}`}: ${a.reason}` }),
    ),
  );
  $("rater-detail").hidden = false;
}
