// The tutorial page (/tutorials, and /tutorials?project=NAME where a project's test is due):
// the lessons with each one's progress, a lesson read with its figures and practice slices
// (painted in the studio's view, itemview.js, with feedback at once), the qualification test
// (qualification.js) and the field guide (guide.js). The place on the page is the URL's
// hash, so the browser's Back goes back: #lesson/ID, #practise/LESSON/EXERCISE, #test.
import { $, api, button, element, signInHref } from "./api.js";
import { setUpGuide } from "./guide.js";
import { leaveItem, paint, setUpItemView, showFeedback } from "./itemview.js";
import { renderMarkdown } from "./markdown.js";
import { openTest, retakeOf, setUpTest, standingOrError, testCard } from "./qualification.js";
import { ready as signedIn } from "./site.js";

const SECTIONS = ["gate", "lessons", "lesson", "studio", "qualification"];
const project = new URLSearchParams(window.location.search).get("project");

let lessons = []; // the summaries, in order (GET /api/tutorials/lessons)
let routed = 0; // the current route: async work for an older one stops
let onLeave = () => {};

function show(section) {
  const changed = document.body.dataset.section !== section;
  for (const id of SECTIONS) $(id).hidden = id !== section;
  document.body.dataset.section = section;
  $("help-open").hidden = section !== "studio";
  if (changed) {
    window.scrollTo(0, 0);
    // Screen readers start at the new screen's title.
    const title = $(section).querySelector("h1");
    if (title && section !== "studio") title.focus({ preventScroll: true });
  }
}

function gate(...content) {
  $("gate-text").replaceChildren(...content);
  show("gate");
}

async function loadLessons() {
  const found = await api("GET", "/api/tutorials/lessons");
  lessons = found.lessons;
  return lessons;
}

const titleOf = (id) => (lessons.find((l) => l.id === id) || { title: id }).title;

// --- the list -------------------------------------------------------------------------------

function progressOf(lesson) {
  if (lesson.completed_version === null) return { key: "todo", text: "Not done yet" };
  if (lesson.completed_version < lesson.version) {
    return { key: "changed", text: "Changed since you did it: worth another look" };
  }
  return { key: "done", text: "✓ Done" };
}

function practiceOf(lesson) {
  if (!lesson.exercises) return "Reading only";
  const noun = lesson.exercises === 1 ? "practice slice" : "practice slices";
  return `${lesson.exercises} ${noun}, ${lesson.exercises_done} done`;
}

function lessonItem(lesson, retake) {
  const progress = progressOf(lesson);
  const facts = element(
    "p",
    { class: "lesson-facts" },
    element("span", { class: `state ${progress.key}`, "data-testid": "lesson-state", text: progress.text }),
    ` · ${lesson.minutes} min · ${practiceOf(lesson)}`,
  );
  const item = element(
    "li",
    { class: `lesson-item ${progress.key}`, "data-id": lesson.id, "data-testid": "lesson-item" },
    element(
      "a",
      { class: "lesson-link", href: `#lesson/${lesson.id}` },
      element("span", { class: "lesson-number", "aria-hidden": "true", text: String(lesson.order) }),
      element("span", { class: "lesson-name", text: lesson.title }),
    ),
    facts,
  );
  if (retake) {
    item.append(element("p", { class: "lesson-retake", "data-testid": "lesson-retake", text: "Your last test points here: worth reading again." }));
  }
  if (!lesson.complete_material) {
    item.append(
      element("p", {
        class: "lesson-missing",
        "data-testid": "lesson-missing",
        text: "A few of its examples are not on this site yet.",
      }),
    );
  }
  return item;
}

async function showList(mine) {
  const [, now] = await Promise.all([loadLessons(), project ? standingOrError() : null]);
  if (mine !== routed) return;
  const retake = now ? retakeOf(now) : [];
  $("lesson-list").replaceChildren(...lessons.map((l) => lessonItem(l, retake.includes(l.id))));
  const done = lessons.filter((l) => progressOf(l).key === "done").length;
  $("list-progress").textContent = `(${done} of ${lessons.length} done)`;
  if (now) testCard(now, lessons);
  show("lessons");
}

