"""The pipeline's plots as PNG images: training curves, retrieval against chance, one comparison of the families.

Why PNG and not only `dvc plots`' Vega pages: those load Vega from a CDN, so with no network the charts stay blank;
an image opens anywhere (a file browser, MLflow's artifact view, `dvc plots show` as an image plot). Why no
timestamp or version in the file: the images are DVC outputs, and the same numbers must give the same bytes.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

PNG_METADATA = {"Software": None}  # matplotlib would write its version: the bytes would change with an upgrade
LENGTHS = {"3s_repeated": "3 s of voice", "6s": "6 s of voice"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display, no GUI toolkit
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "s2f", "font.size": 9})
    return plt


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, metadata=PNG_METADATA)
    fig.clf()
    return path


def weight_changes(rows: list[dict]) -> list[int]:
    """The epochs at which the loss weights (`weight_…` columns) differ from the epoch before: where a calibrated
    weight was set (`train_encoder.loss`), the total loss jumps without the model having changed."""
    keys = sorted({k for row in rows for k in row if k.startswith("weight_")})
    return [b["epoch"] for a, b in zip(rows, rows[1:]) if any(_changed(a.get(k), b.get(k)) for k in keys)]


def _changed(before: float | None, after: float | None) -> bool:
    """A weight that differs between two epochs; a missing or NaN value (a CSV's empty cell) is no change."""
    known = [v for v in (before, after) if v is not None and not math.isnan(v)]
    return len(known) == 2 and known[0] != known[1]


def _panel_title(term: str, rows: list[dict]) -> str:
    """A loss term's name, saying so when its weight is 0 throughout: it is logged, but not trained on."""
    weights = [row.get(f"weight_{term}") for row in rows]
    unused = bool(rows) and all(w is not None and w == 0 for w in weights)
    return f"{term} (weight 0: logged only)" if unused else term


def curve_png(rows: list[dict], path: Path, title: str) -> Path:
    """Every loss term against epoch, one panel each, training solid, validation (`val_…`) dashed and a refit on
    every training speaker (`refit_…`) dotted; the validation retrieval (`val_recall_at_K`) in a last panel when
    the stage measured it. A term whose weight is 0 says so in its title, and the total is marked where the loss
    weights changed (`weight_changes`)."""
    plt = _pyplot()
    terms = sorted({k for row in rows for k in row if k.startswith("loss_")})
    recalls = sorted({k for row in rows for k in row if re.fullmatch(r"val_recall_at_\d+", k)},
                     key=lambda k: int(k.rsplit("_", 1)[1]))
    panels = len(terms) + bool(recalls)
    cols = min(panels, 3) or 1
    lines = -(-max(panels, 1) // cols)
    fig, axes = plt.subplots(lines, cols, figsize=(4 * cols, 2.8 * lines), squeeze=False)
    epochs = [row["epoch"] for row in rows]
    for ax, term in zip(axes.flat, terms):
        ax.plot(epochs, [row.get(term) for row in rows], "-", label="training")
        for prefix, style, label in (("val_", "--", "validation"), ("refit_", ":", "refit, all speakers")):
            if any(row.get(f"{prefix}{term}") is not None for row in rows):
                ax.plot(epochs, [row.get(f"{prefix}{term}") for row in rows], style, label=label)
                ax.legend(fontsize=7)
        if term == "loss_total" and (changes := weight_changes(rows)):
            for at in changes:
                ax.axvline(at, color="grey", linewidth=1, linestyle="-.", label=f"loss weights set (epoch {at})")
            ax.legend(fontsize=7)
        ax.set(title=_panel_title(term.removeprefix("loss_"), rows), xlabel="epoch")
    if recalls:
        ax = axes.flat[len(terms)]
        for key in recalls:
            ax.plot(epochs, [row.get(key) for row in rows], "-", label=f"R@{key.rsplit('_', 1)[1]}")
        if any("val_recall_at_1_trailing" in row for row in rows):   # what the epoch kept was chosen on
            ax.plot(epochs, [row.get("val_recall_at_1_trailing") for row in rows], "--", label="R@1, trailing mean")
        ax.set(title="validation retrieval", xlabel="epoch", ylim=(0, 1.05))
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[panels:]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def retrieval_png(rows: list[tuple[str, dict]], path: Path) -> Path:
    """R@K bars of every model for 3 s and 6 s of voice, one panel per length, chance as a black tick per K.

    `rows` are (label, retrieval section) pairs, the section keyed by voice length as in reports/metrics.json."""
    import numpy as np

    plt = _pyplot()
    fig, axes = plt.subplots(1, len(LENGTHS), figsize=(5.5 * len(LENGTHS), 3.6), squeeze=False, sharey=True)
    for ax, (length, name) in zip(axes.flat, LENGTHS.items()):
        present = [(label, section[length]) for label, section in rows if length in section]
        if not present:
            ax.axis("off")
            continue
        ks = sorted(int(k.rsplit("_", 1)[1]) for k in present[0][1] if k.startswith("recall_at_"))
        width = 0.8 / len(present)
        x = np.arange(len(ks))
        for i, (label, scores) in enumerate(present):
            ax.bar(x + i * width - 0.4 + width / 2, [scores[f"recall_at_{k}"] for k in ks], width, label=label)
        chance = [present[0][1][f"chance_at_{k}"] for k in ks]
        ax.hlines(chance, x - 0.42, x + 0.42, colors="black", linewidth=1.5, label="chance")
        ax.set(xticks=x, xticklabels=[f"R@{k}" for k in ks], ylim=(0, 1.05), title=f"held-out speakers, {name}")
    axes.flat[0].set_ylabel("share of voices whose true face ranks in the top K")
    axes.flat[-1].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return _save(fig, path)


def families_png(rows: list[dict], path: Path) -> Path:
    """One horizontal bar per model and measure (R@1 and R@10 at 6 s, 1:2 matching, faces found): the families
    side by side, chance marked."""
    import numpy as np

    plt = _pyplot()
    measures = [("recall_at_1", "R@1 (6 s)", "chance_at_1"), ("recall_at_10", "R@10 (6 s)", "chance_at_10"),
                ("matching", "1:2 matching (6 s)", None), ("detection_ratio", "faces found", None)]
    fig, axes = plt.subplots(1, len(measures), figsize=(3.2 * len(measures), 0.45 * len(rows) + 1.4), sharey=True)
    y = np.arange(len(rows))
    for ax, (key, title, chance_key) in zip(axes, measures):
        values = [row.get(key) for row in rows]
        ax.barh(y, [v if v is not None else 0 for v in values], color="tab:blue")
        for yi, v in zip(y, values):
            ax.text(0.01 if v is None else v + 0.01, yi, "—" if v is None else f"{v:.2f}", va="center", fontsize=7)
        chance = 0.5 if key == "matching" else (rows[0].get(chance_key) if chance_key and rows else None)
        if chance is not None:
            ax.axvline(chance, color="black", linestyle="--", linewidth=1)
        ax.set(title=title, xlim=(0, 1.15))
    axes[0].set(yticks=y, yticklabels=[row["family"] for row in rows])
    axes[0].invert_yaxis()
    fig.tight_layout()
    return _save(fig, path)
