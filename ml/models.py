"""The 2.5-D multi-contrast lesion segmenter: a MONAI BasicUNet with dropout, and Monte-Carlo
dropout sampling. Only ``ml`` imports torch."""

import torch
from monai.networks.nets.basic_unet import BasicUNet
from torch import nn

from ml.config import TrainConfig


def build_model(config: TrainConfig) -> nn.Module:
    """A 2-D BasicUNet taking ``config.channels`` inputs (FLAIR, T1, T2 of the slice and its
    neighbours) and giving one logit per pixel (lesion), with dropout in every block and
    ``config.norm`` normalisation."""
    torch.manual_seed(config.seed)
    model: nn.Module = BasicUNet(
        spatial_dims=2,
        in_channels=config.channels,
        out_channels=1,
        features=config.features,
        dropout=config.dropout,
        norm=config.norm,
    )
    return model


def enable_mc_dropout(model: nn.Module) -> None:
    """Evaluation mode (normalisation statistics frozen) with dropout left on, for sampling."""
    model.eval()
    for module in model.modules():
        if isinstance(module, nn.Dropout | nn.Dropout2d | nn.Dropout3d):
            module.train()


@torch.no_grad()
def mc_probabilities(
    model: nn.Module, images: torch.Tensor, samples: int, *, chunk: int = 64
) -> torch.Tensor:
    """``samples`` Monte-Carlo dropout passes over a batch [B, C, H, W]: probabilities
    [samples, B, H, W]. Each forward pass takes as many copies of the batch as fit in
    ``chunk`` images (at least one): dropout draws its mask per image, so the copies are
    independent samples."""
    enable_mc_dropout(model)
    count = images.shape[0]
    copies = max(1, chunk // max(count, 1))
    cuda = images.device.type == "cuda"
    outputs = []
    for first in range(0, samples, copies):
        k = min(copies, samples - first)
        part = images if k == 1 else images.repeat(k, 1, 1, 1)  # sample-major
        with torch.autocast(device_type=images.device.type, dtype=torch.bfloat16, enabled=cuda):
            outputs.append(torch.sigmoid(model(part).float())[:, 0])
    return torch.cat(outputs).reshape(samples, count, *images.shape[2:])
