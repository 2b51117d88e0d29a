"""Evaluate voice → face on held-out speakers the Speech2Face paper's way (Oh et al. 2019, Sec. 4, Tables 2–4).

`evaluate_paper` returns the nested report written to reports/metrics.json; `flatten_metrics` gives MLflow its dotted
names. Sections, each for the voice encoder's prediction from 3 s and from 6 s of speech where the paper has both.
The short clips go through serving's policy (`s2f.audio.fit_to_clip`: the first 3 s, repeated to the 6 s the encoder
takes), so their numbers describe what the served model does with 3 s of voice; their key says so: `3s_repeated`
(`short_key`), beside `6s`.

- features: cosine / L1 / L2 between predicted and true face features (the paper's Table 4 feature similarity).
- retrieval: recall@K of each clip's predicted feature among a gallery of `gallery_size` held-out identities
  (each the mean face feature of that speaker's clips), chance K / size beside it (Table 4).
- gender: agreement of gender read from the voice-predicted feature with the true label (Table 2). The paper ran an
  attribute classifier (Face++) on the decoded IMAGES; we have no such classifier offline, so a logistic regression
  trained on the TRAIN split's true face features and gender labels reads gender from the features instead, and
  its accuracy on the test split's true face features is reported as the ceiling.
- craniofacial: Pearson r, per measurement, between the face decoded from the true face feature and the face decoded
  from the 6 s voice prediction, over test clips (Table 3), with the same r for randomly re-paired faces as the
  baseline a correlation must beat.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw

from s2f.audio import SAMPLE_RATE, fit_to_clip, int16_to_float
from s2f.dataset import SplitData
from s2f.faces.craniofacial import craniofacial_correlation, landmarks_of_faces
from s2f.metrics import feature_distances, gallery_recall

Decoder = Callable[[torch.Tensor], torch.Tensor]   # (B, D) features → (B, 3, S, S) images in [0, 1]
GRID_TITLES = ("true face", "from face feature", "from voice 3 s", "from voice 6 s")


def speaker_gallery(embedding: np.ndarray, speakers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ids = np.array(sorted(set(speakers)))
    return np.stack([embedding[speakers == s].mean(axis=0) for s in ids]), ids


def retrieval_metrics(predicted: np.ndarray, data: SplitData, ks: Sequence[int], gallery_size: int = 100,
                      seed: int = 0) -> dict[str, float]:
    """Recall@K (and chance) of every test clip's predicted feature against a gallery of held-out speakers' faces."""
    gallery, ids = speaker_gallery(data.embedding, data.speakers)
    result = gallery_recall(predicted, data.speakers, gallery, ids, ks, gallery_size, seed)
    return {**result, "queries": len(predicted), "speakers": len(ids)}


def short_key(seconds: float) -> str:
    """The report's key for the short clips, e.g. `3s_repeated`: their length, and that they were repeated to the
    encoder's clip length as serving does. A key and not a text field because metrics files hold numbers only; and a
    new key, not `3s`, because `3s` used to mean the encoder run on 3 s alone, a different number."""
    return f"{seconds:g}s_repeated"


def short_clips(audio: np.ndarray, short_seconds: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(N, L) clips → (N, L): the first `short_seconds` of each, then `fit_to_clip` back to the L samples of a clip.

    Why: a served request of 3 s is repeated to the encoder's 6 s (`s2f.inference.encode`), so the short-clip metric
    must be too, or it would measure an input the served model never sees.
    """
    head = audio[:, :int(round(short_seconds * sample_rate))]
    return np.stack([fit_to_clip(clip, audio.shape[1] / sample_rate, sample_rate) for clip in head])


@torch.no_grad()
def predict_short(encoder: torch.nn.Module, audio: np.ndarray, short_seconds: float,
                  batch_size: int = 16) -> np.ndarray:
    """(N, L) int16 test clips → (N, D) features from their first `short_seconds` under the serving policy
    (`short_clips`), a batch at a time so the repeated copies never hold more than one batch."""
    dev = next(encoder.parameters()).device
    out = []
    for start in range(0, len(audio), batch_size):
        clips = int16_to_float(torch.from_numpy(short_clips(audio[start:start + batch_size], short_seconds)))
        out.append(encoder(clips.to(dev)).float().cpu())
    return torch.cat(out).numpy()


