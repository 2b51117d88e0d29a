"""The evaluation table in a terminal: every model family at 3 s and 6 s of voice, at most 100 columns.

`reports/metrics.json` holds about 300 values; `dvc metrics show` prints them as one table thousands of characters
wide. A person who just ran the pipeline wants the few numbers that answer "did it learn anything?": identity
retrieval against chance, 1:2 matching, how close the predicted feature is, whether faces come out at all.
"""

from __future__ import annotations

WIDTH = 100
VOICES = {"6s": "6 s", "3s_repeated": "3 s→6"}
# the headline numbers (reports/headline.json, and the metrics a registry version is tagged with): their name there
# → their path in a model's section of reports/metrics.json
HEADLINE = {"r1_6s": ("retrieval", "6s", "recall_at_1"), "r10_6s": ("retrieval", "6s", "recall_at_10"),
            "r10_3s": ("retrieval", "3s_repeated", "recall_at_10"), "match_6s": ("matching", "6s", "accuracy"),
            "faces_found": ("images", "detection_ratio")}
NEXT_STEPS = ("reports/face_grid.png (a column per family) · reports/plots/*.png · "
              "reports/metrics.json (every metric) · make mlflow-ui")


def _get(tree: dict, *keys: str) -> float | None:
    for key in keys:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree if isinstance(tree, (int, float)) else None


def _cell(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _rows(report: dict) -> list[tuple[str, str, dict]]:
    """(model, what is scored, its section) in the table's order: Speech2Face's feature and decoded face, the
    ridge baseline, then each GAN family."""
    rows = []
    if "speech2face" in report:
        rows.append(("speech2face", "feature", report["speech2face"]))
        if "decoded" in report["speech2face"]:
            rows.append(("speech2face", "face", report["speech2face"]["decoded"]))
    if "ridge" in report:
        rows.append(("ridge", "feature", report["ridge"]))
    rows += [(family, "face", section) for family, section in report.items()
             if family not in ("speech2face", "ridge") and isinstance(section, dict) and "retrieval" in section]
    return rows


def _model_key(model: str, scored: str) -> str:
    return f"{model}_image" if model == "speech2face" and scored == "face" else model


def headline(report: dict) -> dict:
    """The few numbers worth a column in `dvc metrics show` / `dvc exp show` (reports/headline.json): per model,
    R@1 and R@10 at 6 s, R@10 at 3 s, 1:2 matching and faces found where measured, and what chance scores.
    Numbers only (DVC's metrics are numbers); every other value stays in reports/metrics.json."""
    out, chance = {}, None
    for model, scored, section in _rows(report):
        values = {name: _get(section, *path) for name, path in HEADLINE.items()}
        out[_model_key(model, scored)] = {k: round(v, 4) for k, v in values.items() if v is not None}
        if chance is None and _get(section, "retrieval", "6s", "chance_at_1") is not None:
            chance = {name: round(_get(section, "retrieval", "6s", key), 4)   # R@10 only when the gallery has 10
                      for name, key in (("r1", "chance_at_1"), ("r10", "chance_at_10"))
                      if _get(section, "retrieval", "6s", key) is not None}
    return out | ({"chance": chance} if chance else {})


def plot_label(model: str, scored: str) -> str:
    """A model's name in the plots: Speech2Face's two rows told apart as the summary's `scored` column does."""
    return f"{model} (decoded face)" if model == "speech2face" and scored == "face" else model


def retrieval_sections(report: dict) -> list[tuple[str, dict]]:
    """(model, its retrieval section keyed by voice length) for the retrieval plot, in the table's order."""
    return [(plot_label(model, scored), section["retrieval"]) for model, scored, section in _rows(report)
            if isinstance(section.get("retrieval"), dict)]


def summary_table(report: dict) -> str:
    """The family table, its chance line and where to look next."""
    header = f"{'model':<13}{'scored':<9}{'voice':<8}{'R@1':>7}{'R@10':>7}{'1:2 match':>11}{'cosine':>8}" \
             f"{'faces found':>13}"
    lines = [header, "─" * len(header)]
    for model, scored, section in _rows(report):
        for key, voice in VOICES.items():
            lines.append(f"{model:<13}{scored:<9}{voice:<8}"
                         f"{_cell(_get(section, 'retrieval', key, 'recall_at_1')):>7}"
                         f"{_cell(_get(section, 'retrieval', key, 'recall_at_10')):>7}"
                         f"{_cell(_get(section, 'matching', key, 'accuracy')):>11}"
                         f"{_cell(_get(section, 'features', key, 'cosine_mean')):>8}"
                         f"{_cell(_get(section, 'images', 'detection_ratio'), 2):>13}")
    chance = _chance(report)
    if chance:
        lines += ["─" * len(header), chance]
    lines += ["scored: feature = the predicted face feature; face = the face a model draws (Speech2Face's: decoded",
              "        from its feature), embedded by the face backend",
              "3 s→6: 3 s of voice repeated to 6 s, as serving does",
              "faces found: the share of generated faces in which dlib finds a face", "", "next: " + NEXT_STEPS]
    return "\n".join(_fit(line) for line in lines)


def _chance(report: dict) -> str | None:
    """One line of what chance scores, from the first family's 6 s retrieval (every family shares the gallery)."""
    for _, _, section in _rows(report):
        if _get(section, "retrieval", "6s", "gallery_size") is not None:
            six = section["retrieval"]["6s"]
            return (f"chance: R@1 {six['chance_at_1']:.3f}, R@10 {six['chance_at_10']:.3f}, 1:2 match 0.500 "
                    f"({six['speakers']} held-out speakers, {six['queries']} voices, galleries of "
                    f"{six['gallery_size']})")
    return None


def _fit(line: str) -> str:
    if len(line) <= WIDTH:
        return line
    cut = line.rfind(" · ", 0, WIDTH)
    return line[:cut] + "\n      " + _fit(line[cut + 3:]) if cut > 0 else line[:WIDTH - 1] + "…"
