"""Evaluate voice → face on held-out speakers: retrieval against a gallery of their faces, feature distances, a grid.

The gallery holds one entry per held-out speaker (the mean of their clips' face features); every held-out clip's
voice is a query. Chance at K is K / gallery size, reported beside each recall so numbers are comparable.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw

from s2f.dataset import SplitData
from s2f.metrics import feature_distances, retrieval_recall
from s2f.models.face_decoder import FaceDecoder


def speaker_gallery(embedding: np.ndarray, speakers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ids = np.array(sorted(set(speakers)))
    return np.stack([embedding[speakers == s].mean(axis=0) for s in ids]), ids


def retrieval_metrics(predicted: np.ndarray, data: SplitData, ks: list[int]) -> dict[str, float]:
    gallery, ids = speaker_gallery(data.embedding, data.speakers)
    usable = [k for k in ks if k <= len(ids)]
    recall = retrieval_recall(predicted, data.speakers, gallery, ids, usable)
    metrics: dict[str, float] = {"gallery_size": len(ids), "queries": len(predicted)}
    for k in usable:
        metrics[f"recall_at_{k}"] = recall[k]
        metrics[f"chance_at_{k}"] = k / len(ids)
    return metrics


@torch.no_grad()
def face_grid(data: SplitData, predicted: np.ndarray, decoder: FaceDecoder, speakers: int, cell: int = 128) -> Image.Image:
    """Rows of held-out speakers: true face | decoded from the true face feature | decoded from the voice."""
    rows = [int(np.flatnonzero(data.speakers == s)[0]) for s in sorted(set(data.speakers))[:speakers]]
    dev = next(decoder.parameters()).device
    def decode(features: np.ndarray) -> np.ndarray:
        img = decoder(torch.from_numpy(features).float().to(dev)).clamp(0, 1).cpu()
        return (img.permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)
    columns = [data.face[rows], decode(data.embedding[rows]), decode(predicted[rows])]
    titles = ["true face", "from face feature", "from voice"]
    header = 18
    grid = Image.new("RGB", (cell * 3, header + cell * len(rows)), "white")
    draw = ImageDraw.Draw(grid)
    for c, (title, images) in enumerate(zip(titles, columns)):
        draw.text((c * cell + 4, 3), title, fill="black")
        for r, img in enumerate(images):
            grid.paste(Image.fromarray(img).resize((cell, cell), Image.Resampling.BILINEAR), (c * cell, header + r * cell))
    return grid


def evaluate(predicted: np.ndarray, data: SplitData, ks: list[int]) -> dict[str, float]:
    return {**retrieval_metrics(predicted, data, ks), **feature_distances(predicted, data.embedding)}
