"""What the load test measures beside the requests (``bench/load.py``, ``bench/hostile.py``):
latency quantiles, the CPU each process used, a py-spy profile of the server, and the
``pgbench`` anchor on the same PostgreSQL server."""

import os
import re
import shutil
import statistics
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url


def pgbench(url: str, seconds: int, clients: int = 8) -> float | None:
    """tps of ``pgbench -N`` (simple updates) on the same server, in its own database."""
    parsed = make_url(url)
    env = {**os.environ, "PGPASSWORD": parsed.password or ""}
    conn = ["-h", parsed.host or "127.0.0.1", "-p", str(parsed.port or 5432)]
    conn += ["-U", parsed.username or "postgres"]
    database = "mscrowd_pgbench"
    subprocess.run(["createdb", *conn, database], env=env, capture_output=True)
    try:
        init = subprocess.run(
            ["pgbench", *conn, "-i", "-q", "-s", "1", database], env=env, capture_output=True
        )
        if init.returncode != 0:
            return None
        clients_args = ["-c", str(clients), "-j", "2", "-T", str(seconds)]
        run = subprocess.run(
            ["pgbench", *conn, "-N", "-n", *clients_args, database],
            env=env,
            capture_output=True,
            text=True,
        )
    finally:
        subprocess.run(["dropdb", *conn, database], env=env, capture_output=True)
    found = re.search(r"tps = ([0-9.]+)", run.stdout)
    return float(found.group(1)) if found else None


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[str, int, float, float] | None:
    """(command name, parent pid, CPU seconds used, CPU seconds of its reaped children) of a
    process, None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    own = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return name, int(fields[1]), own, (int(fields[13]) + int(fields[14])) / CLOCK_TICKS


def cpu_snapshot(server_pid: int) -> dict[str, float]:
    """CPU seconds used so far by the server's process tree, this load generator, PostgreSQL's
    processes on this machine, and the whole machine (busy time of all cores)."""
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (found := _stat(int(entry))) is not None:
            stats[int(entry)] = found
    server = {server_pid}
    grew = True
    while grew:  # uvicorn's worker processes are the server's children
        grew = False
        for pid, (_, parent, _, _) in stats.items():
            if parent in server and pid not in server:
                server.add(pid)
                grew = True
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    ticks = [int(f) for f in fields]
    busy = (sum(ticks[:8]) - ticks[3] - ticks[4]) / CLOCK_TICKS  # minus idle and iowait
    postgres = {pid for pid, found in stats.items() if found[0] == "postgres"}
    # A backend's CPU outlives it in its parent's count of reaped children.
    postmasters = {pid for pid in postgres if stats[pid][1] not in postgres}
    return {
        "server": sum(stats[p][2] for p in server),
        "load generator": stats[os.getpid()][2],
        "postgres": sum(stats[p][2] for p in postgres) + sum(stats[p][3] for p in postmasters),
        "machine": busy,
    }


def print_cpu(before: dict[str, float], after: dict[str, float], seconds: float) -> None:
    """Cores used by each part during the run (of os.cpu_count())."""
    parts = "  ".join(f"{name} {(after[name] - before[name]) / seconds:.2f}" for name in before)
    print(f"  cores used: {parts}  (of {os.cpu_count()})")


@contextmanager
def profiling(pid: int, path: Path | None, seconds: float) -> Iterator[None]:
    """Sample the server process (and its workers) with py-spy while the block runs."""
    if path is None:
        yield
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    kind = "raw" if path.suffix == ".txt" else "flamegraph"
    # --gil: only samples holding the GIL, i.e. where the server spends CPU, not where it waits.
    command = [spy, "record", "--pid", str(pid), "--subprocesses", "--gil", "--rate", "200"]
    command += ["--duration", str(int(seconds)), "--format", kind, "--output", str(path)]
    recorder = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield
    finally:
        _, err = recorder.communicate(timeout=seconds + 60)
        if recorder.returncode != 0:
            print(f"py-spy failed: {err.decode().strip()[-300:]}")
        else:
            print(f"profile: {path}")


def quantiles(samples: list[float]) -> str:
    """p50, p95 and p99 of ``samples`` (seconds) in milliseconds, as one line."""
    if len(samples) < 2:
        return "n/a"
    q = statistics.quantiles(samples, n=100)
    return f"p50 {q[49] * 1000:6.1f}  p95 {q[94] * 1000:6.1f}  p99 {q[98] * 1000:6.1f} ms"
