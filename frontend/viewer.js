// The studio's slice view: one canvas showing the slice (or a read-only neighbour) under a
// zoom and pan, with brightness and contrast (window and level), the mask overlay and a brush
// cursor; pointer input for mouse, pen and touch. The mask itself is a Uint8Array on the
// slice's pixel grid (mask.js): the view only maps screen points to slice coordinates,
// u = (x - panX) / scale, so painting at any zoom lands on the right pixels.
//
// Read-only overlays (a reference, raters' answers) are outlined in their colours on top
// (setOverlays: the expert workspace's).
//
// Input: one pointer paints with the current tool (brush, eraser, fill) or pans (the hand
// tool, the middle button or Space held); on a context slice the painting tools do nothing
// (the view stays put, aligned with the marked slice); the right button
// drags brightness (left-right: window width, up-down: level); the wheel zooms about the
// cursor. A second touch turns the gesture into a pinch that zooms and pans: the stroke the
// first finger began is taken back, so two fingers never paint.
import { count, fill, line, outline, overlayPixels, stamp } from "./mask.js";

const MAX_UNDO = 100;
const MIN_SCALE = 0.25;
const MAX_SCALE = 40;
const OVERLAY = [255, 64, 64]; // lesion paint: red, seen on grey at any brightness

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`The image ${url} could not be loaded`));
    img.src = url;
  });
}

function pixelsOf(img) {
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(img, 0, 0);
  return ctx.getImageData(0, 0, canvas.width, canvas.height);
}

// A sprite's frames as ImageData by "offset/contrast" (the sprite is one PNG of the frames
// stacked top to bottom, each width x height).
export async function cutSprite(sprite, width, height) {
  const sheet = pixelsOf(await loadImage(sprite.url));
  const size = width * height * 4;
  return new Map(
    sprite.frames.map((frame, i) => [
      frame,
      new ImageData(sheet.data.slice(i * size, (i + 1) * size), width, height),
    ]),
  );
}

// The Display panel's sliders, shared by the studio and the expert workspace: brightness and
// contrast drive the view's level and window, and follow a right-drag and the reset button.
// Returns the function that puts the sliders back in step with the view.
export function bindWindowSliders(viewer, { brightness, contrast, reset, view }) {
  const fromSliders = () =>
    viewer.setWindow(255 - Number(brightness.value), 514 - Number(contrast.value));
  const toSliders = () => {
    brightness.value = String(Math.round(255 - viewer.level));
    contrast.value = String(Math.round(514 - viewer.window));
  };
  brightness.addEventListener("input", fromSliders);
  contrast.addEventListener("input", fromSliders);
  reset.addEventListener("click", () => {
    viewer.resetWindow();
    toSliders();
  });
  view.addEventListener("pointerup", toSliders);
  return toSliders;
}

export class Viewer {
  constructor(canvas, { onChange = () => {}, onHint = () => {} } = {}) {
    this.canvas = canvas;
    this.onChange = onChange;
    this.onHint = onHint;
    this.tool = "brush";
    this.size = 3;
    this.opacity = 0.55;
    this.outlined = false;
    this.contrast = "flair";
    this.offset = 0;
    this.level = 127.5;
    this.window = 255;
    this.width = 1;
    this.height = 1;
    this.mask = new Uint8Array(1);
    this.undoStack = [];
    this.redoStack = [];
    this.pointers = new Map();
    this.mode = null;
    this.hover = null;
    this.spaceHeld = false;
    this.userZoomed = false;
    this.scale = 1;
    this.panX = 0;
    this.panY = 0;
    this.sources = new Map(); // "offset/contrast" -> URL
    this.pixels = new Map(); // "offset/contrast" -> ImageData (8-bit grey as RGBA)
    this.imageLayer = document.createElement("canvas");
    this.maskLayer = document.createElement("canvas");
    this.overlayLayer = document.createElement("canvas");
    this.overlays = [];
    this.bind();
    new ResizeObserver(() => this.resize()).observe(canvas.parentElement);
  }

