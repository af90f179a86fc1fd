"""Training, prediction and evaluation of the segmenter, pure of the database and storage:
``CaseArrays`` in, a trained model and its figures out (``ml.jobs`` does the I/O).

Training draws lesion-centred patches (``data.PatchSampler``), augments them with MONAI's
transforms (flips, a small affine, bias field, intensity scaling, noise), and minimises
MONAI's Dice + cross-entropy loss against the soft targets (crowd P(lesion), or 0/1 expert
masks; the Dice term over the whole batch) with AdamW under a polynomial learning-rate decay
until the time budget or the step limit, keeping an exponential moving average of the weights
(``config.ema``; PyTorch's ``AveragedModel``), which is the model returned. On CUDA it runs
in bfloat16 autocast with channels-last tensors; on the CPU in float32.

Prediction segments every axial slice of a case, keeps the brain, thresholds at 0.5 and
removes components smaller than ``min_lesion_pixels`` voxels (specks the lesion-wise metric
would count as false alarms). Evaluation calls ``backend.quality.metrics`` (Dice and MSSEG
lesion-wise F1), the same code that scores volunteers.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from monai.losses.dice import DiceCELoss
from monai.transforms.compose import Compose
from monai.transforms.croppad.dictionary import SpatialPadd
from monai.transforms.intensity.dictionary import (
    RandBiasFieldd,
    RandGaussianNoised,
    RandScaleIntensityd,
)
from monai.transforms.spatial.dictionary import RandAffined, RandFlipd
from numpy.typing import NDArray
from scipy import ndimage
from torch import nn
from torch.optim.swa_utils import AveragedModel

from backend.quality.metrics import dice, lesion_detection
from ml.config import TrainConfig
from ml.data import CaseArrays, PatchSampler, stack
from ml.models import build_model, mc_probabilities
from ml.uncertainty import SliceScores, score_slice

# The learning rate never decays below this share of the config's.
MIN_LR_SHARE = 0.02
# Steps whose pace decides whether the time budget or the step limit ends training.
PACE_STEPS = 20


@dataclass(frozen=True)
class Progress:
    step: int
    steps: int  # the step limit (training may stop earlier, at the time budget)
    seconds: float
    budget_seconds: float
    eta_seconds: float  # until the step limit or the time budget, whichever comes first
    loss: float

    @property
    def percent(self) -> float:
        """How far training is towards whichever ends it first: the steps or the time."""
        done = max(self.step / self.steps, self.seconds / self.budget_seconds)
        return 100.0 * min(done, 1.0)


@dataclass
class Trained:
    model: nn.Module
    steps: int
    seconds: float
    losses: list[float]  # per step
    device: str


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA when there is one, else the CPU; ``cuda`` without a GPU is an error."""
    if name not in ("auto", "cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}; use auto, cpu or cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("no CUDA device here; use --device cpu or auto")
    cuda = name == "cuda" or (name == "auto" and torch.cuda.is_available())
    return torch.device("cuda" if cuda else "cpu")


def augmentation(seed: int) -> Compose:
    """MONAI's dictionary transforms for one patch {"image": [C, H, W], "label": [1, H, W]}."""
    both = ["image", "label"]
    transforms = Compose(
        [
            RandFlipd(keys=both, prob=0.5, spatial_axis=0),
            RandFlipd(keys=both, prob=0.5, spatial_axis=1),
            RandAffined(
                keys=both,
                prob=0.3,
                rotate_range=0.2,
                scale_range=0.1,
                mode=("bilinear", "bilinear"),
                padding_mode="zeros",
            ),
            RandBiasFieldd(keys=["image"], prob=0.3, coeff_range=(0.0, 0.1)),
            RandScaleIntensityd(keys=["image"], factors=0.1, prob=0.3),
            RandGaussianNoised(keys=["image"], prob=0.3, std=0.05),
        ]
    )
    transforms.set_random_state(seed=seed)
    return transforms


def _augment(
    transforms: Compose, inputs: NDArray[np.float32], targets: NDArray[np.float32]
) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for image, label in zip(inputs, targets, strict=True):
        done = transforms({"image": image, "label": label})
        images.append(torch.as_tensor(np.asarray(done["image"]), dtype=torch.float32))
        labels.append(torch.as_tensor(np.asarray(done["label"]), dtype=torch.float32))
    return torch.stack(images), torch.stack(labels).clamp(0.0, 1.0)


# AveragedModel's parameter lists.
Tensors = tuple[torch.Tensor, ...] | list[torch.Tensor]


def _ema(
    decay: float,
) -> Callable[[Tensors, Tensors, torch.Tensor | int], None]:
    """The moving average's update (``AveragedModel``'s ``multi_avg_fn``: called once per
    device and dtype group, so the rate is read once a step, not once a tensor, which on
    CUDA would wait on the device for every tensor) with TensorFlow's warm-up: the decay is
    min(decay, (1 + n) / (10 + n)) at update n, so a short training is averaged over its own
    last steps rather than pulled towards its random start. Integer buffers (batch norm's
    step counters) take the latest value."""

    def update(averaged: Tensors, current: Tensors, n: torch.Tensor | int) -> None:
        count = float(n)
        weight = 1.0 - min(decay, (1.0 + count) / (10.0 + count))
        for mean, value in zip(averaged, current, strict=True):
            if mean.is_floating_point():
                mean.lerp_(value, weight)
            else:
                mean.copy_(value)

    return update


def train(
    cases: Sequence[CaseArrays],
    config: TrainConfig,
    device: torch.device,
    *,
    progress: Callable[[Progress], None] | None = None,
    start: nn.Module | None = None,
) -> Trained:
    """Train a new model (or continue ``start``) on the labelled slices of ``cases``."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    transforms = augmentation(config.seed)
    model = (start or build_model(config)).to(device)
    cuda = device.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    averaged = (
        AveragedModel(model, multi_avg_fn=_ema(config.ema), use_buffers=True)
        if config.ema
        else None
    )
    # Dice over the whole batch (nnU-Net's batch Dice), not per patch: a patch without lesion
    # then still teaches the model to say "none" (its per-patch Dice is a constant), which
    # halved the false-positive voxels on held-out synthetic cases at 600 steps.
    loss_of = DiceCELoss(sigmoid=True, batch=True)
    sampler = PatchSampler(cases)
    began = time.monotonic()
    budget = config.minutes * 60.0
    losses: list[float] = []
    model.train()
    step = 0
    clocked = False  # the schedule follows the time budget (decided after PACE_STEPS)
    for step in range(1, config.max_steps + 1):
        inputs, targets = sampler.sample(
            config.batch_size, config.patch, config.neighbours, config.lesion_patches, rng
        )
        images, labels = _augment(transforms, inputs, targets)
        images, labels = images.to(device), labels.to(device)
        if cuda:
            images = images.contiguous(memory_format=torch.channels_last)
        # Polynomial decay (nnU-Net's) towards whichever ends training first, the step limit
        # or the time budget: the last steps refine instead of jumping between minima. Which
        # one is decided once, from the pace of the first PACE_STEPS steps; only a budget
        # projected to end training first makes the schedule follow the clock (projected
        # from the pace so far). Otherwise the schedule is the step limit's whatever the
        # machine's load, so a seeded training is reproducible: projecting at every step
        # from the start made a slow first step lower the first learning rates a little, and
        # the same seed then gave held-out Dice 0.317 in one run and 0.419 in the next.
        elapsed = time.monotonic() - began
        if step == PACE_STEPS + 1:
            clocked = budget * PACE_STEPS / max(elapsed, 1e-9) < config.max_steps
        total = config.max_steps
        if clocked:
            total = min(total, max(step, int(budget * (step - 1) / elapsed)))
        done = (step - 1) / total
        for group in optimiser.param_groups:
            group["lr"] = config.learning_rate * max(1.0 - min(done, 1.0), MIN_LR_SHARE) ** 0.9
        optimiser.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cuda):
            loss = loss_of(model(images).float(), labels)
        loss.backward()
        optimiser.step()
        if averaged is not None:
            averaged.update_parameters(model)
        losses.append(float(loss.detach()))
        elapsed = time.monotonic() - began
        if progress is not None:
            per_step = elapsed / step
            eta = min(per_step * (config.max_steps - step), max(budget - elapsed, 0.0))
            progress(Progress(step, config.max_steps, elapsed, budget, eta, losses[-1]))
        if elapsed >= budget:
            break
    final: nn.Module = model if averaged is None else averaged.module
    return Trained(final, step, time.monotonic() - began, losses, device.type)


def _padded_stacks(
    case: CaseArrays, zs: Sequence[int], neighbours: int, device: torch.device
) -> torch.Tensor:
    """The network inputs of axial slices ``zs`` [len(zs), C, X', Y'], padded at the end to
    multiples of 16 (four poolings)."""
    x, y, _ = case.brain.shape
    size = [int(np.ceil(s / 16) * 16) for s in (x, y)]
    pad = SpatialPadd(keys=["image"], spatial_size=size, method="end")
    planes = [pad({"image": torch.as_tensor(stack(case, z, neighbours))})["image"] for z in zs]
    return torch.stack([torch.as_tensor(np.asarray(p)) for p in planes]).to(device)


@torch.no_grad()
def predict_case(
    model: nn.Module,
    case: CaseArrays,
    config: TrainConfig,
    device: torch.device,
    *,
    batch: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> NDArray[np.float32]:
    """P(lesion) for every voxel of ``case`` [X, Y, Z] (0 outside the brain)."""
    model.eval()
    x, y, depth = case.brain.shape
    out = np.zeros((x, y, depth), dtype=np.float32)
    cuda = device.type == "cuda"
    for first in range(0, depth, batch):
        zs = list(range(first, min(first + batch, depth)))
        images = _padded_stacks(case, zs, config.neighbours, device)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cuda):
            logits = model(images).float()
        probabilities = torch.sigmoid(logits)[:, 0, :x, :y].cpu().numpy()
        for k, z in enumerate(zs):
            out[:, :, z] = probabilities[k]
        if progress is not None:
            progress(zs[-1] + 1, depth)
    return np.where(case.brain, out, 0.0).astype(np.float32)


Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (half-open), the slice's crop


def score_slices(
    model: nn.Module,
    case: CaseArrays,
    slices: Sequence[tuple[int, Box]],
    config: TrainConfig,
    device: torch.device,
    *,
    samples: int | None = None,
    batch: int = 8,
    chunk: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[SliceScores]:
    """Monte-Carlo dropout uncertainty (``ml.uncertainty.score_slice``) of axial slices
    ``(z, crop box)`` of ``case``: ``samples`` (default ``config.mc_samples``) dropout passes,
    batched, each slice scored inside its crop box (what volunteers see), 0 outside the brain.
    ``chunk``: images per forward pass; by default all ``samples`` copies of a batch at once
    on CUDA, and one batch per pass on the CPU (there a pass of 80 whole slices ran at 0.6x
    the speed of ten passes of 8: bench/ml_throughput.py). ``progress(n)`` after each batch,
    ``n`` slices done so far."""
    samples = samples or config.mc_samples
    if chunk is None:
        chunk = batch * samples if device.type == "cuda" else batch
    x, y, _ = case.brain.shape
    scores: list[SliceScores] = []
    for first in range(0, len(slices), batch):
        part = slices[first : first + batch]
        images = _padded_stacks(case, [z for z, _ in part], config.neighbours, device)
        drawn = mc_probabilities(model, images, samples, chunk=chunk)
        maps = drawn[:, :, :x, :y].float().cpu().numpy()
        for k, (z, (x0, y0, x1, y1)) in enumerate(part):
            inside = case.brain[x0:x1, y0:y1, z]
            scores.append(score_slice(maps[:, k, x0:x1, y0:y1] * inside))
        if progress is not None:
            progress(len(scores))
    return scores


def clean(probability: NDArray[np.floating], min_voxels: int) -> NDArray[np.bool_]:
    """The hard mask (P >= 0.5) without components smaller than ``min_voxels`` (18-connected
    in 3-D, as the lesion-wise metric counts them)."""
    mask = np.asarray(probability) >= 0.5
    structure = ndimage.generate_binary_structure(mask.ndim, 2)
    labels, count = ndimage.label(mask, structure=structure)
    if count == 0:
        return mask
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    keep = sizes >= min_voxels
    keep[0] = False
    kept: NDArray[np.bool_] = keep[labels]
    return kept


@dataclass(frozen=True)
class CaseScore:
    case: str
    dice: float
    lesion_f1: float
    lesion_sensitivity: float
    lesion_ppv: float


def evaluate(
    model: nn.Module, cases: Sequence[CaseArrays], config: TrainConfig, device: torch.device
) -> list[CaseScore]:
    """Dice and lesion-wise F1 (``backend.quality.metrics``) of the model's cleaned masks
    against each case's label (>= 0.5), on its labelled slices."""
    scores = []
    for case in cases:
        predicted = clean(predict_case(model, case, config, device), config.min_lesion_pixels)
        truth = case.label >= 0.5
        slices = case.labelled
        found = lesion_detection(truth[:, :, slices], predicted[:, :, slices])
        scores.append(
            CaseScore(
                case=case.name,
                dice=dice(truth[:, :, slices], predicted[:, :, slices]),
                lesion_f1=found.f1,
                lesion_sensitivity=found.sensitivity,
                lesion_ppv=found.ppv,
            )
        )
    return scores
