// Minimal labelling page: sign up or log in, lease a task, paint a binary mask, submit it as RLE.
// The mask lives in a Uint8Array at the slice's native size, so what is sent is exactly what was
// painted (no anti-aliased edges). The full labelling studio is a separate piece of work.
import { $, api } from "./api.js";

const state = { task: null, mask: null, undo: [], tool: "brush", key: null, started: 0 };

function show(section) {
  for (const id of ["auth", "labeller", "empty"]) $(id).hidden = id !== section;
}

async function start() {
  try {
    const me = await api("GET", "/api/auth/me");
    $("display-name").textContent = me.display_name;
    $("who").hidden = false;
    await nextTask();
  } catch (error) {
    if (error.status !== 401) throw error;
    $("who").hidden = true;
    showAuthTab("login");
    show("auth");
  }
}

function showAuthTab(tab) {
  for (const name of ["login", "signup"]) {
    $(`tab-${name}`).setAttribute("aria-selected", String(name === tab));
    $(`${name}-form`).hidden = name !== tab;
  }
}
$("tab-login").addEventListener("click", () => showAuthTab("login"));
$("tab-signup").addEventListener("click", () => showAuthTab("signup"));

// Two separate forms: Enter in the login form logs in, in the sign-up form signs up.
$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    await api("POST", "/api/auth/login", { email: $("login-email").value, password: $("login-password").value });
    $("login-password").value = "";
    await start();
  } catch (error) {
    $("login-error").textContent = error.message;
  }
});

$("signup-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("signup-error").textContent = "";
  const body = { email: $("signup-email").value, password: $("signup-password").value };
  if ($("signup-name").value.trim()) body.display_name = $("signup-name").value.trim();
  if (body.password.length < 10) {
    $("signup-error").textContent = "Password: use at least 10 characters.";
    return;
  }
  try {
    await api("POST", "/api/auth/signup", body);
    $("signup-password").value = "";
    await start();
  } catch (error) {
    $("signup-error").textContent = error.message;
  }
});

$("logout").addEventListener("click", async () => {
  await api("POST", "/api/auth/logout");
  await start();
});

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`Could not load ${url}`));
    img.src = url;
  });
}

async function drawContrast(name) {
  const img = await loadImage(state.task.slice.images[name]);
  const ctx = $("image").getContext("2d");
  ctx.drawImage(img, 0, 0);
}

async function nextTask() {
  // A POST: taking a lease changes state, so a cross-site link cannot do it.
  const task = await api("POST", "/api/tasks/next");
  if (!task) {
    show("empty");
    return;
  }
  state.task = task;
  state.key = crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2);
  state.started = performance.now();
  const { width, height } = task.slice;
  for (const canvas of [$("image"), $("paint")]) {
    canvas.width = width;
    canvas.height = height;
  }
  state.mask = new Uint8Array(width * height);
  state.undo = [];
  const select = $("contrast");
  select.replaceChildren(...Object.keys(task.slice.images).map((name) => new Option(name.toUpperCase(), name)));
  select.value = "flair";
  await drawContrast("flair");
  renderMask();
  $("context").replaceChildren(
    ...task.neighbours.map((n) => {
      const figure = document.createElement("figure");
      const img = document.createElement("img");
      img.src = n.images.flair;
      img.alt = `FLAIR slice ${n.offset > 0 ? "+" : ""}${n.offset}`;
      const caption = document.createElement("figcaption");
      caption.textContent = `${n.offset > 0 ? "+" : ""}${n.offset}`;
      figure.append(img, caption);
      return figure;
    }),
  );
  state.count = (state.count || 0) + 1;
  $("status").textContent = `Task ${state.count} of this session`;
  show("labeller");
}

$("contrast").addEventListener("change", (event) => drawContrast(event.target.value));

function renderMask() {
  const { width, height } = state.task.slice;
  const ctx = $("paint").getContext("2d");
  const image = ctx.createImageData(width, height);
  for (let i = 0; i < state.mask.length; i += 1) {
    if (state.mask[i]) {
      image.data.set([255, 40, 40, 150], i * 4);
    }
  }
  ctx.putImageData(image, 0, 0);
}