  // --- the slice -----------------------------------------------------------------------

  async setSlice(slice, neighbours) {
    this.width = slice.width;
    this.height = slice.height;
    this.mask = new Uint8Array(slice.width * slice.height);
    this.undoStack = [];
    this.redoStack = [];
    this.overlays = [];
    this.sources = new Map();
    this.pixels = new Map();
    for (const [name, url] of Object.entries(slice.images)) this.sources.set(`0/${name}`, url);
    for (const n of neighbours) {
      for (const [name, url] of Object.entries(n.images)) this.sources.set(`${n.offset}/${name}`, url);
    }
    if (slice.sprite) await this.loadSprite(slice.sprite, slice.width, slice.height);
    this.offsets = [0, ...neighbours.map((n) => n.offset)].sort((a, b) => a - b);
    this.contrasts = Object.keys(slice.images);
    if (!this.contrasts.includes(this.contrast)) this.contrast = "flair";
    this.offset = 0;
    for (const layer of [this.imageLayer, this.maskLayer, this.overlayLayer]) {
      layer.width = slice.width;
      layer.height = slice.height;
    }
    // The window (brightness and contrast) is the volunteer's choice and stays from slice to
    // slice, as the Display sliders say; Reset or right-drag changes it.
    this.userZoomed = false;
    await this.showImage();
    this.fit();
    this.drawOverlays();
    this.changed(false);
  }

  // A lease's sprite: its frames ("offset/contrast") stacked top to bottom, one request for
  // what the single images took seven; cut ahead when the task was prefetched. Frames it
  // lacks load from their own URLs when shown.
  async loadSprite(sprite, width, height) {
    let frames;
    try {
      frames = await (sprite.cut || cutSprite(sprite, width, height));
    } catch {
      frames = await cutSprite(sprite, width, height); // the prefetch failed: once more
    }
    for (const [frame, pixels] of frames) this.pixels.set(frame, pixels);
  }

  // The pixels of a frame already loaded (context thumbnails draw from them), else null.
  frame(offset, contrast) {
    return this.pixels.get(`${offset}/${contrast}`) || null;
  }

  async showImage() {
    const key = `${this.offset}/${this.contrast}`;
    if (!this.pixels.has(key)) {
      const url = this.sources.get(key) || this.sources.get(`${this.offset}/flair`);
      this.pixels.set(key, pixelsOf(await loadImage(url)));
    }
    this.applyWindow();
  }

  // Window and level on the 8-bit image: grey g shows as (g - (level - window / 2)) / window.
  applyWindow() {
    const source = this.pixels.get(`${this.offset}/${this.contrast}`) || this.pixels.get(`${this.offset}/flair`);
    if (!source) return;
    const lut = new Uint8ClampedArray(256);
    const low = this.level - this.window / 2;
    for (let g = 0; g < 256; g += 1) lut[g] = Math.round(((g - low) / this.window) * 255);
    const out = new ImageData(source.width, source.height);
    for (let i = 0; i < source.data.length; i += 4) {
      const v = lut[source.data[i]];
      out.data[i] = v;
      out.data[i + 1] = v;
      out.data[i + 2] = v;
      out.data[i + 3] = 255;
    }
    this.imageLayer.getContext("2d").putImageData(out, 0, 0);
    this.render();
  }

  async setContrast(name) {
    if (!this.contrasts.includes(name)) return false;
    this.contrast = name;
    await this.showImage();
    return true;
  }

  async showOffset(offset) {
    if (!this.offsets.includes(offset)) return false;
    this.offset = offset;
    this.endGesture(true);
    await this.showImage();
    this.canvas.dataset.offset = String(offset);
    return true;
  }

  // Back to the marked slice with zoom and pan reset (Home).
  async home() {
    const moved = await this.showOffset(0);
    this.fit();
    return moved;
  }

  step(direction) {
    const at = this.offsets.indexOf(this.offset) + direction;
    if (at < 0 || at >= this.offsets.length) return Promise.resolve(false);
    return this.showOffset(this.offsets[at]);
  }

