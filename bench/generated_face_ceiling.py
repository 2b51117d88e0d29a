"""What a perfect voice → face generator would score on the evaluation table at a GAN's resolution.

Usage (after `make demo`): `.venv/bin/python bench/generated_face_ceiling.py [--sizes 224,128,64]`

The held-out speakers' TRUE face crops are shrunk to each size and then measured exactly as the `evaluate` stage
measures generated faces (`s2f.faces.generated`: upscaled, embedded with the face box of the training crops, ranked
among the held-out identities; dlib's detection ratio; the Fréchet distance to the real faces' features). A GAN
whose faces score far below these rows is held back by what it draws, not by the pixels it has to draw it in.
Writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from s2f.config import load_section  # noqa: E402
from s2f.dataset import load_split  # noqa: E402
from s2f.evaluation import retrieval_metrics  # noqa: E402
from s2f.faces.features import get_backend  # noqa: E402
from s2f.features import backend_options  # noqa: E402
from s2f.faces.generated import detection_ratio, embed_generated  # noqa: E402
from s2f.generation_metrics import frechet_distance  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="224,128,64", help="px, comma-separated (the GANs draw 64 or 128)")
    args = parser.parse_args()
    test = load_split(ROOT / "data/preprocessed", ROOT / "data/features", "test", audio=False, faces=True).in_memory()
    params = ROOT / "params.yaml"
    backend_params, evaluate = load_section("features", params), load_section("evaluate", params)
    margin = load_section("preprocess", params).crop_margin  # as `evaluate` calls the image metrics
    backend = get_backend(backend_params.backend, **backend_options(backend_params))
    faces = np.asarray(test.face)
    print(f"{len(faces)} held-out faces of {len(set(test.speakers))} speakers, described with {backend.name}")
    print("| size | R@1 | R@10 | detection ratio | Fréchet distance |")
    print("|---|---|---|---|---|")
    for size in (int(s) for s in args.sizes.split(",")):
        small = shrink(faces, size)
        features = embed_generated(small, backend, margin=margin)
        scores = retrieval_metrics(features, test, [1, 10], evaluate.gallery_size, evaluate.seed)
        print(f"| {size} | {scores['recall_at_1']:.3f} | {scores['recall_at_10']:.3f} "
              f"| {detection_ratio(small)['ratio']:.2f} | {frechet_distance(test.embedding, features):.3f} |",
              flush=True)


def shrink(faces: np.ndarray, size: int) -> np.ndarray:
    """Bilinear, as `s2f.faces.generated.upscale` goes back up: the same resampling both ways."""
    from PIL import Image

    if faces.shape[1] == size:
        return faces
    return np.stack([np.asarray(Image.fromarray(f).resize((size, size), Image.Resampling.BILINEAR)) for f in faces])


if __name__ == "__main__":
    main()
