"""Train one GAN family on the demo's training speakers with some params overridden, and measure its faces.

Usage (after `make demo`, which leaves data/preprocessed and data/features):
    .venv/bin/python bench/gan_probe.py FAMILY '{"wav2pix": {"batch_size": 16}}' TAG

Prints one line: training seconds, R@1 and R@10 of the faces generated from the held-out speakers' 6 s voices
(embedded by dlib, galleries as in `evaluate`), chance, and dlib's detection ratio; writes bench/results/TAG.pt
(the model) and bench/results/TAG.png (32 generated faces). How the demo defaults in docs/gan_families.md were chosen.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from s2f.config import TrainGanParams, load_section  # noqa: E402
from s2f.dataset import load_split  # noqa: E402
from s2f.evaluation import retrieval_metrics  # noqa: E402
from s2f.faces.features import get_backend  # noqa: E402
from s2f.faces.generated import detection_ratio, embed_generated  # noqa: E402
from s2f.generated_evaluation import gan_generator  # noqa: E402
from s2f.io.checkpoints import save_model  # noqa: E402
from s2f.split import unseen_speech  # noqa: E402
from s2f.training.distributed import setup_runtime  # noqa: E402
from s2f.training.gan import image_size, train_gan  # noqa: E402
from s2f.training.pairs import dense_labels, shrink_faces  # noqa: E402


def params_with(overrides: dict) -> TrainGanParams:
    base = load_section("train_gan", ROOT / "params.yaml").model_dump()
    for key, value in overrides.items():
        base[key] = base[key] | value if isinstance(value, dict) else value
    return TrainGanParams.model_validate(base)


def main() -> None:
    family, overrides, tag = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
    params, out = params_with(overrides), ROOT / "bench/results"
    out.mkdir(parents=True, exist_ok=True)
    pre, feats = ROOT / "data/preprocessed", ROOT / "data/features"
    start = time.time()
    train = load_split(pre, feats, "train", audio=True, faces=True).in_memory()
    held = unseen_speech(train.manifest, params.unseen_speech_per_speaker)
    labels, _ = dense_labels(train.speakers)
    faces = shrink_faces(train.face, image_size(family, params))

    def log(epoch: int, row: dict) -> None:
        if epoch % 10 == 9:
            print(epoch + 1, {k: round(v, 3) for k, v in row.items() if k.startswith("loss")}, flush=True)

    model = train_gan(family, train.audio[~held], faces[~held], labels[~held], params, setup_runtime(), log)
    seconds = time.time() - start
    save_model(model, out / f"{tag}.pt")
    test = load_split(pre, feats, "test", audio=True, faces=True).in_memory()
    generated = gan_generator(model)(test.audio)
    recall = retrieval_metrics(embed_generated(generated, get_backend("dlib")), test, [1, 10], 100, 0)
    Image.fromarray(np.concatenate([np.concatenate(list(generated[r * 8:(r + 1) * 8]), 1) for r in range(4)])
                    ).save(out / f"{tag}.png")
    print(f"{tag}: train {seconds:.0f} s, R@1 {recall['recall_at_1']:.3f}, R@10 {recall['recall_at_10']:.3f} "
          f"(chance {recall['chance_at_10']:.3f}), detection ratio {detection_ratio(generated)['ratio']:.2f}")


if __name__ == "__main__":
    main()