  resetWindow(render = true) {
    this.level = 127.5;
    this.window = 255;
    if (render) this.applyWindow();
  }

  setWindow(level, window) {
    this.level = Math.min(255, Math.max(0, level));
    this.window = Math.min(510, Math.max(4, window));
    this.applyWindow();
  }

  // --- the view ------------------------------------------------------------------------

  resize() {
    const box = this.canvas.parentElement.getBoundingClientRect();
    const ratio = window.devicePixelRatio || 1;
    this.canvas.width = Math.max(1, Math.round(box.width * ratio));
    this.canvas.height = Math.max(1, Math.round(box.height * ratio));
    this.canvas.style.width = `${box.width}px`;
    this.canvas.style.height = `${box.height}px`;
    if (!this.userZoomed) this.fit();
    else this.render();
  }

  cssSize() {
    const ratio = window.devicePixelRatio || 1;
    return [this.canvas.width / ratio, this.canvas.height / ratio];
  }

  fit() {
    const [cw, ch] = this.cssSize();
    this.scale = Math.max(MIN_SCALE, Math.min(cw / this.width, ch / this.height));
    this.panX = (cw - this.width * this.scale) / 2;
    this.panY = (ch - this.height * this.scale) / 2;
    this.userZoomed = false;
    this.render();
  }

  // Zoom by ``factor`` keeping the slice point under screen point (sx, sy) in place.
  zoomAt(factor, sx, sy) {
    const scale = Math.min(MAX_SCALE, Math.max(MIN_SCALE, this.scale * factor));
    const u = (sx - this.panX) / this.scale;
    const v = (sy - this.panY) / this.scale;
    this.scale = scale;
    this.panX = sx - u * scale;
    this.panY = sy - v * scale;
    this.userZoomed = true;
    this.render();
  }

  zoomCentre(factor) {
    const [cw, ch] = this.cssSize();
    this.zoomAt(factor, cw / 2, ch / 2);
  }

  panBy(dx, dy) {
    this.panX += dx;
    this.panY += dy;
    this.userZoomed = true;
    this.render();
  }

  local(event) {
    const rect = this.canvas.getBoundingClientRect();
    return [event.clientX - rect.left, event.clientY - rect.top];
  }

  toSlice([sx, sy]) {
    return [(sx - this.panX) / this.scale, (sy - this.panY) / this.scale];
  }

  // --- drawing ---------------------------------------------------------------------------

  drawMask() {
    const shown = this.outlined ? outline(this.mask, this.width, this.height) : this.mask;
    const image = new ImageData(this.width, this.height);
    for (let i = 0; i < shown.length; i += 1) {
      if (shown[i]) image.data.set([...OVERLAY, 255], i * 4);
    }
    this.maskLayer.getContext("2d").putImageData(image, 0, 0);
    this.render();
  }

  // Read-only masks over the slice: [{mask: Uint8Array, colour: [r, g, b], fill: false}],
  // drawn in order, each outlined (or filled, half transparent) in its colour.
  setOverlays(overlays) {
    this.overlays = overlays;
    this.drawOverlays();
  }

  drawOverlays() {
    const rgba = overlayPixels(this.overlays, this.width, this.height);
    this.overlayLayer.getContext("2d").putImageData(new ImageData(rgba, this.width, this.height), 0, 0);
    this.render();
  }

  render() {
    if (this.pendingFrame) return;
    this.pendingFrame = requestAnimationFrame(() => {
      this.pendingFrame = null;
      this.paintFrame();
    });
  }

