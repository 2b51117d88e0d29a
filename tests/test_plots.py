"""The PNG plots: one panel per loss term, bars beside chance, and the same bytes for the same numbers."""

from PIL import Image

from s2f.plots import _panel_title, curve_png, families_png, retrieval_png, weight_changes

ROWS = [{"epoch": e, "loss_total": 1 / (e + 1), "loss_l1": 2 / (e + 1), "val_loss_total": 1.2 / (e + 1),
         "val_recall_at_1": 0.1 * e, "val_recall_at_10": 0.2 * e} for e in range(4)]
RETRIEVAL = {length: {"recall_at_1": 0.2, "recall_at_10": 0.7, "chance_at_1": 0.02, "chance_at_10": 0.2}
             for length in ("3s_repeated", "6s")}


def test_a_curve_is_a_png_and_the_same_numbers_give_the_same_bytes(tmp_path):
    first = curve_png(ROWS, tmp_path / "a.png", "train_encoder")
    second = curve_png(ROWS, tmp_path / "b.png", "train_encoder")
    assert first.read_bytes() == second.read_bytes()  # a DVC output: no timestamp, no version inside
    with Image.open(first) as image:
        assert image.format == "PNG" and image.size[0] >= 800  # three panels across: two terms and retrieval


def test_a_changed_number_changes_the_picture(tmp_path):
    changed = [dict(row, loss_l1=row["loss_l1"] * 3) for row in ROWS]
    assert curve_png(ROWS, tmp_path / "a.png", "t").read_bytes() != curve_png(changed, tmp_path / "b.png", "t") \
        .read_bytes()


def test_the_curve_says_where_the_loss_weights_were_set_and_which_term_is_not_trained_on(tmp_path):
    """The encoder's calibrated weights change at one epoch (the total jumps there) and distillation can be logged
    at weight 0: both are told on the picture, not left for the reader to guess."""
    rows = [dict(row, loss_distill=1.0, weight_l1=0.025 if row["epoch"] < 2 else 144.9, weight_distill=0.0)
            for row in ROWS]
    assert weight_changes(rows) == [2] and weight_changes(ROWS) == []
    gaps = [dict(rows[0], weight_l1=float("nan")), {k: v for k, v in rows[1].items() if k != "weight_l1"}, *rows[2:]]
    assert weight_changes(gaps) == []   # an empty CSV cell (NaN) or a missing column is not a change
    assert _panel_title("distill", rows) == "distill (weight 0: logged only)" and _panel_title("l1", rows) == "l1"
    assert curve_png(rows, tmp_path / "a.png", "t").read_bytes() != curve_png(
        [{k: v for k, v in row.items() if not k.startswith("weight_")} for row in rows], tmp_path / "b.png", "t"
    ).read_bytes()


def test_retrieval_and_family_plots_render_every_model(tmp_path):
    rows = [("speech2face", RETRIEVAL), ("wen2019", RETRIEVAL)]
    retrieval = retrieval_png(rows, tmp_path / "retrieval.png")
    families = families_png([{"family": "speech2face", "recall_at_1": 0.2, "recall_at_10": 0.7, "chance_at_1": 0.02,
                              "chance_at_10": 0.2, "matching": None, "detection_ratio": None},
                             {"family": "wen2019", "recall_at_1": 0.05, "recall_at_10": 0.3, "chance_at_1": 0.02,
                              "chance_at_10": 0.2, "matching": 0.6, "detection_ratio": 0.4}], tmp_path / "f.png")
    for path in (retrieval, families):
        with Image.open(path) as image:
            assert image.format == "PNG"
