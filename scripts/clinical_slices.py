"""Screenshots of what volunteers are served from raw clinical scans (issue 38): for
open_ms_data's clinical_raw patient01 and patient12, study1, brain masks are written with
``mscrowd-ml brain-mask`` (deepbet), the studies imported with ``mscrowd import`` into a fresh
embedded-default site, and the lowest and highest served slices' FLAIR, T1 and T2 PNGs (as
stored, exactly what the studio shows) put side by side in docs/clinical-PATIENT.png.

    .venv/bin/python scripts/clinical_slices.py [--out docs]
"""

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw
from sqlmodel import Session, col, select

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backend.core.db import create_db_engine  # noqa: E402
from backend.core.storage import Storage  # noqa: E402
from backend.imaging.models import Case, Slice  # noqa: E402

RAW = ROOT.parent / "shared" / "data" / "open_ms_data" / "clinical_raw"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    if not RAW.exists():
        sys.exit(f"{RAW} is absent")
    with tempfile.TemporaryDirectory() as tmp:
        data, studies = Path(tmp) / "var", Path(tmp) / "raw"
        env = {**os.environ, "MSCROWD_DATA_DIR": str(data)}
        for patient in ("patient01", "patient12"):
            (studies / patient).mkdir(parents=True)
            for path in (RAW / patient).glob("study1_*"):
                shutil.copy(path, studies / patient / path.name)
        ml = [sys.executable, "-m", "ml", "brain-mask", str(studies)]
        subprocess.run(ml, env=env, check=True, timeout=900)
        subprocess.run([sys.executable, "-m", "backend", "migrate"], env=env, check=True)
        command = [sys.executable, "-m", "backend", "import", str(studies), "--project", "clinic"]
        subprocess.run(command, env=env, check=True, timeout=900)
        engine = create_db_engine(f"sqlite:///{data / 'mscrowd.sqlite'}")
        storage = Storage((data / "storage").as_uri())
        with Session(engine) as session:
            cases = session.exec(select(Case).order_by(col(Case.id))).all()
            for patient, case in zip(("patient01", "patient12"), cases, strict=True):
                slices = session.exec(
                    select(Slice).where(Slice.case_id == case.id).order_by(col(Slice.index))
                ).all()
                tiles = []
                for slice_ in (slices[0], slices[-1]):
                    for contrast in ("flair", "t1", "t2"):
                        key = slice_.image_keys.get(contrast)
                        label = f"slice {slice_.index} {contrast.upper()}"
                        # A contrast whose stack misses the slice is not served there.
                        tiles.append((label if key else f"{label}: not served", key))
                width, height = Image.open(io.BytesIO(storage.get(tiles[0][1] or ""))).size
                blank = Image.new("L", (width, height), 96)
                images = [
                    Image.open(io.BytesIO(storage.get(key))).convert("L") if key else blank
                    for _label, key in tiles
                ]
                sheet = Image.new("L", (3 * width, 2 * (height + 18)), 255)
                draw = ImageDraw.Draw(sheet)
                for n, ((label, _png), image) in enumerate(zip(tiles, images, strict=True)):
                    x, y = (n % 3) * width, (n // 3) * (height + 18)
                    draw.text((x + 4, y + 2), label, fill=0)
                    sheet.paste(image, (x, y + 18))
                out = args.out / f"clinical-{patient}.png"
                sheet.save(out)
                print(f"{out}: slices {slices[0].index} and {slices[-1].index} of {len(slices)}")
        engine.dispose()


if __name__ == "__main__":
    main()