# ---- gender -------------------------------------------------------------------------------------------------------

def gender_labels(manifest) -> np.ndarray:
    """(N,) "m", "f" or "" (unlabelled) from a manifest's optional `gender` column ("male"/"female" also read)."""
    if "gender" not in manifest.columns:
        return np.full(len(manifest), "", dtype=object)
    names = {"m": "m", "male": "m", "f": "f", "female": "f"}
    return np.array([names.get(str(g).strip().lower(), "") if isinstance(g, str) else "" for g in manifest["gender"]],
                    dtype=object)


@dataclass
class LinearClassifier:
    """A logistic regression on standardized features: P(class 1 | x) = σ(((x − mean) / scale) · w + b)."""

    mean: np.ndarray
    scale: np.ndarray
    w: np.ndarray
    b: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale) @ self.w + self.b > 0


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, steps: int = 300) -> LinearClassifier:
    """Accelerated (Nesterov) gradient descent on the class-balanced logistic loss + l2·|w|² (convex: no seed).

    Why class-balanced: a corpus with 70 % men would otherwise buy accuracy by leaning to "m", and the agreement
    number would measure the corpus, not the voice. The step is 1 / (the loss's Lipschitz constant), so it converges
    without a learning rate to pick.
    """
    x = np.asarray(x, np.float64)
    mean, scale = x.mean(axis=0), np.maximum(x.std(axis=0), 1e-6)
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])       # (N, D+1): the last weight is the bias
    y = np.asarray(y, bool)
    weight = np.where(y, 0.5 / y.sum(), 0.5 / (~y).sum())            # (N,) sums to 1
    lipschitz = 0.25 * _top_eigenvalue(z, weight) + 2 * l2
    ridge = np.r_[np.ones(z.shape[1] - 1), 0.0] * 2 * l2            # the bias is not penalized
    w = look = np.zeros(z.shape[1])
    for t in range(steps):
        p = 1 / (1 + np.exp(-(z @ look)))                            # (N,)
        new = look - (z.T @ (weight * (p - y)) + ridge * look) / lipschitz
        w, look = new, new + t / (t + 3) * (new - w)
    return LinearClassifier(mean, scale, w[:-1], float(w[-1]))


def _top_eigenvalue(z: np.ndarray, weight: np.ndarray, iters: int = 30) -> float:
    """Largest eigenvalue of zᵀ diag(weight) z by power iteration (the curvature bound of the weighted loss)."""
    v = np.random.default_rng(0).standard_normal(z.shape[1])
    value = 0.0
    for _ in range(iters):
        u = z.T @ (weight * (z @ v))
        value = float(np.linalg.norm(u))
        v = u / max(value, 1e-12)
    return value


def gender_metrics(pred_short: np.ndarray, pred_6s: np.ndarray, test: SplitData, train: SplitData,
                   train_limit: int = 20000, short_seconds: float = 3.0) -> dict:
    """Agreement of gender read from voice-predicted features with the true label (see the module docstring).

    The classifier sees at most `train_limit` labelled train clips (spread evenly), to bound its memory and time.
    """
    test_y, train_y = gender_labels(test.manifest), gender_labels(train.manifest)
    labelled = test_y != ""
    known = np.flatnonzero(train_y != "")
    known = known[_spread(len(known), train_limit)]
    if not labelled.any():
        return {"labelled": 0, "reason": "the test split has no gender labels"}
    if len(set(train_y[known])) < 2:
        return {"labelled": 0, "reason": f"the train split's gender labels have fewer than two classes "
                                         f"({sorted(set(train_y[known]))}): no classifier can be trained"}
    clf = fit_logistic(train.embedding[known], train_y[known] == "f")
    truth = test_y[labelled] == "f"
    def agreement(features: np.ndarray) -> float:
        return float((clf.predict(features[labelled]) == truth).mean())
    return {"labelled": int(labelled.sum()), "agreement_6s": agreement(pred_6s),
            f"agreement_{short_key(short_seconds)}": agreement(pred_short),
            "ceiling": agreement(test.embedding), "majority": float(max(truth.mean(), 1 - truth.mean()))}


