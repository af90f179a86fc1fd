"""Load test: V volunteers labelling against a live ``mscrowd serve`` on PostgreSQL.

Each volunteer (a coroutine with its own bearer token and HTTP connection) starts within the
first ``--ramp`` s and loops: lease a task (``POST /api/tasks/next``), think for an
exponentially distributed time (mean ``--think`` s: painting, with the lease held), submit a
small RLE mask with an Idempotency-Key (``--think-after-submit`` pauses here instead).
It prints submits/s, p50/p95/p99 latency of next-task and submit (all and after the ramp), and
answers by status; then checks integrity in the database (every acknowledged submission stored
exactly once, no task over-labelled, no mask file without its row or row without its file);
then runs ``pgbench -N`` against the same PostgreSQL server and prints the ratio of the two.

Usage (loopback only; bounded in time and count):

    .venv/bin/python bench/load.py --volunteers 200 --seconds 30
    .venv/bin/python bench/load.py --volunteers 1000 --ramp 5 --think 10 --seconds 60
    [--workers 2] [--url postgresql+psycopg://postgres@127.0.0.1:5432/test] [--no-pgbench]
"""

import argparse
import asyncio
import gc
import os
import random
import re
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvloop
from sqlalchemy import Engine, func
from sqlmodel import Session, select

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from backend.annotations.models import Annotation  # noqa: E402
from backend.core.db import create_db_engine  # noqa: E402
from backend.core.migrations import upgrade  # noqa: E402
from backend.core.storage import Storage  # noqa: E402
from backend.tasks.models import Assignment, Task  # noqa: E402
from bench.load_measure import (  # noqa: E402
    cpu_snapshot,
    pgbench,
    print_cpu,
    profiling,
    quantiles,
)
from bench.load_seed import HEIGHT, WIDTH, fresh_schema, seed  # noqa: E402
from tests.live import live_server  # noqa: E402


@dataclass
class LoadReport:
    seconds: float
    ramp: float
    next_latency: list[tuple[float, float]] = field(default_factory=list)  # (start, seconds)
    submit_latency: list[tuple[float, float]] = field(default_factory=list)
    # The same requests as the server timed them (Server-Timing: admission queue + app).
    next_server: list[tuple[float, float]] = field(default_factory=list)
    submit_server: list[tuple[float, float]] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    acknowledged: list[tuple[int, str]] = field(default_factory=list)  # (lease id, key)

    @property
    def submits_per_second(self) -> float:
        return len(self.acknowledged) / self.seconds

    def server_errors(self) -> int:
        return sum(n for key, n in self.statuses.items() if key.split()[-1].startswith("5"))


def _mask(rng: random.Random) -> dict[str, object]:
    # A short horizontal lesion somewhere on the slice, as a volunteer would paint.
    start = rng.randrange(WIDTH * HEIGHT - 10)
    length = rng.randrange(1, 10)
    return {
        "encoding": "rle",
        "width": WIDTH,
        "height": HEIGHT,
        "counts": [start, length, WIDTH * HEIGHT - start - length],
    }


def _server_seconds(response: httpx.Response) -> float:
    """Queue plus app time from the answer's Server-Timing header (0 when absent)."""
    found = re.findall(r"dur=([0-9.]+)", response.headers.get("server-timing", ""))
    return sum(float(ms) for ms in found) / 1000


