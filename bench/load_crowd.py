"""The load test's volunteers (``bench/load.py``): each a coroutine with its own bearer token
and HTTP connection, making the requests the studio makes.

Per lease: ``POST /api/tasks/next``; with ``Crowd.images`` every image the studio loads for it
(its sprite when the server offers one, else each contrast of the slice and the FLAIR of its
four neighbours: seven on the realistic seed, fetched one after another on the volunteer's
connection); think (painting, with the lease
held); submit with an Idempotency-Key; after a gold answer, its feedback overlay (the studio
shows it). Honest volunteers paint what the FLAIR shows (pixels above the seed's lesion level,
shifted by a pixel: Dice about 0.8 against the reference, a careful but imperfect hand);
spammers (``Crowd.spammers`` of them, the first indices) paint a random short stroke, as the
plain crowd's volunteers all do. A volunteer told they are paused (``rater_suspended``) leaves.
"""

import asyncio
import hashlib
import io
import json
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np
from PIL import Image

from bench.load_seed import LESION_LEVEL

KINDS = ("next", "image", "submit", "feedback")


@dataclass(frozen=True)
class Crowd:
    """How the volunteers behave (the plain crowd: no images, every answer a random stroke)."""

    spammers: float = 0.0  # share of volunteers who paint at random
    images: bool = False  # fetch every image the studio does, and gold feedback overlays
    honest: bool = False  # the others paint the lesions they see

    @classmethod
    def realistic(cls, spammers: float = 0.1) -> "Crowd":
        return cls(spammers=spammers, images=True, honest=True)


@dataclass
class LoadReport:
    seconds: float
    ramp: float
    # Per request kind: (start since t0, client seconds, server seconds from Server-Timing).
    samples: dict[str, list[tuple[float, float, float]]] = field(
        default_factory=lambda: {kind: [] for kind in KINDS}
    )
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    acknowledged: list[tuple[int, str]] = field(default_factory=list)  # (lease id, key)
    spammers: set[int] = field(default_factory=set)  # volunteer indices
    suspended: set[int] = field(default_factory=set)  # told they are paused
    gold_dice: dict[str, list[float]] = field(default_factory=lambda: {"honest": [], "spammer": []})

    @property
    def submits_per_second(self) -> float:
        return len(self.acknowledged) / self.seconds

    def server_errors(self) -> int:
        return sum(n for key, n in self.statuses.items() if key.split()[-1].startswith("5"))


def _server_seconds(response: "Answer") -> float:
    """Queue plus app time from the answer's Server-Timing header (0 when absent)."""
    found = re.findall(r"dur=([0-9.]+)", response.headers.get("server-timing", ""))
    return sum(float(ms) for ms in found) / 1000


def rle(mask: np.ndarray) -> list[int]:
    """Run lengths of a 0/1 mask, row-major, starting with a (possibly empty) background run."""
    flat = mask.ravel().astype(np.int8)
    edges = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate(([0], edges, [flat.size]))).tolist()
    return [0, *runs] if flat[0] else runs


def stroke(rng: random.Random, width: int, height: int) -> list[int]:
    """A short horizontal stroke somewhere on the slice (the plain crowd's and spammers')."""
    start = rng.randrange(width * height - 10)
    length = rng.randrange(1, 10)
    return [start, length, width * height - start - length]


def painted(flair: np.ndarray, rng: random.Random) -> list[int]:
    """An honest answer: the FLAIR's lesion pixels, shifted a pixel one way (hand jitter)."""
    mask = flair > LESION_LEVEL
    dy, dx = rng.choice(((0, 1), (1, 0), (0, -1), (-1, 0), (0, 0)))
    return rle(np.roll(mask, (dy, dx), axis=(0, 1)))


