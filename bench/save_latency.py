"""How long a volunteer waits after pressing Submit in the studio, for gold and normal answers.

A live ``mscrowd serve --no-worker`` on the embedded default (SQLite, ``tests.live``) holds one
project with the default gold settings (four in ten of a new volunteer's first answers are
gold) and one case of ``--slices`` 176 x 208 slices (FLAIR, T1 and T2: noisy brains with a
bright blob), a normal task per slice and ``--gold`` of them made gold with ``gold.set_gold``.
Sprites, where the tree has them, are built while seeding, as an import builds them. One
volunteer signs up in Debian's Chromium (1280 x 800), accepts the consent and gives
``--answers`` answers: a short wide stroke over the blob, then Submit.

Timed in the page with ``performance.now()`` from the Submit click (a capturing listener) to
the DOM change the volunteer waits for: the gold feedback panel shown (gold; the page says which
answers were gold only that way), or the next slice drawn with its "Saved ✓" toast (normal).
After the feedback, "Next slice" is clicked once its overlay has loaded, and the wait from that
click to the next slice is printed too, as is the server's acknowledgement (the status line's
"Saved"). Anchor, same run: the median of 20 ``fetch('/api/health')`` from the page.

The tree under test is the current directory's (its ``backend`` serves and seeds, its
``frontend`` is the studio), so one script times an older checkout too:

    .venv/bin/python bench/save_latency.py [--answers 16] [--slices 30] [--gold 8]
    cd /tmp/old && /work/main/.venv/bin/python /work/main/bench/save_latency.py

The browser part stops after ``--timeout`` s (120); any failure is printed and exits 1.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path.cwd()
if not (ROOT / "backend" / "__init__.py").is_file():
    sys.exit(f"save_latency: run from a checkout's root (no backend/ package in {ROOT})")
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from numpy.typing import NDArray  # noqa: E402
from playwright.sync_api import Error as PlaywrightError  # noqa: E402
from playwright.sync_api import Page, Request, sync_playwright  # noqa: E402
from sqlmodel import Session, select  # noqa: E402

from backend.core.storage import Storage  # noqa: E402
from backend.imaging.models import Slice  # noqa: E402
from backend.imaging.preprocess import encode_png  # noqa: E402
from backend.quality import gold  # noqa: E402
from backend.quality.models import GoldSource  # noqa: E402
from backend.tasks.models import Task, TaskKind  # noqa: E402
from backend.tasks.order import queue_priority  # noqa: E402
from tests.factories import create_case_row, create_project  # noqa: E402
from tests.frontend.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.live import seeded_site  # noqa: E402

sprite: ModuleType | None
try:  # trees before issue 35 have no sprites: their studio loads seven images per lease
    from backend.imaging import sprite
except ImportError:
    sprite = None

WIDTH, HEIGHT = 176, 208
BLOB_X, BLOB_Y, BLOB_R = 105, 90, 5  # inside the smallest brain of the case
PASSWORD = "a long enough password for the bench"

# Records, per answer, when the page did what the volunteer waits for (performance.now(), ms).
INSTRUMENT = """() => {
  const b = (window.__bench = { marks: {}, error: null });
  const mark = (name) => { if (!(name in b.marks)) b.marks[name] = performance.now(); };
  const fail = (text) => { if (!b.error) b.error = text; mark("error"); };
  const $ = (id) => document.getElementById(id);
  document.addEventListener("click", (event) => {
    if (event.target.closest("#submit")) { b.marks = { click: performance.now() }; b.error = null; }
    else if (event.target.closest("#feedback-next")) mark("next");
  }, true);
  const watch = (node, options, callback) => new MutationObserver(callback).observe(node, options);
  watch($("feedback"), { attributes: true, attributeFilter: ["hidden"] }, () => {
    if (!$("feedback").hidden) mark("feedback");
  });
  watch($("toast"), { childList: true, characterData: true, subtree: true }, () => {
    const text = $("toast").textContent;
    if (text.startsWith("Saved ✓")) mark("shown");
    else if (text.startsWith("Nothing is painted") || text.includes("not saved")) fail(text);
  });
  watch($("status"), { childList: true, characterData: true, subtree: true }, () => {
    const text = $("status").textContent;
    if (text.startsWith("Saved")) mark("ack");
    else if (text.startsWith("Not saved")) fail(text);
  });
  watch(document.body, { attributes: true, attributeFilter: ["data-section"] }, () => {
    const section = document.body.dataset.section;
    if (section === "empty") fail("no task left for the volunteer");
    if (section === "paused") fail(`volunteer paused: ${$("paused-reason").textContent}`);
  });
}"""
ANSWERED = "() => ['feedback', 'shown', 'error'].some((m) => m in window.__bench.marks)"
MOVED_ON = "() => ['shown', 'error'].some((m) => m in window.__bench.marks)"
HEALTH = """async () => {
  const out = [];
  for (let i = 0; i < 20; i++) {
    const start = performance.now();
    const response = await fetch("/api/health", { cache: "no-store" });
    await response.text();
    out.push(performance.now() - start);
  }
  return out;
}"""


class BenchError(Exception):
    """The run could not measure what it set out to (said plainly, exit 1)."""


class Deadline:
    """The browser part's time budget; every Playwright wait gets what is left of it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def ms(self) -> float:
        left = (self.end - time.monotonic()) * 1000
        if left <= 0:
            raise BenchError(f"over the {self.seconds:.0f} s budget")
        return left