async def _volunteer(
    base: str,
    token: str,
    report: LoadReport,
    t0: float,
    start_at: float,
    think: float,
    paint: bool,
) -> None:
    rng = random.Random(token)
    deadline = t0 + report.seconds

    async def pause() -> bool:
        """Think for a while (never past the end of the run); False when the run is over."""
        if think > 0:
            await asyncio.sleep(min(rng.expovariate(1 / think), deadline - time.perf_counter()))
        return time.perf_counter() < deadline

    await asyncio.sleep(max(0.0, t0 + start_at - time.perf_counter()))
    headers = {"Authorization": f"Bearer {token}"}
    # Plain HTTP on loopback: no TLS context (building one per client cost the generator more
    # CPU than all its requests). Keep-alive like a browser's (the server keeps idle
    # connections 75 s by default).
    transport = httpx.AsyncHTTPTransport(verify=False, limits=httpx.Limits(keepalive_expiry=60.0))
    async with httpx.AsyncClient(
        base_url=base, headers=headers, timeout=httpx.Timeout(60.0), transport=transport
    ) as client:
        while time.perf_counter() < deadline:
            try:
                begin = time.perf_counter()
                leased = await client.post("/api/tasks/next")
                report.next_latency.append((begin - t0, time.perf_counter() - begin))
                report.next_server.append((begin - t0, _server_seconds(leased)))
                report.statuses[f"next {leased.status_code}"] += 1
                if leased.status_code == 204:
                    return  # nothing left for this volunteer
                if leased.status_code != 200:
                    await asyncio.sleep(1.0)
                    continue
                task_id = leased.json()["id"]
                if paint and not await pause():
                    return  # the run ended while this volunteer was painting
                key = uuid.uuid4().hex
                begin = time.perf_counter()
                sent = await client.post(
                    f"/api/tasks/{task_id}/annotations",
                    json={"mask": _mask(rng), "duration_ms": 6000},  # a plausible painting time
                    headers={"Idempotency-Key": key},
                )
                report.submit_latency.append((begin - t0, time.perf_counter() - begin))
                report.submit_server.append((begin - t0, _server_seconds(sent)))
                report.statuses[f"submit {sent.status_code}"] += 1
                if sent.status_code in (200, 201):
                    report.acknowledged.append((task_id, key))
            except httpx.HTTPError as exc:
                report.errors[type(exc).__name__] += 1
                await asyncio.sleep(1.0)
            if not paint and not await pause():
                return


async def run_load(
    base: str,
    tokens: list[str],
    *,
    seconds: float,
    think: float = 0.0,
    ramp: float = 0.0,
    paint: bool = True,
) -> LoadReport:
    """Run the volunteers for ``seconds`` and report what they saw.

    ``paint``: the think time falls between receiving a task and submitting it (painting, as
    in the studio); otherwise between a submission and the next request.
    """
    report = LoadReport(seconds=seconds, ramp=ramp)
    starts = [ramp * i / max(1, len(tokens)) for i in range(len(tokens))]
    # The generator's own garbage collections paused its event loop for up to 300 ms with a
    # thousand clients, and every request in flight then looked that much slower: nothing
    # built before the run is collected, and nothing at all during it.
    gc.collect()
    gc.freeze()
    gc.disable()
    t0 = time.perf_counter()
    try:
        await asyncio.gather(
            *(
                _volunteer(base, tok, report, t0, s, think, paint)
                for tok, s in zip(tokens, starts, strict=True)
            )
        )
    finally:
        gc.enable()
        gc.unfreeze()
    report.seconds = min(seconds, time.perf_counter() - t0)
    return report


def integrity(engine: Engine, storage: Storage, report: LoadReport) -> list[str]:
    """What is wrong in the database and storage after the run (empty: all consistent)."""
    problems = []
    with Session(engine) as session:
        rows = session.exec(
            select(Annotation.task_id, Annotation.user_id, Annotation.mask_key)
        ).all()
        # Clients know a task by its lease (assignment) id; the answers are stored by task.
        task_of = dict(session.exec(select(Assignment.id, Assignment.task_id)).all())
        over = session.exec(
            select(Task.id)
            .join(Annotation, Annotation.task_id == Task.id)  # type: ignore[arg-type]
            .group_by(Task.id, Task.required_labels)  # type: ignore[arg-type]
            .having(func.count() > Task.required_labels)
        ).all()
    pairs = Counter((task, user) for task, user, _ in rows)
    if any(n > 1 for n in pairs.values()):
        problems.append("a volunteer has two annotations of one task")
    if over:
        problems.append(f"{len(over)} task(s) have more labels than required")
    stored_tasks = Counter(task for task, _, _ in rows)
    acked_tasks = Counter(task_of.get(lease) for lease, _ in report.acknowledged)
    short = [t for t, n in acked_tasks.items() if stored_tasks[t] < n]
    if short:
        problems.append(f"{len(short)} acknowledged submission(s) are not stored")
    if len(rows) != len(report.acknowledged):
        problems.append(f"{len(rows)} annotations stored for {len(report.acknowledged)} acks")
    keys = {key for _, _, key in rows}
    files = set(storage.list("annotations"))
    if files - keys:
        problems.append(f"{len(files - keys)} mask file(s) without an annotation")
    if keys - files:
        problems.append(f"{len(keys - files)} annotation(s) without a mask file")
    return problems