function stamp(cx, cy) {
  const { width, height } = state.task.slice;
  const r = Number($("brush-size").value) / 2;
  const value = state.tool === "brush" ? 1 : 0;
  for (let y = Math.max(0, Math.floor(cy - r)); y <= Math.min(height - 1, Math.ceil(cy + r)); y += 1) {
    for (let x = Math.max(0, Math.floor(cx - r)); x <= Math.min(width - 1, Math.ceil(cx + r)); x += 1) {
      if ((x - cx) ** 2 + (y - cy) ** 2 <= r * r + 0.25) state.mask[y * width + x] = value;
    }
  }
}

function toPixel(event) {
  const canvas = $("paint");
  const rect = canvas.getBoundingClientRect();
  return [
    ((event.clientX - rect.left) / rect.width) * canvas.width - 0.5,
    ((event.clientY - rect.top) / rect.height) * canvas.height - 0.5,
  ];
}

let last = null;
$("paint").addEventListener("pointerdown", (event) => {
  $("paint").setPointerCapture(event.pointerId);
  state.undo.push(state.mask.slice());
  last = toPixel(event);
  stamp(...last);
  renderMask();
});
$("paint").addEventListener("pointermove", (event) => {
  if (!last) return;
  const [x, y] = toPixel(event);
  const steps = Math.max(1, Math.ceil(Math.hypot(x - last[0], y - last[1])));
  for (let i = 1; i <= steps; i += 1) {
    stamp(last[0] + ((x - last[0]) * i) / steps, last[1] + ((y - last[1]) * i) / steps);
  }
  last = [x, y];
  renderMask();
});
for (const name of ["pointerup", "pointercancel"]) {
  $("paint").addEventListener(name, () => {
    last = null;
  });
}

function setTool(tool) {
  state.tool = tool;
  $("tool-brush").setAttribute("aria-pressed", String(tool === "brush"));
  $("tool-eraser").setAttribute("aria-pressed", String(tool === "eraser"));
}
$("tool-brush").addEventListener("click", () => setTool("brush"));
$("tool-eraser").addEventListener("click", () => setTool("eraser"));
$("undo").addEventListener("click", () => {
  if (state.undo.length) {
    state.mask = state.undo.pop();
    renderMask();
  }
});
$("clear").addEventListener("click", () => {
  state.undo.push(state.mask.slice());
  state.mask.fill(0);
  renderMask();
});
document.addEventListener("keydown", (event) => {
  if ($("labeller").hidden || event.target.tagName === "INPUT") return;
  if (event.key === "b") setTool("brush");
  if (event.key === "e") setTool("eraser");
  if (event.key === "z") $("undo").click();
});

// Row-major runs, starting with background: the API's "rle" mask encoding.
function encodeRle(mask) {
  const counts = [];
  let current = 0;
  let run = 0;
  for (const value of mask) {
    if (value === current) {
      run += 1;
    } else {
      counts.push(run);
      current = value;
      run = 1;
    }
  }
  counts.push(run);
  return counts;
}

$("submit").addEventListener("click", async () => {
  const { id, slice } = state.task;
  $("submit").disabled = true;
  $("status").textContent = "Saving...";
  try {
    // The same Idempotency-Key on a retry: a flaky connection never stores a mask twice.
    await api(
      "POST",
      `/api/tasks/${id}/annotations`,
      {
        mask: { encoding: "rle", width: slice.width, height: slice.height, counts: encodeRle(state.mask) },
        duration_ms: Math.round(performance.now() - state.started),
        client_info: { ui: "minimal-labeller", viewport: [window.innerWidth, window.innerHeight] },
      },
      { "Idempotency-Key": state.key },
    );
    $("status").textContent = "Saved. Thank you!";
    await nextTask();
  } catch (error) {
    $("status").textContent = `Not saved: ${error.message}`;
  } finally {
    $("submit").disabled = false;
  }
});

start();
