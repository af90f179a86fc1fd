"""Load test: V volunteers labelling against a live ``mscrowd serve`` on PostgreSQL.

The crowd as it really comes (``--crowd realistic``, the default; ``bench/load_seed.py`` and
``bench/load_crowd.py``): new accounts on the project's gold schedule (four in ten of their
first answers are gold, scored, with feedback), every image the studio loads per lease (seven:
three contrasts and four neighbours) and the gold feedback overlay, honest volunteers who
paint what the FLAIR shows, and ``--spammers`` (10 %) who paint at random and are suspended by
gold. ``--crowd plain``: the bare loop (small slices, no gold, no images, random strokes).

Each volunteer starts within the first ``--ramp`` s and loops: lease a task, load its images,
think for an exponentially distributed time (mean ``--think`` s: painting, with the lease
held), submit an RLE mask with an Idempotency-Key (``--think-after-submit`` pauses after it
instead). It prints submits/s; per request kind (next, image, submit, feedback) the count,
p50/p95/p99 latency (all and after the ramp) and the server's own time (Server-Timing) with its
share of the server's busy time; answers by status; gold Dice of honest volunteers and
spammers and how many of each were suspended. Then it checks integrity in the database (every
acknowledged submission stored exactly once, no task over-labelled, every gold answer scored
once, no mask file without its row or row without its file) and runs ``pgbench -N`` against
the same PostgreSQL server, printing the ratio of the two.

Usage (loopback only; bounded in time and count):

    .venv/bin/python bench/load.py --volunteers 200 --seconds 30 --workers 2
    .venv/bin/python bench/load.py --volunteers 1000 --ramp 5 --think 10 --seconds 60 --workers 2
    [--crowd plain] [--spammers 0.1] [--url postgresql+psycopg://...] [--no-pgbench]
    [--broker redis://127.0.0.1:6379/14] [--server-env MSCROWD_DB_POOL_SIZE=10]
    [--profile FILE.svg]
"""

import argparse
import asyncio
import gc
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import redis
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
from backend.quality.models import GoldScore  # noqa: E402
from backend.tasks.models import Assignment, Task, TaskKind  # noqa: E402
from bench.load_crowd import KINDS, Crowd, LoadReport, volunteer  # noqa: E402
from bench.load_measure import (  # noqa: E402
    cpu_snapshot,
    pgbench,
    print_cpu,
    profiling,
    quantiles,
)
from bench.load_seed import fresh_schema, seed  # noqa: E402
from tests.live import live_server  # noqa: E402