// --- a lesson -------------------------------------------------------------------------------

function figureNode(figures, id, alt) {
  const figure = figures.get(id);
  const caption = element("figcaption", { text: figure ? figure.caption : alt });
  if (figure && figure.url) {
    return element(
      "figure",
      { class: "lesson-figure", "data-testid": "lesson-figure" },
      element("img", { src: figure.url, alt: alt || figure.caption, "data-testid": "figure-image" }),
      caption,
    );
  }
  // No slice of its kind on this site: said, never a broken image.
  return element(
    "figure",
    { class: "lesson-figure missing", "data-testid": "lesson-figure" },
    element("p", { class: "no-example", "data-testid": "figure-missing", text: "No example of this on this site yet." }),
    caption,
  );
}

function exerciseItem(lesson, exercise, n) {
  const prompt = element("p", { id: `exercise-${exercise.id}`, class: "exercise-prompt", text: exercise.prompt });
  const item = element("li", { class: "exercise", "data-id": exercise.id, "data-testid": "exercise" }, prompt);
  if (!exercise.available) {
    item.append(element("p", { class: "note", "data-testid": "exercise-missing", text: "No example slice on this site yet: go on with the lesson." }));
    return item;
  }
  const go = button(exercise.done ? "Practise again" : "Practise", () => {
    window.location.hash = `#practise/${lesson.id}/${exercise.id}`;
  }, { class: exercise.done ? "" : "primary", "aria-describedby": prompt.id, "data-testid": "practise" });
  const row = element("div", { class: "exercise-row" }, go);
  if (exercise.done) row.append(element("span", { class: "state done", text: "✓ Practised" }));
  if (n > 1) go.setAttribute("aria-label", `${go.textContent} (${n})`);
  item.append(row);
  return item;
}

function showDone(lesson) {
  const progress = progressOf(lesson);
  const doneNow = progress.key === "done";
  $("lesson-done").disabled = doneNow;
  $("lesson-done").textContent = doneNow ? "✓ Lesson done" : progress.key === "changed" ? "Mark done again" : "Mark lesson done";
  $("lesson-meta").replaceChildren(
    `Lesson ${lesson.order} of ${lessons.length} · ${lesson.minutes} min · `,
    element("span", { class: `state ${progress.key}`, text: progress.text }),
  );
  const at = lessons.findIndex((l) => l.id === lesson.id);
  const next = lessons[at + 1];
  const link = $("lesson-next");
  if (next) {
    link.href = `#lesson/${next.id}`;
    link.textContent = `Next: ${next.title}`;
  } else if (project) {
    link.href = "#test";
    link.textContent = "On to the test";
  } else {
    link.href = "#lessons";
    link.textContent = "All lessons";
  }
  link.classList.toggle("primary", doneNow);
}

async function openLesson(id, mine) {
  if (!lessons.length) await loadLessons();
  let lesson;
  try {
    lesson = await api("GET", `/api/tutorials/lessons/${encodeURIComponent(id)}`);
  } catch (error) {
    if (mine !== routed) return;
    gate(`${error.message}. `, element("a", { href: "#lessons", text: "All lessons" }));
    return;
  }
  if (mine !== routed) return;
  const figures = new Map(lesson.figures.map((f) => [f.id, f]));
  $("lesson-title").textContent = lesson.title;
  $("lesson-body").replaceChildren(renderMarkdown(lesson.body, { figure: (fid, alt) => figureNode(figures, fid, alt) }));
  const exercises = lesson.exercise_list;
  $("exercises").hidden = !exercises.length;
  $("exercise-list").replaceChildren(...exercises.map((e, n) => exerciseItem(lesson, e, exercises.length > 1 ? n + 1 : 0)));
  $("lesson-status").textContent = "";
  $("lesson").dataset.id = lesson.id;
  showDone(lesson);
  show("lesson");
}