# ---- decoding and craniofacial measures ---------------------------------------------------------------------------

@torch.no_grad()
def decode_images(decoder: Decoder, features: np.ndarray, batch: int = 64) -> np.ndarray:
    """(N, D) features → (N, S, S, 3) uint8 images, batch by batch on the decoder's device, in eval mode.

    A module's train/eval mode is put back afterwards, so calling this leaves the decoder as it was.
    """
    module = decoder if isinstance(decoder, torch.nn.Module) else None
    first = next(module.parameters(), None) if module is not None else None
    dev = first.device if first is not None else torch.device("cpu")
    was_training = module.training if module is not None else False
    if module is not None:
        module.eval()
    try:
        out = []
        for start in range(0, len(features), batch):
            x = torch.as_tensor(features[start:start + batch], dtype=torch.float32, device=dev)
            img = decoder(x).clamp(0, 1).mul(255).round().byte()               # (B, 3, S, S)
            out.append(img.permute(0, 2, 3, 1).cpu().numpy())                 # (B, S, S, 3)
        return np.concatenate(out)
    finally:
        if module is not None:
            module.train(was_training)


def craniofacial_metrics(face_features: np.ndarray, voice_features: np.ndarray, decoder: Decoder,
                         margin: float = 0.4, seed: int = 0) -> dict:
    """Per-measurement r between faces decoded from the face feature and from the voice, and a shuffled baseline."""
    reference = landmarks_of_faces(decode_images(decoder, face_features), margin=margin)
    from_voice = landmarks_of_faces(decode_images(decoder, voice_features), margin=margin)
    shuffled = from_voice[np.random.default_rng(seed).permutation(len(from_voice))]
    return {"samples": len(face_features),
            "voice_vs_face_decoded": craniofacial_correlation(reference, from_voice),
            "baseline_shuffled": craniofacial_correlation(reference, shuffled)}


def _spread(n: int, limit: int | None) -> np.ndarray:
    """At most `limit` indices spread evenly over range(n) (deterministic: the same clips every run)."""
    if limit is None or n <= limit:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(int))


# ---- the report -----------------------------------------------------------------------------------------------------

def evaluate_paper(pred_short: np.ndarray, pred_6s: np.ndarray, test: SplitData, train: SplitData,
                   decoder: Decoder | None, ks: Sequence[int], gallery_size: int = 100, seed: int = 0,
                   craniofacial_max: int | None = 300, face_margin: float = 0.4, short_seconds: float = 3.0) -> dict:
    """The nested evaluation report (see the module docstring): features, retrieval, gender, craniofacial.

    pred_short / pred_6s: (N, D) voice-encoder features of the test clips from their first `short_seconds` under
    the serving policy (`predict_short`) and from all 6 s, in the order of `test`; the short ones are reported
    under `short_key(short_seconds)`. `train` needs only its embedding and manifest (gender). `decoder` None skips
    the craniofacial section (with a reason); `craniofacial_max` caps the clips decoded for it; `face_margin` is the
    preprocess crop margin the decoder's training faces were cut with (it places the landmark box, see
    `canonical_box`).
    Values that cannot be measured (a constant measurement) are None, so the JSON stays valid.
    """
    for arg, p in (("pred_short", pred_short), ("pred_6s", pred_6s)):
        if p.shape != test.embedding.shape:
            raise ValueError(f"{arg} has shape {p.shape}, the test features {test.embedding.shape}")
    preds = {short_key(short_seconds): pred_short, "6s": pred_6s}
    report = {
        "features": {name: feature_distances(p, test.embedding) for name, p in preds.items()},
        "retrieval": {name: retrieval_metrics(p, test, ks, gallery_size, seed) for name, p in preds.items()},
        "gender": gender_metrics(pred_short, pred_6s, test, train, short_seconds=short_seconds),
    }
    if decoder is None:
        report["craniofacial"] = {"samples": 0, "reason": "no face decoder given"}
    else:
        rows = _spread(len(test.embedding), craniofacial_max)
        report["craniofacial"] = craniofacial_metrics(test.embedding[rows], pred_6s[rows], decoder, face_margin, seed)
    return finite_or_none(report)


