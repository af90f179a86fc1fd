"""Shared parts of the ML benchmarks: synthetic cases prepared exactly as the import prepares
them (``backend.imaging.preprocess``, the int16 storage round trip included), a benchmark
training config, and writing a section of bench/RESULTS.md."""

import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.imaging.preprocess import PreparedCase, prepare_case  # noqa: E402
from backend.imaging.synthetic import synthesize_case  # noqa: E402
from ml.config import TrainConfig  # noqa: E402
from ml.data import CaseArrays  # noqa: E402
from ml.jobs import arrays_with_reference  # noqa: E402

RESULTS = ROOT / "bench" / "RESULTS.md"
Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class BenchCase:
    arrays: CaseArrays  # every axial slice labelled with the reference mask
    slices: list[int]  # the axial slices the import turns into tasks
    box: Box  # their crop box (what volunteers see)
    candidates: dict[int, float]  # FLAIR-hyperintense share per task slice


def prepared_case(prepared: PreparedCase, name: str) -> BenchCase:
    return BenchCase(
        arrays=arrays_with_reference(name, prepared),
        slices=[s.index for s in prepared.slices],
        box=prepared.crop,
        candidates={s.index: s.candidate_fraction for s in prepared.slices},
    )


def synthetic_cases(seeds: list[int]) -> list[BenchCase]:
    """The demo generator's cases (``backend.imaging.synthetic``), as imported."""
    return [prepared_case(prepare_case(synthesize_case(s).source), f"synthetic{s}") for s in seeds]


def only_slices(case: CaseArrays, zs: set[int]) -> CaseArrays:
    """``case`` labelled on slices ``zs`` only."""
    labelled = np.zeros(case.labelled.shape, dtype=bool)
    labelled[sorted(zs)] = True
    return replace(case, labelled=labelled)


def bench_config(steps: int, seed: int = 0) -> TrainConfig:
    """The cpu config's network at half width, a fixed number of steps (not a time budget:
    every strategy and label source gets the same training whatever the machine's load)."""
    return TrainConfig(
        name="bench",
        features=(8, 8, 16, 32, 64, 8),
        patch=64,
        batch_size=8,
        minutes=1e6,
        max_steps=steps,
        mc_samples=10,
        # Without the moving average of weights: the active-learning and crowd-training
        # figures in bench/RESULTS.md were measured so.
        ema=0.0,
        seed=seed,
    )


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(device)}"
    import os

    return (
        f"CPU: {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )


def write_section(name: str, text: str) -> None:
    """Replace (or append) the section between ``<!-- name -->`` markers of RESULTS.md."""
    begin, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    block = f"{begin}\n{text.strip()}\n{end}"
    current = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    updated = (
        pattern.sub(lambda _m: block, current)
        if pattern.search(current)
        else (current.rstrip() + "\n\n" + block + "\n")
    )
    RESULTS.write_text(updated)
