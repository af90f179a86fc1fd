// The Training tab: how the tutorials work for the crowd (GET /api/tutorials/stats): lesson
// completion, which mimic fools volunteers most, each exercise's error pattern, and the
// qualification's pass rates, as bar charts with the numbers beside them.
import { $, api, element } from "./api.js";

const SVG = "http://www.w3.org/2000/svg";
const percent = (x) => (x === null || x === undefined ? "–" : `${Math.round(x * 100)} %`);

function make(tag, attributes, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

// Horizontal bars of shares (0..1): the label on the left, the bar, its figure on the right.
// A row without data (value null) says so instead of drawing a zero bar.
export function drawBars(svg, rows, { empty }) {
  const [labelWidth, barWidth, rowHeight] = [170, 300, 22];
  const height = Math.max(rows.length, 1) * rowHeight + 8;
  svg.setAttribute("viewBox", `0 0 ${labelWidth + barWidth + 90} ${height}`);
  if (!rows.length) {
    svg.replaceChildren(make("text", { x: 4, y: 18 }, empty));
    return;
  }
  const parts = rows.flatMap((row, i) => {
    const y = 4 + i * rowHeight;
    const bar = make("rect", {
      class: "bar",
      x: labelWidth,
      y: y + 3,
      width: row.value === null ? 0 : Math.max(row.value * barWidth, 1),
      height: rowHeight - 8,
    });
    bar.append(make("title", {}, `${row.label}: ${row.figure}`));
    return [
      make("text", { x: labelWidth - 6, y: y + 15, "text-anchor": "end" }, row.label),
      make("rect", { class: "track", x: labelWidth, y: y + 3, width: barWidth, height: rowHeight - 8 }),
      bar,
      make("text", { x: labelWidth + barWidth + 6, y: y + 15 }, row.figure),
    ];
  });
  svg.replaceChildren(...parts);
}

const MIMICS = {
  perivascular_space: "Perivascular spaces",
  choroid_plexus: "Choroid plexus",
  periventricular_cap: "Periventricular caps",
  septum_pellucidum: "Septum pellucidum",
  flow_artefact: "Flow artefact",
  motion_artefact: "Motion artefact",
};
const mimicName = (m) => MIMICS[m] || String(m).replaceAll("_", " ");

export async function loadTraining() {
  const stats = await api("GET", "/api/tutorials/stats");
  const volunteers = Math.max(0, ...stats.lessons.map((l) => l.completed_any));
  drawBars(
    $("lesson-chart"),
    stats.lessons.map((l) => ({
      label: l.title.length > 26 ? `${l.title.slice(0, 25)}…` : l.title,
      value: volunteers ? l.completed_current / volunteers : null,
      figure: `${l.completed_current} (v${l.version})`,
    })),
    { empty: "No lesson yet." },
  );
  drawBars(
    $("mimic-chart"),
    stats.mimics.map((m) => ({
      label: mimicName(m.mimic),
      value: m.fooled_share,
      figure: m.answers ? `${percent(m.fooled_share)} of ${m.answers}` : "no answer yet",
    })),
    { empty: "No mimic exercise answered yet." },
  );
  drawBars(
    $("pass-chart"),
    stats.qualification.map((q) => ({
      label: q.project,
      value: q.pass_rate,
      figure: q.attempts ? `${q.passed} of ${q.attempts} (${q.volunteers_passed} volunteers)` : "no attempt yet",
    })),
    { empty: "No project has a test yet: a test needs a case set aside as tutorial material." },
  );
  $("exercise-rows").replaceChildren(
    ...stats.exercises.map((e) =>
      element(
        "tr",
        { "data-testid": "exercise-row" },
        element("th", { scope: "row", text: `${e.lesson} / ${e.exercise}` }),
        element("td", { text: e.mimic ? `mimic: ${mimicName(e.mimic)}` : e.kind.replaceAll("_", " ") }),
        element("td", { class: "num", text: String(e.answers) }),
        element("td", { class: "num", text: e.mean_dice === null ? "–" : e.mean_dice.toFixed(2) }),
        element("td", { class: "num", text: percent(e.missed_share) }),
        element("td", { class: "num", text: percent(e.false_alarm_share) }),
      ),
    ),
  );
  if (!stats.exercises.length) {
    $("exercise-rows").append(element("tr", {}, element("td", { colspan: "6", text: "No practice answer yet." })));
  }
}