  paintFrame() {
    const ctx = this.canvas.getContext("2d");
    const ratio = window.devicePixelRatio || 1;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    ctx.imageSmoothingEnabled = false;
    ctx.setTransform(ratio * this.scale, 0, 0, ratio * this.scale, ratio * this.panX, ratio * this.panY);
    ctx.drawImage(this.imageLayer, 0, 0);
    if (this.offset === 0) {
      ctx.globalAlpha = this.opacity;
      ctx.drawImage(this.maskLayer, 0, 0);
      ctx.globalAlpha = 1;
      if (this.overlays.length) ctx.drawImage(this.overlayLayer, 0, 0);
    }
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    // The slice's edge, so its extent is clear when zoomed out on a dark image.
    ctx.strokeStyle = this.offset === 0 ? "#3b82f6" : "#9ca3af";
    ctx.lineWidth = 1;
    ctx.strokeRect(this.panX - 0.5, this.panY - 0.5, this.width * this.scale + 1, this.height * this.scale + 1);
    const painting = ["brush", "eraser"].includes(this.tool) && this.offset === 0 && !this.spaceHeld;
    if (this.hover && painting && this.mode !== "pinch") {
      const [sx, sy] = this.hover;
      ctx.beginPath();
      ctx.arc(sx, sy, Math.max(1.5, (this.size / 2) * this.scale), 0, 2 * Math.PI);
      ctx.strokeStyle = this.tool === "brush" ? "#fde047" : "#e5e7eb";
      ctx.setLineDash(this.tool === "eraser" ? [3, 3] : []);
      ctx.stroke();
      ctx.setLineDash([]);
    }
    const data = this.canvas.dataset;
    data.scale = String(this.scale);
    data.panX = String(this.panX);
    data.panY = String(this.panY);
    data.offset = String(this.offset);
    data.level = String(this.level);
    data.window = String(this.window);
  }

  // --- editing ---------------------------------------------------------------------------

  remember(snapshot) {
    this.undoStack.push(snapshot);
    if (this.undoStack.length > MAX_UNDO) this.undoStack.shift();
    this.redoStack = [];
  }

  changed(edited = true) {
    this.drawMask();
    this.onChange({
      edited,
      pixels: count(this.mask),
      canUndo: this.undoStack.length > 0,
      canRedo: this.redoStack.length > 0,
    });
  }

  undo() {
    if (!this.undoStack.length) return;
    this.redoStack.push(this.mask);
    this.mask = this.undoStack.pop();
    this.changed();
  }

  redo() {
    if (!this.redoStack.length) return;
    this.undoStack.push(this.mask);
    this.mask = this.redoStack.pop();
    this.changed();
  }

  clear() {
    if (!count(this.mask)) return;
    this.remember(this.mask.slice());
    this.mask = new Uint8Array(this.mask.length);
    this.changed();
  }

  setMask(mask) {
    this.mask = mask;
    this.undoStack = [];
    this.redoStack = [];
    this.changed(false);
  }

  fillAt(point) {
    const [u, v] = this.toSlice(point);
    const before = this.mask.slice();
    const filled = fill(this.mask, this.width, this.height, Math.floor(u), Math.floor(v));
    if (filled > 0) {
      this.remember(before);
      this.changed();
    } else if (filled < 0) {
      this.onHint("Fill needs a closed outline: draw around the lesion first, then fill inside it.");
    }
  }

  // --- input -----------------------------------------------------------------------------

  bind() {
    const canvas = this.canvas;
    canvas.addEventListener("pointerdown", (event) => this.down(event));
    canvas.addEventListener("pointermove", (event) => this.move(event));
    canvas.addEventListener("pointerup", (event) => this.up(event, false));
    canvas.addEventListener("pointercancel", (event) => this.up(event, true));
    canvas.addEventListener("pointerleave", () => {
      this.hover = null;
      this.render();
    });
    canvas.addEventListener("contextmenu", (event) => event.preventDefault());
    canvas.addEventListener(
      "wheel",
      (event) => {
        event.preventDefault();
        const [sx, sy] = this.local(event);
        this.zoomAt(Math.pow(1.0015, -event.deltaY), sx, sy);
      },
      { passive: false },
    );
  }

