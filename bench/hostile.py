"""No request stalls the server: a volunteer's next-task latency alone, then beside hostile load.

Starts ``mscrowd serve`` on a fresh PostgreSQL schema seeded as ``bench/load.py`` does, then:

1. alone: volunteers take turns, one lease due every ``--interval`` s for ``--seconds``
   whatever the answers before it (an open loop): ``POST /api/tasks/next`` (timed from when
   it was due, so that a stall counts for every request it delays), then a skip of the task
   (not timed), so that every lease is a new one. Not a submission: answers milliseconds
   apart are implausibly fast, and quality control's speed rule would soon pause them.
   Turns, not one volunteer: each skip is a task the next lease walks past, and one
   volunteer's thousand skips would slow its own leases. Each phase has its own
   ``--volunteers`` volunteers;
2. under attack: the same again, while ``--hostile`` clients (threads of another process, so
   that generating megabytes does not slow the volunteers' own timing) send these in a loop,
   in turn:
   - ``POST /api/tasks/1/annotations`` with a made-up bearer token and 1,000,000 negative run
     lengths (3 MB of JSON);
   - ``POST /api/auth/login`` with 320,000 unknown JSON keys (3.8 MB);
   - the 65-byte PNG declaring 16384 x 16384 pixels, from a signed-in volunteer, to their
     own lease.

Prints p50/p95/p99 of the volunteer's next-task latency in both phases, one beside the other,
and the hostile answers by status. Target: p95 under 100 ms under attack.

Usage (loopback only; about a minute):

    .venv/bin/python bench/hostile.py [--seconds 20] [--hostile 4] [--interval 0.05]
    [--volunteers 20] [--url postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from backend.core.db import create_db_engine  # noqa: E402
from backend.core.migrations import upgrade  # noqa: E402
from backend.core.storage import Storage  # noqa: E402
from bench.load_measure import cpu_snapshot, print_cpu, profiling, quantiles  # noqa: E402
from bench.load_seed import HEIGHT, WIDTH, fresh_schema, seed  # noqa: E402
from tests.factories import png_bomb  # noqa: E402
from tests.live import live_server  # noqa: E402

JSON = {"Content-Type": "application/json"}
# A volunteer's request that takes longer is given up (and counted, with this time).
TIMEOUT = 30.0


def compact(body: object) -> bytes:
    """``body`` as JSON without spaces (how the reproductions measured their sizes)."""
    return json.dumps(body, separators=(",", ":")).encode()


def hostile_requests(lease: int) -> list[tuple[str, bytes, dict[str, str]]]:
    """The attacks, as (path, body, headers): built once, sent many times."""
    runs = {"encoding": "rle", "width": WIDTH, "height": HEIGHT, "counts": [-1] * 1_000_000}
    keys = {f"k{i:06d}": 0 for i in range(320_000)} | {"email": "a@b.org", "password": "x"}
    bomb = {"encoding": "png", "data": base64.b64encode(png_bomb()).decode()}
    return [
        (
            "/api/tasks/1/annotations",
            compact({"mask": runs}),
            {**JSON, "Authorization": "Bearer made-up"},
        ),
        ("/api/auth/login", compact(keys), JSON),
        (f"/api/tasks/{lease}/annotations", compact({"mask": bomb}), JSON),
    ]


def attack(base: str, token: str, clients: int, seconds: float, results: Any) -> None:
    """``clients`` threads sending the hostile requests in turn for ``seconds``; puts the
    answers by kind and status (or transport error) on ``results``."""
    bearer = {"Authorization": f"Bearer {token}"}
    lease = httpx.post(f"{base}/api/tasks/next", headers=bearer, timeout=30).json()["id"]
    attacks = hostile_requests(lease)
    counts: Counter[str] = Counter()
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def loop(offset: int) -> None:
        with httpx.Client(base_url=base, timeout=60) as client:
            n = offset
            while time.perf_counter() < deadline:
                path, body, headers = attacks[n % len(attacks)]
                if path.startswith("/api/tasks/") and path != "/api/tasks/1/annotations":
                    headers = {**headers, **bearer}
                kind = ("bearer-runs", "login-keys", "png-bomb")[n % len(attacks)]
                try:
                    answer = str(client.post(path, content=body, headers=headers).status_code)
                except httpx.HTTPError as exc:
                    answer = type(exc).__name__
                with lock:
                    counts[f"{kind} {answer}"] += 1
                n += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put(dict(counts))


async def volunteers(
    base: str, tokens: list[str], seconds: float, interval: float
) -> tuple[list[float], Counter[str]]:
    """Next-task latencies (s) of volunteers taking turns for ``seconds``, one lease due every
    ``interval`` s whatever the answers before it (an open loop), and the answers.

    Each latency counts from when the request was due: a server stalled for 10 s delays every
    request due meanwhile, which a closed loop (send, wait, send) would count once
    (coordinated omission). A request that fails in transit (a timeout after ``TIMEOUT`` s,
    say) counts its time too.
    """
    latencies: list[float] = []
    answers: Counter[str] = Counter()

    async def lease(client: httpx.AsyncClient, turn: int, due: float) -> None:
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        bearer = {"Authorization": f"Bearer {tokens[turn % len(tokens)]}"}
        try:
            leased = await client.post("/api/tasks/next", headers=bearer)
        except httpx.HTTPError as exc:
            latencies.append(time.perf_counter() - due)
            answers[f"next {type(exc).__name__}"] += 1
            return
        latencies.append(time.perf_counter() - due)
        answers[f"next {leased.status_code}"] += 1
        if leased.status_code == 200:
            try:
                url = f"/api/tasks/{leased.json()['id']}/skip"
                answers[f"skip {(await client.post(url, headers=bearer)).status_code}"] += 1
            except httpx.HTTPError as exc:
                answers[f"skip {type(exc).__name__}"] += 1

    async with httpx.AsyncClient(base_url=base, timeout=TIMEOUT) as client:
        start = time.perf_counter() + 0.1
        turns = range(int(seconds / interval))
        await asyncio.gather(*(lease(client, t, start + t * interval) for t in turns))
    return latencies, answers


def p95_ms(samples: list[float]) -> float:
    """The 95th percentile of ``samples`` in milliseconds."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--hostile", type=int, default=4, help="hostile clients at once")
    parser.add_argument("--volunteers", type=int, default=20, help="taking turns, per phase")
    parser.add_argument("--interval", type=float, default=0.05, help="s between leases")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="FILE.svg",
        help="record the server with py-spy under attack (flame graph; .txt: collapsed stacks)",
    )
    parser.add_argument(
        "--url",
        default=os.environ.get(
            "MSCROWD_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    args = parser.parse_args()
    if args.seconds > 120 or args.hostile > 32 or not 1 <= args.volunteers <= 1000:
        parser.error("at most 120 s, 32 hostile clients and 1000 volunteers")
    if not 0.005 <= args.interval <= args.seconds:
        parser.error("--interval between 0.005 s and --seconds")
    with tempfile.TemporaryDirectory() as tmp, fresh_schema(args.url) as db:
        engine = create_db_engine(db)
        upgrade(engine)
        storage = Storage((Path(tmp) / "storage").as_uri())
        # Enough tasks for volunteers who never pause; two sets of them and an attacker.
        n = args.volunteers
        tasks = int(args.seconds / args.interval) + 100
        tokens = seed(engine, storage, tasks=tasks, volunteers=n * 2 + 1)
        engine.dispose()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MSCROWD_")}
        env |= {
            "MSCROWD_DATA_DIR": str(Path(tmp) / "var"),
            "MSCROWD_DATABASE_URL": db,
            "MSCROWD_STORAGE_URL": storage.url,
        }
        cores = os.cpu_count()
        print(f"{args.seconds:.0f} s per phase, {args.hostile} hostile clients, {cores} cores")
        with live_server(env, "--no-worker", timeout=60) as (base, server):
            alone, alone_answers = asyncio.run(
                volunteers(base, tokens[:n], args.seconds, args.interval)
            )
            results: Any = multiprocessing.get_context("spawn").Queue()
            attacker = multiprocessing.get_context("spawn").Process(
                target=attack, args=(base, tokens[-1], args.hostile, args.seconds + 2, results)
            )
            attacker.start()
            time.sleep(1.0)  # the attackers' bodies are built and on their way
            before = cpu_snapshot(server.pid)
            with profiling(server.pid, args.profile, args.seconds):
                attacked, attacked_answers = asyncio.run(
                    volunteers(base, tokens[n : 2 * n], args.seconds, args.interval)
                )
            after = cpu_snapshot(server.pid)
            hostile = results.get(timeout=args.seconds + 120)
            attacker.join(timeout=30)
            alive = server.poll() is None
    rate = 1 / args.interval
    print(f"POST /api/tasks/next, {n} volunteers taking turns, {rate:g} leases/s:")
    print(f"  alone           {quantiles(alone)}  (n={len(alone)})")
    print(f"  under attack    {quantiles(attacked)}  (n={len(attacked)})")
    print(f"  p95 alone {p95_ms(alone):.1f} ms, under attack {p95_ms(attacked):.1f} ms")
    print(f"  volunteer answers alone {dict(sorted(alone_answers.items()))}")
    print(f"  volunteer answers under attack {dict(sorted(attacked_answers.items()))}")
    print(f"  hostile answers {dict(sorted(hostile.items()))}")
    print("under attack:")
    print_cpu(before, after, args.seconds)
    print(f"  server alive at the end: {alive}")


if __name__ == "__main__":
    main()
