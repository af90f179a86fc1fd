// Label releases for ML engineers and admins: each release with its state (progress and time
// left while it builds), counts and label statistics, downloads (the whole release as a tar,
// resumable, or file by file) and a preview overlay per case; a form to make one.
import { $, api, element, signInHref, whoAmI } from "./api.js";

const megabytes = (n) => `${(n / 1e6).toFixed(1)} MB`;
const bytes = (n) => (n < 1e3 ? `${n} B` : n < 1e6 ? `${(n / 1e3).toFixed(1)} kB` : megabytes(n));
let timer = null;

function stateLine(r) {
  if (r.status === "building") {
    const left = r.eta_seconds === null ? "" : `, about ${Math.max(1, Math.round(r.eta_seconds))} s left`;
    return element("span", {},
      element("progress", { max: "100", value: String(r.progress), "aria-label": `Building ${r.name}` }),
      ` building: ${Math.round(r.progress)} %${left} (${r.message})`);
  }
  const text = { ready: "ready", failed: "failed", superseded: "superseded: served no more" }[r.status] || r.status;
  return element("span", { class: `state ${r.status}`, text });
}

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

function filterText(f) {
  const left = f.exclude_raters.length;
  return [
    `at least ${plural(f.min_labels, "answer")} per slice`,
    f.min_confidence > 0 ? `fused confidence at least ${f.min_confidence}` : "any fused confidence",
    left ? `${plural(left, "rater")} left out` : "no rater left out",
    f.per_rater ? "each rater's own masks included" : "",
  ].filter(Boolean).join("; ");
}

function facts(r) {
  const s = r.stats || {};
  const rows = [
    ["State", stateLine(r)],
    ["Made", `${r.created_at.replace("T", " ").slice(0, 16)} UTC`],
  ];
  if (r.status === "ready") {
    rows.push(
      ["Cases", `${s.cases} (${s.cases_with_images} with images, ${s.held_out_cases} held out)`],
      ["Crowd-labelled slices", String(s.labelled_slices)],
      ["Slices with expert gold", String(s.gold_slices)],
      ["Lesion voxels", String(s.lesion_voxels)],
      ["Raters", String(s.raters)],
      ["Channels", (s.channels || []).join(", ")],
      ["Size", `${megabytes(r.size_bytes)} in ${r.file_count} files`],
      ["Filters", filterText(r.filters)],
    );
  }
  if (r.error) rows.push(["Why", r.error]);
  return element("dl", {}, ...rows.flatMap(([k, v]) => [element("dt", { text: k }), element("dd", {}, v)]));
}

function card(r) {
  const parts = [element("h2", { text: r.name }), facts(r)];
  if (r.status === "ready") {
    const base = `/api/releases/${encodeURIComponent(r.name)}`;
    parts.push(
      element("div", { class: "actions" },
        element("a", { class: "button primary", href: `${base}/archive.tar`, download: `${r.name}.tar`, "data-testid": "download", text: `Download (${megabytes(r.size_bytes)})` }),
        element("a", { class: "button", href: `${base}/files/README.md`, target: "_blank", rel: "noopener", text: "README: how to use it" }),
        element("a", { class: "button", href: `${base}/files/manifest.json`, target: "_blank", rel: "noopener", text: "Manifest" })),
      fileList(r, base),
    );
    const shown = (r.cases || []).slice(0, 24);
    const figures = shown.map((c) => {
      const src = `${base}/files/previews/${c}.png`;
      return element("figure", {},
        element("a", { href: src, target: "_blank", rel: "noopener", title: "Open full size" },
          element("img", { src, alt: `Case ${c}: FLAIR with the fused label's outline`, loading: "lazy", "data-testid": "preview" })),
        element("figcaption", { text: `Case ${c}` }));
    });
    if (figures.length) {
      parts.push(element("p", { class: "muted", text: "The most lesioned labelled slice of each case with images, the fused hard label outlined in orange (open one for full size):" }));
      parts.push(element("div", { class: "previews" }, ...figures));
    }
  }
  return element("section", { class: "card release", "data-testid": "release", "aria-label": `Release ${r.name}` }, ...parts);
}