  down(event) {
    event.preventDefault();
    this.canvas.setPointerCapture(event.pointerId);
    const point = this.local(event);
    this.pointers.set(event.pointerId, point);
    if (this.pointers.size === 2) {
      this.startPinch();
      return;
    }
    if (this.pointers.size > 2 || this.mode) return;
    if (event.button === 2) {
      this.mode = "window";
      this.start = { point, level: this.level, window: this.window };
    } else if (event.button === 1 || this.tool === "pan" || this.spaceHeld) {
      this.mode = "pan";
      this.last = point;
    } else if (this.offset !== 0) {
      // A painting tool on a context slice: nothing is painted and the view stays aligned
      // with the marked slice (it used to pan, leaving the view shifted).
      this.mode = "context";
      this.onHint("This is a neighbouring slice, for context only: go back to the marked slice to paint.");
    } else if (this.tool === "fill") {
      this.mode = "fill";
      this.last = point;
    } else {
      this.mode = "paint";
      this.snapshot = this.mask.slice();
      this.edited = false;
      this.last = this.toSlice(point);
      this.edited = stamp(this.mask, this.width, this.height, ...this.last, this.size, this.paintValue());
      this.drawMask();
    }
  }

  paintValue() {
    return this.tool === "eraser" ? 0 : 1;
  }

  move(event) {
    const point = this.local(event);
    this.hover = event.pointerType === "touch" ? null : point;
    if (!this.pointers.has(event.pointerId)) {
      this.render();
      return;
    }
    this.pointers.set(event.pointerId, point);
    if (this.mode === "paint") {
      const to = this.toSlice(point);
      if (line(this.mask, this.width, this.height, this.last, to, this.size, this.paintValue())) {
        this.edited = true;
        this.drawMask();
      }
      this.last = to;
    } else if (this.mode === "pan") {
      this.panBy(point[0] - this.last[0], point[1] - this.last[1]);
      this.last = point;
    } else if (this.mode === "window") {
      const [dx, dy] = [point[0] - this.start.point[0], point[1] - this.start.point[1]];
      this.setWindow(this.start.level - dy, this.start.window + dx * 2);
    } else if (this.mode === "pinch") {
      this.movePinch();
    } else {
      this.render();
    }
  }

  up(event, cancelled) {
    if (!this.pointers.has(event.pointerId)) return;
    this.pointers.delete(event.pointerId);
    if (this.mode === "fill" && !cancelled) this.fillAt(this.local(event));
    if (this.pointers.size === 0) this.endGesture(cancelled);
  }

  // The first finger's stroke is taken back when a second finger lands: a pinch never paints.
  startPinch() {
    if (this.mode === "paint") {
      this.mask = this.snapshot;
      this.edited = false;
      this.drawMask();
    }
    const [a, b] = [...this.pointers.values()];
    this.mode = "pinch";
    this.pinch = {
      distance: Math.max(1, Math.hypot(a[0] - b[0], a[1] - b[1])),
      centre: this.toSlice([(a[0] + b[0]) / 2, (a[1] + b[1]) / 2]),
      scale: this.scale,
    };
  }

  movePinch() {
    if (this.pointers.size < 2) return; // one finger lifted: wait for the other
    const [a, b] = [...this.pointers.values()];
    const distance = Math.max(1, Math.hypot(a[0] - b[0], a[1] - b[1]));
    const mid = [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2];
    this.scale = Math.min(MAX_SCALE, Math.max(MIN_SCALE, (this.pinch.scale * distance) / this.pinch.distance));
    // The slice point first under the fingers' midpoint stays under it: zoom and pan at once.
    this.panX = mid[0] - this.pinch.centre[0] * this.scale;
    this.panY = mid[1] - this.pinch.centre[1] * this.scale;
    this.userZoomed = true;
    this.render();
  }

  endGesture(cancelled) {
    if (this.mode === "paint") {
      if (cancelled) {
        this.mask = this.snapshot;
        this.drawMask();
      } else if (this.edited) {
        this.remember(this.snapshot);
        this.changed();
      }
    }
    if (this.pointers.size === 0) this.mode = null;
    this.snapshot = null;
  }
}