def finite_or_none(tree):
    """nan / inf → None everywhere in a nested report (JSON has no NaN; None reads as "not measurable")."""
    if isinstance(tree, dict):
        return {k: finite_or_none(v) for k, v in tree.items()}
    if isinstance(tree, float) and not math.isfinite(tree):
        return None
    return tree


REPORT_DIGITS = 6  # significant digits of a reported metric


def to_significant(tree, digits: int = REPORT_DIGITS):
    """Every float of a nested report to `digits` significant digits (ints, text and None as they are).

    The last digits of a metric follow the machine's numeric kernels: scipy's matrix square root in the Fréchet
    distance gave 0.08057597453202528 with OpenBLAS's AVX-512 kernels and ...531 with its Haswell ones, on the same
    inputs. Reported at full precision, a fresh clone's `dvc repro` on another CPU would change the committed
    report over a difference no reader can act on; six digits resolve far finer steps than any comparison of runs
    needs (one query of 191 moves a recall by 0.005)."""
    if isinstance(tree, dict):
        return {k: to_significant(v, digits) for k, v in tree.items()}
    if isinstance(tree, float) and math.isfinite(tree):
        return float(f"{tree:.{digits}g}")
    return tree


def flatten_metrics(nested: dict, prefix: str = "") -> dict[str, float]:
    """{"retrieval": {"6s": {"recall_at_1": x}}} → {"retrieval.6s.recall_at_1": x}: the numbers only, for MLflow.

    Strings (reasons), None (not measurable) and non-finite values are left out: MLflow can only chart numbers.
    """
    flat: dict[str, float] = {}
    for key, value in nested.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_metrics(value, f"{name}."))
        elif isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
                and math.isfinite(float(value)):
            flat[name] = float(value)
    return flat


# ---- the face grid --------------------------------------------------------------------------------------------------

def speaker_rows(data: SplitData, speakers: int) -> np.ndarray:
    """Index of the first clip of each of the first `speakers` held-out speakers (sorted by id): the grid's rows."""
    return np.array([int(np.flatnonzero(data.speakers == s)[0]) for s in sorted(set(data.speakers))[:speakers]])


def face_grid(faces: np.ndarray, decoded: Sequence[np.ndarray], titles: Sequence[str] = GRID_TITLES,
              cell: int = 128) -> Image.Image:
    """One row per speaker: the true face, then each decoded column (e.g. from the face feature, 3 s, 6 s of voice).

    faces (R, H, W, 3) uint8 and each decoded column (R, S, S, 3) uint8; `titles` names every column, faces first.
    """
    columns = [faces, *decoded]
    if len(titles) != len(columns):
        raise ValueError(f"{len(columns)} columns but {len(titles)} titles")
    if any(len(c) != len(faces) for c in columns):
        raise ValueError("every column needs one image per row")
    header = 18
    grid = Image.new("RGB", (cell * len(columns), header + cell * len(faces)), "white")
    draw = ImageDraw.Draw(grid)
    for c, (title, images) in enumerate(zip(titles, columns)):
        draw.text((c * cell + 4, 3), title, fill="black")
        for r, img in enumerate(images):
            tile = Image.fromarray(img).resize((cell, cell), Image.Resampling.BILINEAR)
            grid.paste(tile, (c * cell, header + r * cell))
    return grid


def paper_face_grid(test: SplitData, pred_3s: np.ndarray, pred_6s: np.ndarray, decoder: Decoder, speakers: int,
                    cell: int = 128) -> Image.Image:
    """The report's grid: true face | decoded from the face feature | from 3 s | from 6 s of voice, per speaker."""
    if test.face is None:
        raise ValueError("the face grid needs the test faces: load the split with faces=True")
    rows = speaker_rows(test, speakers)
    decoded = [decode_images(decoder, f[rows]) for f in (test.embedding, pred_3s, pred_6s)]
    return face_grid(test.face[rows], decoded, GRID_TITLES, cell)
