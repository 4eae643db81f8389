"""How much background the scope judge sees around a product on a plain background (SUBJECT_MARGIN in
fmnist_batch/convert/garment.py), measured on licensed photos only.

The judge reads a catalog shot cut to its product's box plus a margin: a small product then fills the
picture instead of a few pixels of it. Too little margin turns the blurred outline of a Fashion-MNIST render
into something the ImageNet backbone reads as nothing, which answers `other` for flat catalog shots. For
each margin this prints, on licensed plain-background photos:

- the AUROC of `in_scope` between in-scope products (Fashion-MNIST TRAIN renders and clothing-dataset-small
  validation garments cut out on white by the tool's GrabCut) and out-of-scope ones (its hats, shorts and
  skirts, cut out the same way);
- the share of each set answered other at the bundled judge's operating point.

    python scripts/choose_scope_margin.py ../shared/real-photos/clothing-dataset-small
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from scope_build.licensed_data import clothing_small, fmnist_renders  # noqa: E402

from fmnist_batch.convert.decode import load_image_bytes, to_rgb  # noqa: E402
from fmnist_batch.convert.garment import judge_picture, on_white_square  # noqa: E402
from fmnist_batch.convert.segment import grabcut_mask, largest_component, reduce_longest_edge  # noqa: E402
from fmnist_batch.convert.settings import ConversionSettings  # noqa: E402
from fmnist_batch.model.runtime import load_model  # noqa: E402
from fmnist_batch.model.scope_judge import ScopeJudge  # noqa: E402
from fmnist_batch.training.data import load_dataset  # noqa: E402

MARGINS = (0.0, 0.05, 0.1, 0.2, 0.3)
#: the Fashion-MNIST TRAIN images rendered (scope_build.licensed_data measures the same ones)
RENDERED = range(2000, 2500)


def cut_out_on_white(path: Path) -> bytes | None:
    """A photo's garment (GrabCut's largest region) on white with a quarter of its size around it, as a
    JPEG of 320 px at most; None when GrabCut finds no garment."""
    img = reduce_longest_edge(Image.open(path).convert("RGB"), 320)
    pixels = np.asarray(img)
    mask = largest_component(grabcut_mask(pixels, iterations=5))
    if mask.mean() < 0.05:
        return None
    ys, xs = np.nonzero(mask)
    cut = Image.fromarray(np.where(mask[..., None], pixels, 255).astype(np.uint8))
    cut = cut.crop((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
    canvas = Image.new("RGB", (int(cut.width * 1.25), int(cut.height * 1.25)), (255, 255, 255))
    canvas.paste(cut, ((canvas.width - cut.width) // 2, (canvas.height - cut.height) // 2))
    buffer = io.BytesIO()
    canvas.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def licensed_sets(dataset: Path) -> dict[str, list[Image.Image]]:
    settings = ConversionSettings()
    photos = clothing_small(dataset, "validation")
    cut = [(cut_out_on_white(p), inside) for p, inside in zip(photos.files, photos.in_scope, strict=True)]
    decoded = [(load_image_bytes(data, settings), inside) for data, inside in cut if data is not None]
    renders = fmnist_renders(load_dataset().train.images[list(RENDERED)]).files
    return {
        "renders": [load_image_bytes(data, settings) for data in renders],
        "garments": [img for img, inside in decoded if inside],
        "hats, shorts, skirts": [img for img, inside in decoded if not inside],
    }


def picture(img: Image.Image, side: int, margin: float | None) -> np.ndarray:
    """The judge's picture with `margin` around a plain-background product (None: the whole photo)."""
    return on_white_square(img, side) if margin is None else judge_picture(img, side, margin)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", type=Path, help="clothing-dataset-small (its validation split is read)")
    args = parser.parse_args()
    from sklearn.metrics import roc_auc_score

    model = load_model()
    judge, threshold = ScopeJudge(model.scope_judge_file), model.card.scope_judge["threshold"]
    sets = {name: [to_rgb(img) for img in imgs] for name, imgs in licensed_sets(args.dataset).items()}
    print(f"{', '.join(f'{len(v)} {k}' for k, v in sets.items())}; operating point {threshold:.3f}")
    print("| margin | AUROC, in-scope vs hats, shorts, skirts | " + " | ".join(sets) + " |")
    print("| --- | ---: |" + " ---: |" * len(sets))
    for margin in (None, *MARGINS):
        scores = {
            name: judge.read(np.stack([picture(i, judge.side, margin) for i in imgs]))
            for name, imgs in sets.items()
        }
        inside = np.concatenate([scores["renders"], scores["garments"]])
        outside = scores["hats, shorts, skirts"]
        auroc = roc_auc_score(np.r_[np.ones(len(inside)), np.zeros(len(outside))], np.r_[inside, outside])
        shares = " | ".join(f"{(s < threshold).mean():.1%}" for s in scores.values())
        print(f"| {'whole photo' if margin is None else margin} | {auroc:.3f} | {shares} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
