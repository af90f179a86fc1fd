"""The frontend's generated pictures, written to frontend/ and committed (the frontend has no
build step): the landing page's example of a lesion outline, made from the synthetic demo
data (never from real scans), and the favicon as ICO for browsers that ask for /favicon.ico.

    .venv/bin/python scripts/frontend_images.py [--out frontend] [--seed 0]

Deterministic: the same seed writes the same files (about 15 s, most of it the synthesis).
"""

import argparse
import io
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw
from scipy import ndimage

from backend.imaging.models import Contrast
from backend.imaging.preprocess import crop_box, robust_window, to_display, to_uint8
from backend.imaging.synthetic import synthesize_case

ROOT = Path(__file__).resolve().parents[1]
OUTLINE = (245, 158, 11)  # amber, as the studio's focus ring: visible on grey and on white
SCALE = 2  # the outline is drawn at twice the slice's resolution, so it stays thin
BLUE, PAPER, AMBER = (29, 78, 216), (229, 231, 235), (245, 158, 11)


def _visible(plane: npt.NDArray[np.bool_], smallest: int = 8) -> int:
    """How many lesions of ``plane`` have at least ``smallest`` pixels."""
    labels, count = ndimage.label(plane)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    return int((sizes >= smallest).sum())


def example(seed: int) -> bytes:
    """A FLAIR slice of synthetic case ``seed`` with its lesions outlined, as an RGB PNG."""
    case = synthesize_case(seed)
    flair = np.asarray(case.source.images[Contrast.flair].dataobj, dtype=np.float32)
    lesions = case.lesion_mask > 0
    brain = flair > 0
    # The axial slice with the most lesions big enough to see (ties: the most lesion voxels).
    scores = [
        (_visible(lesions[:, :, z]), int(lesions[:, :, z].sum())) for z in range(flair.shape[2])
    ]
    z = max(range(len(scores)), key=lambda k: scores[k])
    x0, y0, x1, y1 = crop_box(brain[:, :, z : z + 1], margin=4)
    grey = to_uint8(flair[x0:x1, y0:y1, z], robust_window(flair, brain))
    mask = lesions[x0:x1, y0:y1, z]
    image = Image.fromarray(to_display(grey)).convert("RGB")
    image = image.resize((image.width * SCALE, image.height * SCALE), Image.Resampling.BICUBIC)
    big: npt.NDArray[np.bool_] = np.kron(to_display(mask), np.ones((SCALE, SCALE), dtype=bool))
    # Just outside each lesion, two pixels wide: the bright spot itself stays visible.
    ring = ndimage.binary_dilation(big, iterations=2) & ~big
    pixels = np.asarray(image).copy()
    pixels[ring] = OUTLINE
    out = io.BytesIO()
    Image.fromarray(pixels).quantize(colors=128, dither=Image.Dither.NONE).save(
        out, format="PNG", optimize=True
    )
    return out.getvalue()


def icon(size: int) -> Image.Image:
    """The favicon (frontend/favicon.svg) drawn at ``size`` pixels."""
    big = size * 8  # drawn large and scaled down: smooth edges
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    unit = big / 32
    draw.rounded_rectangle((0, 0, big - 1, big - 1), radius=7 * unit, fill=BLUE)
    draw.ellipse((5.5 * unit, 4.5 * unit, 26.5 * unit, 28.5 * unit), fill=PAPER)
    r = 3.2 * unit
    draw.ellipse(
        (19.5 * unit - r, 12.5 * unit - r, 19.5 * unit + r, 12.5 * unit + r),
        outline=AMBER,
        width=round(2 * unit),
    )
    return image.resize((size, size), Image.Resampling.LANCZOS)


def favicon() -> bytes:
    """``favicon.ico`` with 16, 32 and 48 pixel images."""
    out = io.BytesIO()
    icon(48).save(out, format="ICO", sizes=[(16, 16), (32, 32), (48, 48)])
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "frontend")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    (args.out / "example-lesions.png").write_bytes(example(args.seed))
    (args.out / "favicon.ico").write_bytes(favicon())


if __name__ == "__main__":
    main()
