// Label releases for ML engineers and admins: each release with its state (progress and time
// left while it builds), counts and label statistics, downloads (the whole release as a tar,
// resumable, or file by file) and a preview overlay per case; a form to make one.
import { $, api, element, signInHref, whoAmI } from "./api.js";

const megabytes = (n) => `${(n / 1e6).toFixed(1)} MB`;
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

function facts(r) {
  const s = r.stats || {};
  const rows = [
    ["State", stateLine(r)],
    ["Made", `${r.created_at.replace("T", " ").slice(0, 16)} UTC`],
  ];
  if (r.status === "ready") {
    rows.push(
      ["Cases", `${s.cases} (${s.cases_with_images} with images, ${s.held_out_cases} held out)`],
      ["Labelled slices", `${s.labelled_slices} (${s.gold_slices} with expert gold)`],
      ["Lesion voxels", String(s.lesion_voxels)],
      ["Raters", String(s.raters)],
      ["Channels", (s.channels || []).join(", ")],
      ["Size", `${megabytes(r.size_bytes)} in ${r.file_count} files`],
      ["Filters", `≥ ${r.filters.min_labels} answers, confidence ≥ ${r.filters.min_confidence}, ${r.filters.exclude_raters.length} raters left out${r.filters.per_rater ? ", per-rater masks" : ""}`],
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
        element("a", { class: "button", href: `${base}/files/README.md`, text: "README" }),
        element("a", { class: "button", href: `${base}/files/manifest.json`, text: "Manifest" }),
        element("a", { class: "button", href: `${base}/files`, text: "Files and checksums" })),
    );
    const shown = (r.cases || []).slice(0, 24);
    const figures = shown.map((c) =>
      element("figure", {},
        element("img", { src: `${base}/files/previews/${c}.png`, alt: `Case ${c}: FLAIR with the fused label's outline`, loading: "lazy", "data-testid": "preview" }),
        element("figcaption", { text: c })));
    if (figures.length) {
      parts.push(element("p", { class: "muted", text: "The most lesioned labelled slice of each case with images, the fused hard label outlined in orange:" }));
      parts.push(element("div", { class: "previews" }, ...figures));
    }
  }
  return element("section", { class: "card release", "data-testid": "release", "aria-label": `Release ${r.name}` }, ...parts);
}

async function load() {
  const rows = await api("GET", "/api/releases");
  // Previews exist only for cases with images: drop the others' broken images.
  $("releases").replaceChildren(...rows.map(card));
  for (const img of $("releases").querySelectorAll("img[data-testid=preview]")) {
    img.addEventListener("error", () => img.closest("figure").remove(), { once: true });
  }
  $("summary").textContent = rows.length ? `${rows.length} release${rows.length === 1 ? "" : "s"}, newest first.` : "No release yet: make one above, or with `mscrowd release create`.";
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
  if (!user) return gate("This page is for ML engineers and admins. ", element("a", { href: signInHref(), text: "Log in" }), ".");
  if (!["engineer", "admin"].includes(user.role)) return gate("Releases are for ML engineers and admins. ", element("a", { href: "/", text: "Back to labelling" }), ".");
  $("workspace").hidden = false;
  const projects = await api("GET", "/api/projects");
  $("project").replaceChildren(...projects.map((p) => element("option", { value: p.name, text: p.name })));
  $("create").addEventListener("submit", create);
  await load();
}

start().catch((error) => {
  $("gate").textContent = error.message;
  $("gate").hidden = false;
});
