// The binary mask of a slice and what tools do to it: pure functions on a Uint8Array of
// width * height values (row-major, 1 = lesion), the slice image's own pixel grid. Nothing here
// knows about zoom or the screen, so what is sent is exactly what was painted.

// The API's "rle" encoding: row-major run lengths, starting with a run of background (0).
export function encodeRle(mask) {
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

export function decodeRle(counts, size) {
  const mask = new Uint8Array(size);
  let at = 0;
  counts.forEach((run, n) => {
    if (n % 2 === 1) mask.fill(1, at, Math.min(at + run, size));
    at += run;
  });
  return mask;
}

// A round brush of diameter ``size`` pixels centred at (u, v) in slice coordinates (pixel i
// spans [i, i + 1)): every pixel whose centre lies within size / 2 of (u, v) gets ``value``.
// Size 1 at a pixel's centre paints that pixel alone. Returns whether anything changed.
export function stamp(mask, width, height, u, v, size, value) {
  const r = size / 2;
  let changed = false;
  const y0 = Math.max(0, Math.floor(v - r - 0.5));
  const y1 = Math.min(height - 1, Math.ceil(v + r - 0.5));
  const x0 = Math.max(0, Math.floor(u - r - 0.5));
  const x1 = Math.min(width - 1, Math.ceil(u + r - 0.5));
  for (let y = y0; y <= y1; y += 1) {
    for (let x = x0; x <= x1; x += 1) {
      const dx = x + 0.5 - u;
      const dy = y + 0.5 - v;
      if (dx * dx + dy * dy <= r * r + 1e-9 && mask[y * width + x] !== value) {
        mask[y * width + x] = value;
        changed = true;
      }
    }
  }
  return changed;
}

// The brush dragged from (u0, v0) to (u1, v1): stamps at most a quarter pixel apart, so no
// pixel the line passes over is skipped at any zoom.
export function line(mask, width, height, from, to, size, value) {
  const [u0, v0] = from;
  const [u1, v1] = to;
  const steps = Math.max(1, Math.ceil(Math.hypot(u1 - u0, v1 - v0) * 4));
  let changed = false;
  for (let i = 1; i <= steps; i += 1) {
    const t = i / steps;
    changed = stamp(mask, width, height, u0 + (u1 - u0) * t, v0 + (v1 - v0) * t, size, value) || changed;
  }
  return changed;
}

// Fill the closed outline around pixel (x, y): the 4-connected region of unpainted pixels that
// contains it, when that region does not reach the slice's edge (an open outline would flood
// the whole slice). Returns the number of pixels filled, 0 when (x, y) is already painted, or
// -1 when the outline is not closed (nothing is changed then).
export function fill(mask, width, height, x, y) {
  if (x < 0 || y < 0 || x >= width || y >= height) return 0;
  const start = y * width + x;
  if (mask[start]) return 0;
  const seen = new Uint8Array(mask.length);
  const stack = [start];
  const region = [];
  seen[start] = 1;
  while (stack.length) {
    const at = stack.pop();
    region.push(at);
    const px = at % width;
    const py = (at - px) / width;
    if (px === 0 || py === 0 || px === width - 1 || py === height - 1) return -1;
    for (const next of [at - 1, at + 1, at - width, at + width]) {
      if (!seen[next] && !mask[next]) {
        seen[next] = 1;
        stack.push(next);
      }
    }
  }
  for (const at of region) mask[at] = 1;
  return region.length;
}

// Painted pixels with an unpainted 4-neighbour (or on the edge): the outline display.
export function outline(mask, width, height) {
  const edge = new Uint8Array(mask.length);
  for (let y = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1) {
      const at = y * width + x;
      if (!mask[at]) continue;
      if (
        x === 0 || y === 0 || x === width - 1 || y === height - 1 ||
        !mask[at - 1] || !mask[at + 1] || !mask[at - width] || !mask[at + width]
      ) {
        edge[at] = 1;
      }
    }
  }
  return edge;
}

// Read-only masks as RGBA pixels: [{mask, colour: [r, g, b], fill}] drawn in order, each
// outlined (or, with fill, filled half transparent) in its colour.
export function overlayPixels(overlays, width, height) {
  const rgba = new Uint8ClampedArray(width * height * 4);
  for (const { mask, colour, fill: filled } of overlays) {
    const shown = filled ? mask : outline(mask, width, height);
    const alpha = filled ? 110 : 255;
    for (let i = 0; i < shown.length; i += 1) {
      if (shown[i]) rgba.set([...colour, alpha], i * 4);
    }
  }
  return rgba;
}

export function count(mask) {
  let n = 0;
  for (const value of mask) n += value;
  return n;
}