def print_report(report: LoadReport) -> None:
    """The figures of one run, all requests and those after the ramp."""
    print(
        f"submits/s {report.submits_per_second:7.1f}  ({len(report.acknowledged)} in "
        f"{report.seconds:.1f} s)"
    )
    for name, samples, served in (
        ("next", report.next_latency, report.next_server),
        ("submit", report.submit_latency, report.submit_server),
    ):
        steady = [s for begin, s in samples if begin >= report.ramp]
        print(f"  {name:<6} all    {quantiles([s for _, s in samples])}  (n={len(samples)})")
        if report.ramp:
            print(f"  {name:<6} steady {quantiles(steady)}  (n={len(steady)})")
        in_server = [s for begin, s in served if begin >= report.ramp and s > 0]
        if in_server:
            print(f"  {name:<6} server {quantiles(in_server)}  (Server-Timing, after any ramp)")
    print(f"  answers {dict(sorted(report.statuses.items()))}")
    print(f"  transport errors {dict(report.errors) or 'none'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volunteers", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--think", type=float, default=0.0, help="mean think time (s)")
    parser.add_argument(
        "--think-after-submit",
        action="store_true",
        help="think between a submission and the next task instead of while painting",
    )
    parser.add_argument("--ramp", type=float, default=0.0, help="arrivals spread over (s)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--tasks", type=int, default=0, help="default: enough for the run")
    parser.add_argument("--pgbench-seconds", type=int, default=10)
    parser.add_argument("--no-pgbench", action="store_true")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="FILE.svg",
        help="record the server with py-spy during the run (flame graph; .txt: collapsed stacks)",
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="MSCROWD_X=VALUE",
        help="a setting for the server (repeatable), e.g. MSCROWD_DB_POOL_SIZE=2",
    )
    parser.add_argument(
        "--url",
        default=os.environ.get(
            "MSCROWD_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    args = parser.parse_args()
    if args.volunteers > 5000 or args.seconds > 600:
        parser.error("at most 5000 volunteers and 600 s")
    tasks = args.tasks or int(max(1000, 600 * args.seconds / 3 + args.volunteers))
    with tempfile.TemporaryDirectory() as tmp, fresh_schema(args.url) as db:
        engine = create_db_engine(db)
        upgrade(engine)
        storage = Storage((Path(tmp) / "storage").as_uri())
        tokens = seed(engine, storage, tasks=tasks, volunteers=args.volunteers)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MSCROWD_")}
        env |= {
            "MSCROWD_DATA_DIR": str(Path(tmp) / "var"),
            "MSCROWD_DATABASE_URL": db,
            "MSCROWD_STORAGE_URL": storage.url,
            "MSCROWD_SERVER_TIMING": "true",
        }
        env |= dict(item.split("=", 1) for item in args.server_env)
        print(
            f"{args.volunteers} volunteers, {args.seconds:.0f} s, think {args.think} s "
            f"({'after submitting' if args.think_after_submit else 'while painting'}), ramp "
            f"{args.ramp} s, {args.workers} server process(es), {tasks} tasks, "
            f"{os.cpu_count()} cores"
        )
        with live_server(env, "--no-worker", "--workers", str(args.workers), timeout=60) as (
            base,
            server,
        ):
            before = cpu_snapshot(server.pid)
            with profiling(server.pid, args.profile, args.seconds):
                # uvloop (uvicorn's own loop, already installed) keeps the generator's share of
                # the shared cores down.
                report = uvloop.run(
                    run_load(
                        base,
                        tokens,
                        seconds=args.seconds,
                        think=args.think,
                        ramp=args.ramp,
                        paint=not args.think_after_submit,
                    )
                )
            after = cpu_snapshot(server.pid)
        print_report(report)
        print_cpu(before, after, report.seconds)
        problems = integrity(engine, storage, report)
        print(f"integrity: {'OK' if not problems else '; '.join(problems)}")
        engine.dispose()
    if not args.no_pgbench:
        tps = pgbench(args.url, args.pgbench_seconds)
        if tps is None:
            print("pgbench -N: not available")
        else:
            print(
                f"anchor: pgbench -N on the same server {tps:,.0f} tps; the app's submits/s are "
                f"{report.submits_per_second / tps:.1%} of it"
            )
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
