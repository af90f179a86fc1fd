// The studio's controls around the view: painting tools, brush size, contrasts, undo and
// redo, display (opacity, outline, brightness), the neighbouring slices, help, and the
// keyboard shortcuts. The view itself is viewer.js; answering is the task loop's (tasks.js),
// reached through the ``actions`` given to setUpTools.
import { $ } from "./api.js";
import { bindWindowSliders } from "./viewer.js";

let viewer = null;
let actions = { submit: () => {}, skip: () => {} };

function setTool(tool) {
  viewer.tool = tool;
  for (const button of document.querySelectorAll(".tool")) {
    button.setAttribute("aria-pressed", String(button.dataset.tool === tool));
  }
  viewer.render();
}

function setSize(size) {
  const value = Math.min(15, Math.max(1, size));
  $("brush-size").value = String(value);
  $("brush-size").setAttribute("aria-valuetext", `${value} pixels`);
  viewer.size = value;
  viewer.render();
}

function updateContrasts(available) {
  for (const button of document.querySelectorAll(".contrast")) {
    button.hidden = !available.includes(button.dataset.contrast);
    button.setAttribute("aria-pressed", String(button.dataset.contrast === viewer.contrast));
  }
}

async function setContrast(name) {
  if (await viewer.setContrast(name)) updateContrasts(viewer.contrasts);
}

function setOutlined(on) {
  $("outlined").checked = on;
  viewer.outlined = on;
  viewer.drawMask();
}


function offsetShown() {
  const offset = viewer.offset;
  const badge = $("offset-badge");
  badge.textContent =
    offset === 0
      ? "Labelling this slice"
      : `Context: ${Math.abs(offset)} slice${Math.abs(offset) > 1 ? "s" : ""} ${offset > 0 ? "above" : "below"} (read-only)`;
  badge.classList.toggle("context", offset !== 0);
  $("stage").classList.toggle("context", offset !== 0);
  $("slice-up").disabled = offset === Math.max(...viewer.offsets);
  $("slice-down").disabled = offset === Math.min(...viewer.offsets);
  $("slice-home").disabled = offset === 0;
  for (const thumb of document.querySelectorAll(".thumb")) {
    thumb.setAttribute("aria-pressed", String(Number(thumb.dataset.offset) === offset));
  }
}

async function goTo(offset) {
  if (await viewer.showOffset(offset)) offsetShown();
}
async function step(direction) {
  if (await viewer.step(direction)) offsetShown();
}
// Home: the labelled slice, with zoom and pan reset.
async function home() {
  await viewer.home();
  offsetShown();
}

function thumbnails(task) {
  const all = [{ offset: 0, images: task.slice.images }, ...task.neighbours].sort((a, b) => b.offset - a.offset);
  $("thumbs").replaceChildren(
    ...all.map((n) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "thumb";
      button.dataset.offset = String(n.offset);
      const label = n.offset === 0 ? "this slice" : `${n.offset > 0 ? "+" : ""}${n.offset}`;
      button.setAttribute("aria-label", n.offset === 0 ? "The slice being labelled" : `Context slice ${label}`);
      // Drawn from the pixels the viewer already holds (the lease's sprite): no request.
      const pixels = viewer.frame(n.offset, "flair");
      let img;
      if (pixels) {
        img = document.createElement("canvas");
        img.width = pixels.width;
        img.height = pixels.height;
        img.getContext("2d").putImageData(pixels, 0, 0);
      } else {
        img = document.createElement("img");
        img.src = n.images.flair;
        img.alt = "";
      }
      img.className = "thumb-image";
      const caption = document.createElement("span");
      caption.textContent = label;
      button.append(img, caption);
      button.addEventListener("click", () => goTo(n.offset));
      return button;
    }),
  );
}

// A new slice on screen: its contrasts, its neighbours, the labelled slice shown.
export function showTask(task) {
  updateContrasts(Object.keys(task.slice.images));
  thumbnails(task);
  offsetShown();
}

