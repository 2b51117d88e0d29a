"""The PNG plots: one panel per loss term, bars beside chance, and the same bytes for the same numbers."""

from PIL import Image

from s2f.plots import curve_png, families_png, retrieval_png

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