function fileList(r, base) {
  // Every file with its size and SHA-256, each a link (loaded when opened).
  const list = element("ul", { class: "files", "data-testid": "files" });
  const box = element("details", { class: "file-list" },
    element("summary", { text: `Files one by one (${r.file_count}, with SHA-256 checksums)` }), list);
  box.addEventListener("toggle", async () => {
    if (!box.open || list.childElementCount) return;
    try {
      const files = await api("GET", `${base}/files`);
      list.replaceChildren(...files.map((f) => element("li", {},
        element("a", { href: `${base}/files/${f.path}`, text: f.path }),
        element("span", { class: "muted", text: ` ${bytes(f.size)}` }),
        element("code", { title: "SHA-256", text: f.sha256 }))));
    } catch (error) {
      list.replaceChildren(element("li", { class: "error", text: error.message }));
    }
  });
  return box;
}

function scripted(rows) {
  const newest = rows.find((r) => r.status === "ready");
  $("curl").textContent = `curl -C - -H "Authorization: Bearer $TOKEN" -o ${newest ? newest.name : "RELEASE"}.tar ${window.location.origin}/api/releases/${newest ? newest.name : "RELEASE"}/archive.tar`;
}

async function makeToken() {
  try {
    const made = await api("POST", "/api/auth/tokens", { name: "release downloads", scopes: ["releases:read"], expires_in_days: 30 });
    $("token").replaceChildren("Your token (copy it now; it is not shown again): ", element("code", { "data-testid": "token-value", text: made.token }));
  } catch (error) {
    $("token").textContent = `No token made: ${error.message}`;
  }
}

async function load() {
  const rows = await api("GET", "/api/releases");
  // Previews exist only for cases with images: drop the others' broken images.
  $("releases").replaceChildren(...rows.map(card));
  for (const img of $("releases").querySelectorAll("img[data-testid=preview]")) {
    img.addEventListener("error", () => img.closest("figure").remove(), { once: true });
  }
  $("summary").textContent = rows.length ? `${plural(rows.length, "release")}, newest first.` : "No release yet: make one below, or with `mscrowd release create`.";
  scripted(rows);
  clearTimeout(timer);
  if (rows.some((r) => r.status === "building")) timer = setTimeout(() => load().catch(() => {}), 2000);
}

async function create(event) {
  event.preventDefault();
  const body = {
    project: $("project").value,
    min_labels: Number($("min-labels").value),
    min_confidence: Number($("min-confidence").value),
    per_rater: $("per-rater").checked,
  };
  if ($("name").value.trim()) body.name = $("name").value.trim();
  try {
    const made = await api("POST", "/api/releases", body);
    $("create-status").textContent = `Release ${made.name} is being built; it shows below.`;
    await load();
  } catch (error) {
    $("create-status").textContent = `Not made: ${error.message}`;
  }
}

async function start() {
  const user = await whoAmI();
  const gate = (...parts) => {
    $("gate").replaceChildren(...parts);
    $("gate").hidden = false;
  };
  if (!user) return gate("This page is for ML engineers and admins. ", element("a", { href: signInHref(), text: "Log in" }), ". No engineer account yet? Ask the project's admin: accounts made with “Create account” are volunteers'.");
  if (!["engineer", "admin"].includes(user.role)) return gate("Releases are for ML engineers and admins. ", element("a", { href: "/", text: "Back to labelling" }), ".");
  $("workspace").hidden = false;
  $("make-token").addEventListener("click", makeToken);
  $("create").addEventListener("submit", create);
  // The releases show even when the project list cannot be read (only the form needs it).
  const projects = api("GET", "/api/projects").then((found) => {
    $("project").replaceChildren(...found.map((p) => element("option", { value: p.name, text: p.name })));
  }).catch((error) => {
    $("create-status").textContent = `The projects could not be read, so no release can be made now: ${error.message}`;
  });
  await Promise.all([load(), projects]);
}

start().catch((error) => {
  $("gate").textContent = error.message;
  $("gate").hidden = false;
});