// Help opens at its top, at the explanation: the dialog would otherwise focus its first
// button, Close, at the bottom, and open scrolled past everything a newcomer needs.
export function openHelp() {
  const help = $("help");
  if (help.open) return;
  help.showModal();
  help.scrollTop = 0;
  $("help-title").focus({ preventScroll: true });
}

const KEYS = {
  b: () => setTool("brush"),
  e: () => setTool("eraser"),
  f: () => setTool("fill"),
  h: () => setTool("pan"),
  "[": () => setSize(viewer.size - 1),
  "]": () => setSize(viewer.size + 1),
  1: () => setContrast("flair"),
  2: () => setContrast("t1"),
  3: () => setContrast("t2"),
  ArrowUp: () => step(1),
  ArrowDown: () => step(-1),
  Home: () => home(),
  "+": () => viewer.zoomCentre(1.25),
  "=": () => viewer.zoomCentre(1.25),
  "-": () => viewer.zoomCentre(0.8),
  0: () => viewer.fit(),
  o: () => setOutlined(!viewer.outlined),
  r: () => $("window-reset").click(),
  n: () => actions.submit(true),
  s: () => actions.skip(),
  Delete: () => viewer.clear(),
  Backspace: () => viewer.clear(),
  "?": () => openHelp(),
};

function onKey(event) {
  const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(event.target.tagName) && event.target.type !== "range";
  if (typing || document.querySelector("dialog[open]")) return;
  if (event.key === " " && !$("studio").hidden) {
    viewer.spaceHeld = true;
    event.preventDefault();
    return;
  }
  if ($("studio").hidden || !$("feedback").hidden) return;
  const ctrl = event.ctrlKey || event.metaKey;
  if (ctrl && event.key.toLowerCase() === "z") {
    event.preventDefault();
    if (event.shiftKey) viewer.redo();
    else viewer.undo();
    return;
  }
  if (ctrl && event.key.toLowerCase() === "y") {
    event.preventDefault();
    viewer.redo();
    return;
  }
  if (ctrl && event.key === "Enter") {
    event.preventDefault();
    actions.submit(false);
    return;
  }
  if (ctrl || event.altKey) return;
  const action = KEYS[event.key] || KEYS[event.key.toLowerCase()];
  if (action) {
    event.preventDefault();
    action();
  }
}

// Wires every control to ``theViewer``; ``theActions``: { submit(empty), skip() }.
export function setUpTools(theViewer, theActions) {
  viewer = theViewer;
  actions = theActions;
  for (const button of document.querySelectorAll(".tool")) {
    button.addEventListener("click", () => setTool(button.dataset.tool));
  }
  $("brush-size").addEventListener("input", () => setSize(Number($("brush-size").value)));
  for (const button of document.querySelectorAll(".contrast")) {
    button.addEventListener("click", () => setContrast(button.dataset.contrast));
  }
  $("undo").addEventListener("click", () => viewer.undo());
  $("redo").addEventListener("click", () => viewer.redo());
  $("clear").addEventListener("click", () => viewer.clear());
  $("fit").addEventListener("click", () => viewer.fit());
  $("opacity").addEventListener("input", () => {
    viewer.opacity = Number($("opacity").value) / 100;
    viewer.render();
  });
  $("outlined").addEventListener("change", () => setOutlined($("outlined").checked));
  bindWindowSliders(viewer, {
    brightness: $("brightness"),
    contrast: $("contrast-level"),
    reset: $("window-reset"),
    view: $("view"),
  });
  $("slice-up").addEventListener("click", () => step(1));
  $("slice-down").addEventListener("click", () => step(-1));
  $("slice-home").addEventListener("click", home);
  $("help-open").addEventListener("click", openHelp);
  $("help-close").addEventListener("click", () => $("help").close());
  document.addEventListener("keydown", onKey);
  document.addEventListener("keyup", (event) => {
    if (event.key === " ") {
      viewer.spaceHeld = false;
      viewer.render();
    }
  });
}