@dataclass(frozen=True)
class Answer:
    """An HTTP answer, read in full."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


async def _timed(
    report: LoadReport,
    kind: str,
    t0: float,
    client: aiohttp.ClientSession,
    method: str,
    url: str,
    **options: Any,
) -> Answer:
    """One request, timed and counted under ``kind``."""
    begin = time.perf_counter()
    async with client.request(method, url, **options) as response:
        answer = Answer(response.status, response.headers, await response.read())
    report.samples[kind].append((begin - t0, time.perf_counter() - begin, _server_seconds(answer)))
    report.statuses[f"{kind} {answer.status_code}"] += 1
    return answer


# Decoded FLAIR pixels by the digest of their PNG's image data (joined IDAT chunks, the same
# under every lease's own bytes): the generator decodes each distinct image once, so its CPU
# goes to requests, not to PNG decoding (a volunteer's eyes are free).
_DECODED: dict[bytes, np.ndarray] = {}


def _pixels(png: bytes) -> np.ndarray:
    data, at = [], 8
    while at + 8 <= len(png):
        length = int.from_bytes(png[at : at + 4], "big")
        if png[at + 4 : at + 8] == b"IDAT":
            data.append(png[at + 8 : at + 8 + length])
        at += 12 + length
    digest = hashlib.blake2b(b"".join(data), digest_size=16).digest()
    found = _DECODED.get(digest)
    if found is None:
        found = _DECODED[digest] = np.asarray(Image.open(io.BytesIO(png)))
    return found


async def _load_images(
    client: aiohttp.ClientSession, report: LoadReport, t0: float, task: dict
) -> np.ndarray | None:
    """Load what the studio loads for a lease; the slice's FLAIR pixels (None if not loaded).
    A server that offers a sprite (``slice.sprite``) is asked for it alone, as the studio
    does; an older one for each contrast and each neighbour's FLAIR."""
    shown = task["slice"]["images"]
    sheet = task["slice"].get("sprite")
    if sheet is not None:
        got = await _timed(report, "image", t0, client, "GET", sheet["url"])
        if got.status_code != 200 or "0/flair" not in sheet["frames"]:
            return None
        height = task["slice"]["height"]
        at = sheet["frames"].index("0/flair") * height
        return _pixels(got.content)[at : at + height]
    flair = None
    for url in [*shown.values(), *(n["images"]["flair"] for n in task["neighbours"])]:
        got = await _timed(report, "image", t0, client, "GET", url)
        if url == shown.get("flair") and got.status_code == 200:
            flair = _pixels(got.content)
    return flair


def _paused(response: Answer) -> bool:
    return response.status_code == 403 and '"rater_suspended"' in response.text


async def volunteer(
    base: str,
    token: str,
    index: int,
    report: LoadReport,
    t0: float,
    start_at: float,
    think: float,
    paint: bool,
    crowd: Crowd,
) -> None:
    """One volunteer's loop until the run's end (``paint``: think between receiving a task and
    submitting it, as in the studio; else between a submission and the next request)."""
    rng = random.Random(token)
    deadline = t0 + report.seconds
    spammer = index in report.spammers

    async def pause() -> bool:
        """Think for a while (never past the end of the run); False when the run is over."""
        if think > 0:
            await asyncio.sleep(min(rng.expovariate(1 / think), deadline - time.perf_counter()))
        return time.perf_counter() < deadline

    await asyncio.sleep(max(0.0, t0 + start_at - time.perf_counter()))
    headers = {"Authorization": f"Bearer {token}"}
    # One keep-alive connection per volunteer (idle ones kept 60 s, as a browser would; the
    # server keeps them 75 s). aiohttp, not httpx: a third of httpx's CPU per request, and the
    # generator shares the server's cores.
    connector = aiohttp.TCPConnector(limit=1, keepalive_timeout=60.0)
    async with aiohttp.ClientSession(
        base_url=base,
        headers=headers,
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=60.0),
    ) as client:
        while time.perf_counter() < deadline:
            try:
                leased = await _timed(report, "next", t0, client, "POST", "/api/tasks/next")
                if leased.status_code == 204:
                    return  # nothing left for this volunteer
                if _paused(leased):
                    report.suspended.add(index)
                    return
                if leased.status_code != 200:
                    await asyncio.sleep(1.0)
                    continue
                task = leased.json()
                flair = None
                if crowd.images:
                    flair = await _load_images(client, report, t0, task)
                if paint and not await pause():
                    return  # the run ended while this volunteer was painting
                size = task["slice"]["width"], task["slice"]["height"]
                honest = crowd.honest and not spammer and flair is not None
                counts = painted(flair, rng) if honest else stroke(rng, *size)  # type: ignore[arg-type]
                key = uuid.uuid4().hex
                sent = await _timed(
                    report,
                    "submit",
                    t0,
                    client,
                    "POST",
                    f"/api/tasks/{task['id']}/annotations",
                    json={
                        "mask": {
                            "encoding": "rle",
                            "width": size[0],
                            "height": size[1],
                            "counts": counts,
                        },
                        "duration_ms": 6000,  # a plausible painting time
                    },
                    headers={"Idempotency-Key": key},
                )
                if _paused(sent):
                    report.suspended.add(index)
                    return
                if sent.status_code in (200, 201):
                    report.acknowledged.append((task["id"], key))
                    feedback = sent.json()["feedback"]
                    if feedback is not None:
                        report.gold_dice["spammer" if spammer else "honest"].append(
                            feedback["dice"]
                        )
                        if crowd.images and not feedback.get("overlay_png"):
                            # Older servers: the studio loads the overlay by its URL.
                            await _timed(
                                report, "feedback", t0, client, "GET", feedback["overlay_url"]
                            )
            except (aiohttp.ClientError, TimeoutError) as exc:
                report.errors[type(exc).__name__] += 1
                await asyncio.sleep(1.0)
            if not paint and not await pause():
                return
