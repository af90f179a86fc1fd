"""ML worker throughput: training (slices/s) and pool scoring (slices/s at T = 10), on this
machine's device, written to bench/RESULTS.md with the device named (issue 21).

Training: steps of ``ml.train.train`` (patch sampling, MONAI augmentation, forward, backward)
with a config's network, batch and patch; a training slice is one patch. Anchor, in the same
run: the bare forward + backward + optimiser step of the same network on a fixed batch
already on the device (the compute floor), so the data pipeline's share shows.

Scoring: ``ml.train.score_slices`` over one synthetic case's task slices with T = 10
Monte-Carlo dropout samples, batches of 8 slices, with the device's default chunking (CUDA:
the batch repeated T times in one forward pass; CPU: one pass of 8 per sample), and with all
T copies in one pass. Anchor, in the same run: the floor of any T-sample scoring, a single
deterministic forward pass of the same network per batch (eval mode, no dropout, inference
mode, no scoring) divided by T; the default cannot reach it and the ratio says how close it
comes. The earlier anchor, one forward pass per sample written out, is the CPU default's own
path (ratio 1.00x by construction), so it is printed as a reference column only.

    .venv/bin/python bench/ml_throughput.py [--configs cpu,tiny] [--seconds 30]
"""

import argparse
import time

import numpy as np
import torch
from mlbench import device_name, synthetic_cases, write_section

from ml import models
from ml.config import get_config
from ml.train import score_slices, train
from ml.uncertainty import score_slice


def _bare_steps(config, device, seconds: float) -> float:
    """Slices/s of forward + backward + step on a fixed batch (the compute floor)."""
    model = models.build_model(config).to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    images = torch.randn(
        config.batch_size, config.channels, config.patch, config.patch, device=device
    )
    target = (
        torch.rand(config.batch_size, 1, config.patch, config.patch, device=device) > 0.99
    ).float()
    loss_of = torch.nn.BCEWithLogitsLoss()
    cuda = device.type == "cuda"
    steps, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        optimiser.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cuda):
            loss = loss_of(model(images).float(), target)
        loss.backward()
        optimiser.step()
        steps += 1
    if cuda:
        torch.cuda.synchronize()
    return steps * config.batch_size / (time.perf_counter() - began)


def _sequential_scores(model, case, slices, config, device, samples, batch=8):
    """The anchor: one forward pass per Monte-Carlo sample."""
    from ml.train import _padded_stacks

    models.enable_mc_dropout(model)
    x, y, _ = case.brain.shape
    out = []
    with torch.no_grad():
        for first in range(0, len(slices), batch):
            part = slices[first : first + batch]
            images = _padded_stacks(case, [z for z, _ in part], config.neighbours, device)
            drawn = torch.stack([torch.sigmoid(model(images))[:, 0] for _ in range(samples)])
            maps = drawn[:, :, :x, :y].float().cpu().numpy()
            for k, (z, (x0, y0, x1, y1)) in enumerate(part):
                out.append(score_slice(maps[:, k, x0:x1, y0:y1] * case.brain[x0:x1, y0:y1, z]))
    return out


def _floor_rate(model, case, slices, config, device, samples, batch=8):
    """The anchor: slices/s of one deterministic forward pass per batch, divided by T."""
    from ml.train import _padded_stacks

    model.eval()
    began = time.perf_counter()
    with torch.inference_mode():
        for first in range(0, len(slices), batch):
            part = slices[first : first + batch]
            images = _padded_stacks(case, [z for z, _ in part], config.neighbours, device)
            torch.sigmoid(model(images)).cpu()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(slices) / (time.perf_counter() - began) / samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="cpu,tiny")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--samples", type=int, default=10)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    (case,) = synthetic_cases([7])
    slices = [(z, case.box) for z in case.slices]
    lines = [
        f"ML worker throughput on {device_name(device)}; one synthetic case "
        f"({case.arrays.brain.shape}, {len(slices)} task slices), T = {args.samples}.",
        "",
        "| config | train slices/s | anchor: bare step slices/s | score slices/s (default) "
        "| all T in one pass | one pass per sample, written out | anchor: 1 plain pass / T "
        "| default / anchor |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in args.configs.split(","):
        config = get_config(name, minutes=args.seconds / 60, max_steps=10_000_000)
        trained = train([case.arrays], config, device)
        train_rate = trained.steps * config.batch_size / trained.seconds
        bare = _bare_steps(config, device, min(args.seconds, 20.0))
        model = trained.model
        began = time.perf_counter()
        batched = score_slices(model, case.arrays, slices, config, device, samples=args.samples)
        batched_rate = len(slices) / (time.perf_counter() - began)
        began = time.perf_counter()
        score_slices(model, case.arrays, slices, config, device, samples=args.samples, chunk=80)
        one_pass_rate = len(slices) / (time.perf_counter() - began)
        began = time.perf_counter()
        anchor = _sequential_scores(model, case.arrays, slices, config, device, args.samples)
        anchor_rate = len(slices) / (time.perf_counter() - began)
        assert len(anchor) == len(batched)
        floor = _floor_rate(model, case.arrays, slices, config, device, args.samples)
        lines.append(
            f"| {name} (patch {config.patch}, batch {config.batch_size}) | {train_rate:.1f} | "
            f"{bare:.1f} | {batched_rate:.2f} | {one_pass_rate:.2f} | {anchor_rate:.2f} | "
            f"{floor:.2f} | {batched_rate / floor:.2f}x |"
        )
        print(lines[-1], flush=True)
    text = "\n".join(lines)
    print(text)
    key = "throughput-cuda" if device.type == "cuda" else "throughput-cpu"
    write_section(key, text)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