async def run_load(
    base: str,
    tokens: list[str],
    *,
    seconds: float,
    think: float = 0.0,
    ramp: float = 0.0,
    paint: bool = True,
    crowd: Crowd | None = None,
) -> LoadReport:
    """Run the volunteers for ``seconds`` and report what they saw.

    ``paint``: the think time falls between receiving a task and submitting it (painting, as
    in the studio); otherwise between a submission and the next request.
    """
    report = LoadReport(seconds=seconds, ramp=ramp)
    crowd = crowd or Crowd()
    report.spammers = set(range(round(crowd.spammers * len(tokens))))
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
                volunteer(base, tok, n, report, t0, s, think, paint, crowd)
                for n, (tok, s) in enumerate(zip(tokens, starts, strict=True))
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
        gold_answers = session.exec(
            select(func.count())
            .select_from(Annotation)
            .join(Task, Task.id == Annotation.task_id)  # type: ignore[arg-type]
            .where(Task.kind == TaskKind.gold)
        ).one()
        scored = session.exec(select(func.count()).select_from(GoldScore)).one()
        over = session.exec(
            select(Task.id)
            .join(Annotation, Annotation.task_id == Task.id)  # type: ignore[arg-type]
            # Crowd tasks only: gold and repeats are answered by each volunteer they serve.
            .where(Task.kind == TaskKind.normal)
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
    if gold_answers != scored:
        problems.append(f"{gold_answers} gold answers but {scored} gold scores")
    keys = {key for _, _, key in rows}
    files = set(storage.list("annotations"))
    if files - keys:
        problems.append(f"{len(files - keys)} mask file(s) without an annotation")
    if keys - files:
        problems.append(f"{len(keys - files)} annotation(s) without a mask file")
    return problems


def print_report(report: LoadReport) -> None:
    """The figures of one run: per request kind, all requests and those after the ramp, and
    the server's own time (its sum over the run's busy time: what each kind costs)."""
    print(
        f"submits/s {report.submits_per_second:7.1f}  ({len(report.acknowledged)} in "
        f"{report.seconds:.1f} s)"
    )
    busy = sum(served for kind in KINDS for _, _, served in report.samples[kind])
    for kind in KINDS:
        samples = report.samples[kind]
        if not samples:
            continue
        print(f"  {kind:<8} all    {quantiles([s for _, s, _ in samples])}  (n={len(samples)})")
        steady = [s for begin, s, _ in samples if begin >= report.ramp]
        if report.ramp:
            print(f"  {kind:<8} steady {quantiles(steady)}  (n={len(steady)})")
        served = [s for begin, _, s in samples if begin >= report.ramp and s > 0]
        if served:
            share = sum(s for _, _, s in samples) / busy if busy else 0
            print(
                f"  {kind:<8} server {quantiles(served)}  (Server-Timing; "
                f"{share:.0%} of server time)"
            )
    print(f"  answers {dict(sorted(report.statuses.items()))}")
    print(f"  transport errors {dict(report.errors) or 'none'}")
    for who in ("honest", "spammer"):
        dice = report.gold_dice[who]
        if dice:
            print(
                f"  gold answers of {who} volunteers: {len(dice)}, median Dice "
                f"{statistics.median(dice):.2f}"
            )
    if report.spammers or report.suspended:
        caught = len(report.suspended & report.spammers)
        wrongly = len(report.suspended - report.spammers)
        print(
            f"  suspended: {caught} of {len(report.spammers)} spammers, {wrongly} honest "
            "volunteer(s)"
        )


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
    parser.add_argument(
        "--crowd",
        choices=("realistic", "plain"),
        default="realistic",
        help="realistic: gold, images, spammers (default); plain: the bare loop",
    )
    parser.add_argument("--spammers", type=float, default=0.1, help="share (realistic crowd)")
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
        "--broker",
        default=os.environ.get("MSCROWD_BENCH_BROKER_URL", "redis://127.0.0.1:6379/14"),
        help="the server's Celery broker, as in production (Redis; a database of its own: "
        "emptied after the run, since no worker consumes the fusion jobs); '' for the "
        "embedded default",
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
        realistic = args.crowd == "realistic"
        crowd = Crowd.realistic(args.spammers) if realistic else Crowd()
        tokens = seed(engine, storage, tasks=tasks, volunteers=args.volunteers, realistic=realistic)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MSCROWD_")}
        env |= {
            "MSCROWD_DATA_DIR": str(Path(tmp) / "var"),
            "MSCROWD_DATABASE_URL": db,
            "MSCROWD_STORAGE_URL": storage.url,
            "MSCROWD_SERVER_TIMING": "true",
            "MSCROWD_BROKER_URL": args.broker,
        }
        env |= dict(item.split("=", 1) for item in args.server_env)
        print(
            f"{args.crowd} crowd ({crowd}), {args.volunteers} volunteers, "
            f"{args.seconds:.0f} s, think {args.think} s "
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
                        crowd=crowd,
                    )
                )
            after = cpu_snapshot(server.pid)
        print_report(report)
        print_cpu(before, after, report.seconds)
        problems = integrity(engine, storage, report)
        print(f"integrity: {'OK' if not problems else '; '.join(problems)}")
        engine.dispose()
        if args.broker.startswith("redis://"):
            redis.Redis.from_url(args.broker).flushdb()
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
