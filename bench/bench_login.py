"""Logins under a burst, and whether an answer's timing tells unknown emails from wrong passwords.

Runs real ``mscrowd serve`` processes on a fresh PostgreSQL schema and fires logins at them
from threads in this process (the load generator shares the machine's cores).

1. Burst: N logins with the right password, C at a time. Measured for the bounded server
   (argon2 slots = cores, the default) and, as the anchor in the same run, for the same server
   with the bound lifted (slots = C, as before issue 17: every request hashed at once).
   Prints median and p95 latency, answers by status, and the server's peak resident memory.
2. Timing: alternating wrong-password logins for known accounts and logins for unknown
   emails (each account and email tried once, so no throttle is involved); prints both medians.

Usage: .venv/bin/python bench/bench_login.py [--logins 200] [--concurrency 40]
    [--url postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.load_seed import fresh_schema  # noqa: E402
from tests.live import CLI, cli_env, live_server  # noqa: E402

PASSWORD = "correct horse battery"


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _server_pid(launcher_pid: int) -> int:
    # `mscrowd serve` runs uvicorn in its own process; the launcher is that process.
    return launcher_pid


def _burst(base: str, logins: int, concurrency: int) -> tuple[list[float], Counter[int]]:
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    todo = iter(range(logins))

    def worker() -> None:
        with httpx.Client(base_url=base, timeout=120) as client:
            while True:
                with lock:
                    if next(todo, None) is None:
                        return
                start = time.perf_counter()
                status = client.post(
                    "/api/auth/login", json={"email": "burst@example.org", "password": PASSWORD}
                ).status_code
                with lock:
                    latencies.append(time.perf_counter() - start)
                    statuses[status] += 1

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, statuses


def _run_burst(url: str, label: str, slots: int, logins: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, fresh_schema(url) as db:
        env = cli_env(
            Path(tmp) / "var",
            MSCROWD_DATABASE_URL=db,
            MSCROWD_PASSWORD_HASH_CONCURRENCY=str(slots),
            MSCROWD_PASSWORD_HASH_QUEUE=str(max(logins, 64)),
            MSCROWD_PASSWORD_HASH_WAIT_SECONDS="300",
        )
        subprocess.run([*CLI, "migrate"], env=env, check=True, capture_output=True)
        with live_server(env, "--no-worker") as (base, server):
            httpx.post(
                f"{base}/api/auth/signup",
                json={"email": "burst@example.org", "password": PASSWORD},
            ).raise_for_status()
            start = time.perf_counter()
            latencies, statuses = _burst(base, logins, concurrency)
            wall = time.perf_counter() - start
            rss = _peak_rss_mib(_server_pid(server.pid))
        q = statistics.quantiles(latencies, n=20)
        print(
            f"{label:<34} slots={slots:<3} median {statistics.median(latencies):6.2f} s  "
            f"p95 {q[18]:6.2f} s  wall {wall:6.1f} s  {len(latencies) / wall:5.1f} logins/s  "
            f"peak RSS {rss:6.0f} MiB  answers {dict(statuses)}"
        )


def _timing(url: str, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, fresh_schema(url) as db:
        env = cli_env(
            Path(tmp) / "var",
            MSCROWD_DATABASE_URL=db,
            MSCROWD_SIGNUPS_PER_ADDRESS_PER_HOUR="100000",
            MSCROWD_LOGIN_FREE_FAILURES_ADDRESS="100000",
        )
        subprocess.run([*CLI, "migrate"], env=env, check=True, capture_output=True)
        with live_server(env, "--no-worker") as (base, _server), httpx.Client(base_url=base) as c:
            for n in range(rounds):
                c.post(
                    "/api/auth/signup", json={"email": f"k{n}@example.org", "password": PASSWORD}
                )
            c.cookies.clear()
            known: list[float] = []
            unknown: list[float] = []
            answers: Counter[tuple[str, int]] = Counter()
            for n in range(rounds):
                for kind, email, sink in (
                    ("known", f"k{n}@example.org", known),
                    ("unknown", f"u{n}@example.org", unknown),
                ):
                    start = time.perf_counter()
                    r = c.post("/api/auth/login", json={"email": email, "password": "wrong guess"})
                    sink.append(time.perf_counter() - start)
                    answers[(kind, r.status_code)] += 1
        print(
            f"timing: wrong password (known email) median {statistics.median(known) * 1000:6.1f} ms"
            f", unknown email median {statistics.median(unknown) * 1000:6.1f} ms "
            f"(ratio {statistics.median(unknown) / statistics.median(known):.3f}); "
            f"answers {dict(answers)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument(
        "--url",
        default=os.environ.get(
            "MSCROWD_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    args = parser.parse_args()
    cores = os.cpu_count() or 2
    print(f"{args.logins} logins, {args.concurrency} at a time, on {cores} cores")
    _run_burst(args.url, "bounded (default)", cores, args.logins, args.concurrency)
    _run_burst(
        args.url, "anchor: unbounded (as before)", args.concurrency, args.logins, args.concurrency
    )
    _timing(args.url, args.rounds)


if __name__ == "__main__":
    main()