def _images(rng: np.random.Generator, index: int, count: int) -> dict[str, NDArray[np.uint8]]:
    """FLAIR, T1 and T2 ``[H, W]`` uint8: a noisy ellipse (smaller at the case's ends) with a
    bright (FLAIR, T2) or dark (T1) blob at (BLOB_X, BLOB_Y)."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    size = 0.75 + 0.25 * np.sin(np.pi * (index + 1) / (count + 1))
    brain = ((xx - WIDTH / 2) / (0.42 * WIDTH * size)) ** 2 + (
        (yy - HEIGHT / 2) / (0.44 * HEIGHT * size)
    ) ** 2 <= 1
    blob = _blob()
    levels = {"flair": (95, 225), "t1": (150, 85), "t2": (115, 215)}
    out = {}
    for contrast, (tissue, lesion) in levels.items():
        noise = rng.normal(0, 12, (HEIGHT, WIDTH))
        image = np.where(brain, tissue + noise, np.abs(noise) * 0.3)
        image[blob] = lesion + noise[blob]
        out[contrast] = np.clip(image, 0, 255).astype(np.uint8)
    return out


def _blob() -> NDArray[np.bool_]:
    """The lesion (and the expert's gold mask) ``[H, W]``: a disc of radius BLOB_R."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    mask: NDArray[np.bool_] = (xx - BLOB_X) ** 2 + (yy - BLOB_Y) ** 2 <= BLOB_R**2
    return mask


def seed_case(session: Session, storage: Storage, *, count: int, golds: int) -> None:
    """One project (default gold settings), one case of ``count`` slices, a normal task per
    slice, ``golds`` of them (spread over the case) gold with the blob as the expert's mask."""
    project = create_project(session)  # the tests' defaults: no repeats, no speed rule
    case = create_case_row(session, project)
    rng = np.random.default_rng(35)
    slices = []
    for index in range(count):
        keys = {}
        for contrast, image in _images(rng, index, count).items():
            keys[contrast] = f"cases/{case.public_id}/axial/{index:04d}/{contrast}.png"
            storage.put(keys[contrast], encode_png(image))
        slice_ = Slice(
            case_id=case.id or 0,
            index=index,
            crop_x0=0,
            crop_y0=0,
            crop_x1=WIDTH,
            crop_y1=HEIGHT,
            image_keys=keys,
            brain_fraction=0.5,
        )
        session.add(slice_)
        session.flush()
        slices.append(slice_)
        session.add(
            Task(
                project_id=project.id or 0,
                slice_id=slice_.id or 0,
                required_labels=project.min_labels,
                priority=queue_priority(slice_.id or 0),
            )
        )
    if sprite is not None:
        for slice_ in slices:
            near = [
                (other.index - slice_.index, other.image_keys)
                for other in slices
                if 0 < abs(other.index - slice_.index) <= sprite.NEIGHBOUR_REACH
            ]
            key = sprite.sprite_key(slice_.id or 0, slice_.image_keys)
            sprite.stored_sprite(storage, key, sprite.frame_keys(slice_.image_keys, near))
    for index in np.linspace(1, count - 2, golds).round().astype(int):
        gold.set_gold(
            session=session,
            storage=storage,
            slice_id=slices[index].id or 0,
            mask=_blob().astype(np.uint8),
            source=GoldSource.expert,
            expert_id=None,
        )
    session.flush()
    open_gold = session.exec(select(Task).where(Task.kind == TaskKind.gold)).all()
    if len(open_gold) != golds:
        raise BenchError(f"seeded {len(open_gold)} gold tasks, wanted {golds}")


def _frame(page: Page) -> None:
    """Two animation frames: the view has drawn (and published its scale and pan)."""
    page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")


def _centre(page: Page, x: int, y: int) -> tuple[float, float]:
    """The client point of pixel (x, y)'s centre under the view's zoom and pan."""
    box = page.locator("#view").bounding_box()
    if box is None:
        raise BenchError("the slice view is not on screen")
    scale, pan_x, pan_y = page.evaluate(
        "() => { const d = document.querySelector('#view').dataset;"
        " return [Number(d.scale), Number(d.panX), Number(d.panY)]; }"
    )
    return box["x"] + pan_x + (x + 0.5) * scale, box["y"] + pan_y + (y + 0.5) * scale


def _stroke(page: Page) -> None:
    """A short stroke across the blob (brush 7: most of its pixels, so gold scores pass)."""
    page.mouse.move(*_centre(page, BLOB_X - 4, BLOB_Y))
    page.mouse.down()
    page.mouse.move(*_centre(page, BLOB_X + 4, BLOB_Y), steps=6)
    page.mouse.up()


def sign_up(page: Page, base: str, deadline: Deadline) -> None:
    """A new volunteer: pseudonym and password, consent, the first slice drawn, brush 7."""
    page.goto(base, timeout=deadline.ms())
    page.fill("#signup-name", "Bench Volunteer", timeout=deadline.ms())
    page.fill("#signup-password", PASSWORD, timeout=deadline.ms())
    page.click("#signup", timeout=deadline.ms())
    page.click("[data-testid=consent-accept]", timeout=deadline.ms())
    page.wait_for_selector("#studio:not([hidden])", timeout=deadline.ms())
    page.wait_for_function("() => document.querySelector('#loading').hidden", timeout=deadline.ms())
    for _ in range(4):
        page.keyboard.press("]")
    if page.input_value("#brush-size") != "7":
        raise BenchError(f"brush size {page.input_value('#brush-size')}, wanted 7")


def answer(page: Page, deadline: Deadline) -> tuple[str, float, float, float | None]:
    """Paint, submit, wait for the page's answer; (kind, wait, acknowledged, Next to next
    slice or None) with times in ms."""
    page.wait_for_function(
        "() => document.querySelector('#loading').hidden"
        " && !document.querySelector('[data-testid=submit]').disabled",
        timeout=deadline.ms(),
    )
    _frame(page)
    _stroke(page)
    page.click("[data-testid=submit]", timeout=deadline.ms())
    page.wait_for_function(ANSWERED, timeout=deadline.ms())
    bench: dict[str, Any] = page.evaluate("() => window.__bench")
    marks: dict[str, float] = bench["marks"]
    if bench["error"]:
        raise BenchError(f"the page said: {bench['error']}")
    if "ack" not in marks:
        raise BenchError(f"the status line never said 'Saved' (marks {marks})")
    ack = marks["ack"] - marks["click"]
    if "feedback" not in marks:
        return "normal", marks["shown"] - marks["click"], ack, None
    page.wait_for_function(
        "() => document.querySelector('#feedback-image').naturalWidth > 0", timeout=deadline.ms()
    )
    page.click("#feedback-next", timeout=deadline.ms())
    page.wait_for_function(MOVED_ON, timeout=deadline.ms())
    bench = page.evaluate("() => window.__bench")
    marks = bench["marks"]
    if bench["error"]:
        raise BenchError(f"after the feedback the page said: {bench['error']}")
    return "gold", marks["feedback"] - marks["click"], ack, marks["shown"] - marks["next"]


def _line(label: str, values: list[float]) -> str:
    if not values:
        return f"  {label:<38} n=0"
    return (
        f"  {label:<38} n={len(values):<3} median {statistics.median(values):7.1f} ms"
        f"  min {min(values):7.1f} ms  max {max(values):7.1f} ms"
    )


def run(base: str, *, answers: int, deadline: Deadline) -> None:
    """Drive one volunteer through ``answers`` answers and print the waits."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        images = {"sprite": 0, "single": 0}

        def count(request: Request) -> None:
            if request.url.endswith("/sprite.png"):
                images["sprite"] += 1
            elif "/images/" in request.url:
                images["single"] += 1

        page.on("request", count)
        try:
            sign_up(page, base, deadline)
            page.evaluate(INSTRUMENT)
            waits: dict[str, list[float]] = {"gold": [], "normal": []}
            acks: dict[str, list[float]] = {"gold": [], "normal": []}
            after: list[float] = []
            for _ in range(answers):
                kind, wait, ack, next_wait = answer(page, deadline)
                waits[kind].append(wait)
                acks[kind].append(ack)
                if next_wait is not None:
                    after.append(next_wait)
            page.wait_for_timeout(1000)  # the last prefetch settles before the anchor
            health: list[float] = page.evaluate(HEALTH)
        except (PlaywrightError, BenchError) as exc:
            detail = f"; script errors in the page: {errors}" if errors else ""
            raise BenchError(f"{type(exc).__name__}: {exc}{detail}") from exc
        finally:
            browser.close()
    if errors:
        print(f"  script errors in the page: {errors}")
    print(_line("gold: Submit -> feedback panel", waits["gold"]))
    print(_line("normal: Submit -> next slice shown", waits["normal"]))
    print(_line("gold: Next slice -> next slice shown", after))
    print(_line("gold: Submit -> status 'Saved'", acks["gold"]))
    print(_line("normal: Submit -> status 'Saved'", acks["normal"]))
    print(f"  images requested: {images['sprite']} sprites, {images['single']} single images")
    print(_line("anchor: GET /api/health from the page", health))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--answers", type=int, default=16)
    parser.add_argument("--slices", type=int, default=30)
    parser.add_argument("--gold", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=120, help="browser budget, seconds")
    args = parser.parse_args()
    if not 1 <= args.gold <= args.slices - 2 or args.answers > args.slices:
        parser.error("need 1 <= --gold <= --slices - 2 and --answers <= --slices")

    def seed(session: Session, storage: Storage) -> None:
        seed_case(session, storage, count=args.slices, golds=args.gold)

    print(
        f"save latency: tree {ROOT}, {args.answers} answers, {args.slices} slices of"
        f" {WIDTH} x {HEIGHT} ({args.gold} gold), sprites"
        f" {'built at seeding' if sprite is not None else 'absent from this tree'}"
    )
    try:
        with tempfile.TemporaryDirectory(prefix="mscrowd-save-latency-") as folder:
            with seeded_site(Path(folder) / "var", seed) as (base, _data_dir):
                run(base, answers=args.answers, deadline=Deadline(args.timeout))
    except (BenchError, AssertionError) as exc:
        print(f"save_latency: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