$("lesson-done").addEventListener("click", async () => {
  const id = $("lesson").dataset.id;
  $("lesson-done").disabled = true;
  try {
    const summary = await api("POST", `/api/tutorials/lessons/${encodeURIComponent(id)}/complete`);
    lessons = lessons.map((l) => (l.id === id ? summary : l));
    showDone(summary);
    $("lesson-status").textContent = "Marked done. Thank you!";
  } catch (error) {
    $("lesson-done").disabled = false;
    $("lesson-status").textContent = `Not saved: ${error.message}`;
  }
});

// --- practice -------------------------------------------------------------------------------

async function practiceItem(lessonId, exerciseId) {
  const path = `/api/tutorials/lessons/${encodeURIComponent(lessonId)}/exercises/${encodeURIComponent(exerciseId)}`;
  return api("POST", path);
}

async function practise(lessonId, exerciseId, mine) {
  if (!lessons.length) await loadLessons();
  const back = `#lesson/${lessonId}`;
  let item;
  try {
    item = await practiceItem(lessonId, exerciseId);
  } catch (error) {
    if (mine !== routed) return;
    await openLesson(lessonId, mine);
    $("lesson-status").textContent = consentWords(error) || error.message;
    return;
  }
  onLeave = () => {
    window.location.hash = back;
  };
  for (;;) {
    if (mine !== routed) return;
    show("studio");
    const answer = await paint(item, {
      title: item.prompt || "Paint every lesion on the marked slice, then press Submit.",
      badge: "Practice",
      leave: { text: "Back", title: `Back to the lesson “${titleOf(lessonId)}”` },
    });
    if (!answer || mine !== routed) return;
    if (!answer.conflict) {
      const choice = await showFeedback(answer.feedback);
      if (mine !== routed) return;
      if (choice === "back") {
        window.location.hash = back;
        return;
      }
    }
    try {
      item = await practiceItem(lessonId, exerciseId); // the last one is answered: a new one
    } catch (error) {
      window.location.hash = back;
      return;
    }
  }
}

function consentWords(error) {
  if (error.code !== "consent_required") return null;
  return "Practice slices are kept as answers: read and accept the consent on the labelling page first.";
}

// --- the page -------------------------------------------------------------------------------

async function route() {
  const mine = ++routed;
  leaveItem();
  const [name, ...rest] = decodeURIComponent(window.location.hash.slice(1)).split("/");
  if (name === "lesson" && rest[0]) return openLesson(rest[0], mine);
  if (name === "practise" && rest.length === 2) return practise(rest[0], rest[1], mine);
  if (name === "test" && project) {
    if (!lessons.length) await loadLessons();
    onLeave = () => openTest(++routed);
    return openTest(mine);
  }
  return showList(mine);
}

async function start(me) {
  if (!me) {
    gate(
      "The lessons and the test are for volunteers with an account. ",
      element("a", { href: signInHref(), text: "Log in" }),
      " (or create an account) and you will come back here.",
    );
    return;
  }
  if (me.role === "volunteer" && !me.consent_current) {
    gate(
      "Before the tutorial, read what happens with your work and agree to it, once: ",
      element("a", { href: "/", text: "on the labelling page" }),
      ". It brings you back here when a test is due.",
    );
    return;
  }
  $("guide-open").hidden = false;
  window.addEventListener("hashchange", () => route().catch(failed));
  await route();
}

function failed(error) {
  gate(`Something went wrong: ${error.message}. `, element("a", { href: "/tutorials", text: "Start again" }));
}

setUpGuide($("guide-open"));
setUpItemView(() => onLeave());
setUpTest({ project, show, titleOf, isCurrent: (mine) => mine === routed, next: () => ++routed });

signedIn.then(start, (error) => gate(`The server could not say who you are: ${error.message}`)).catch(failed);
