"""The paper-style evaluation on a small synthetic test split, with a decoder that draws a real face (real dlib)."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from s2f.config import PromoteParams
from s2f.dataset import SplitData
from s2f.evaluation import (GRID_TITLES, decode_images, evaluate_paper, face_grid, fit_logistic, flatten_metrics,
                            gender_labels, paper_face_grid, to_significant)
from s2f.faces.detect import crop_face, detect_faces, largest_face
from s2f.io.media import read_frames

D = 16


@pytest.fixture(scope="module")
def real_face(realsample) -> np.ndarray:
    (_, frame), = read_frames(realsample / "clips/grid_lipnet__bbaf2n.mpg", 1, 1.0)
    crop, _ = crop_face(frame, largest_face(detect_faces(frame, upsample=1)), size=224, margin=0.4)
    return crop


class StretchDecoder(nn.Module):
    """A stand-in decoder: the real face, stretched vertically by an amount read from feature 0, at 64 px.

    So a face's height in the decoded image follows feature 0, and dlib must find that on the real face's pixels.
    """

    def __init__(self, face: np.ndarray):
        super().__init__()
        image = torch.from_numpy(face.copy()).permute(2, 0, 1).float().div(255)
        self.register_buffer("face", image[None])                       # (1, 3, H, W)
        self.read = nn.Linear(D, 1)
        with torch.no_grad():
            self.read.weight.zero_()
            self.read.weight[0, 0] = 1.0
            self.read.bias.zero_()
        self.norm = nn.BatchNorm1d(1)  # present so eval vs train mode matters

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        stretch = 1 + 0.15 * torch.tanh(self.read(feature))[:, 0]       # (B,) > 1 makes the face shorter
        theta = torch.zeros(len(feature), 2, 3)
        theta[:, 0, 0], theta[:, 1, 1] = 1.0, stretch                   # sample rows further apart or closer
        grid = F.affine_grid(theta, (len(feature), 3, 64, 64), align_corners=False)
        faces = self.face.expand(len(feature), -1, -1, -1)
        return F.grid_sample(faces, grid, align_corners=False)         # (B, 3, 64, 64)


def _split(speakers: int, clips: int, seed: int, face: np.ndarray, gender: list | None) -> SplitData:
    """Speakers × clips samples; each speaker's features are a centroid + noise, gender (if any) in feature 1's sign."""
    rng = np.random.default_rng(seed)
    centroids = rng.standard_normal((speakers, D))
    if gender is not None:
        centroids[:, 1] = np.where(np.array(gender) == "f", 2.0, -2.0) + 0.3 * rng.standard_normal(speakers)
    who = np.repeat(np.arange(speakers), clips)
    manifest = pd.DataFrame({"speaker": [f"s{seed}_{i}" for i in who]})
    if gender is not None:
        manifest["gender"] = [gender[i] for i in who]
    embedding = (centroids[who] + 0.3 * rng.standard_normal((len(who), D))).astype(np.float32)
    return SplitData(manifest, embedding, None, np.repeat(face[None], len(who), axis=0))


def test_report_has_every_section_and_says_why_gender_is_missing(real_face):
    test, train = _split(8, 3, 0, real_face, None), _split(10, 3, 1, real_face, None)
    rng = np.random.default_rng(2)
    pred_6s = test.embedding + 0.2 * rng.standard_normal(test.embedding.shape).astype(np.float32)
    pred_3s = rng.standard_normal(test.embedding.shape).astype(np.float32)
    report = evaluate_paper(pred_3s, pred_6s, test, train, StretchDecoder(real_face), ks=[1, 2, 5, 10], gallery_size=5)
    assert set(report) == {"features", "retrieval", "gender", "craniofacial"}
    assert report["gender"]["labelled"] == 0 and "no gender labels" in report["gender"]["reason"]
    for length in ("3s_repeated", "6s"):
        assert set(report["features"][length]) == {"cosine_mean", "l1_mean", "l2_mean"}
        retrieval = report["retrieval"][length]
        assert retrieval["gallery_size"] == 5 and retrieval["queries"] == 24 and retrieval["speakers"] == 8
        assert retrieval["chance_at_1"] == 0.2 and "recall_at_10" not in retrieval  # K above the gallery: left out
    assert report["retrieval"]["6s"]["recall_at_1"] > 0.9 > report["retrieval"]["3s_repeated"]["recall_at_1"]
    assert report["features"]["6s"]["cosine_mean"] > report["features"]["3s_repeated"]["cosine_mean"]
    json.dumps(report, allow_nan=False)  # valid JSON: numbers, strings and nulls only


def test_gender_agreement_is_high_for_good_predictions_and_chance_for_noise(real_face):
    test = _split(10, 2, 0, real_face, ["m", "f"] * 5)
    train = _split(20, 3, 1, real_face, ["m"] * 12 + ["f"] * 8)
    test.manifest.loc[0, "gender"] = None  # an unlabelled clip is left out, not counted
    rng = np.random.default_rng(3)
    pred_6s = test.embedding + 0.2 * rng.standard_normal(test.embedding.shape).astype(np.float32)
    pred_3s = rng.standard_normal((200, D)).astype(np.float32)[:20]
    gender = evaluate_paper(pred_3s, pred_6s, test, train, None, ks=[1])["gender"]
    assert gender["labelled"] == 19
    assert gender["ceiling"] == 1.0 and gender["agreement_6s"] >= 0.9
    assert gender["agreement_3s_repeated"] < 0.85 and gender["majority"] == pytest.approx(10 / 19)


def test_gender_with_one_class_in_train_gives_a_reason(real_face):
    test, train = _split(4, 2, 0, real_face, ["m", "f"] * 2), _split(4, 2, 1, real_face, ["m"] * 4)
    gender = evaluate_paper(test.embedding, test.embedding, test, train, None, ks=[1])["gender"]
    assert gender["labelled"] == 0 and "two classes" in gender["reason"]


def test_gender_labels_are_read_leniently():
    manifest = pd.DataFrame({"gender": ["m", "F", "female", None, "", "x", float("nan")]})
    assert gender_labels(manifest).tolist() == ["m", "f", "f", "", "", "", ""]
    assert gender_labels(pd.DataFrame({"speaker": ["a"]})).tolist() == [""]


def test_logistic_regression_separates_and_balances_classes():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((300, 50))
    y = x[:, 3] + 0.5 * x[:, 7] > 1.0  # about 20 % positive
    clf = fit_logistic(x[:200], y[:200])
    predicted = clf.predict(x[200:])
    assert (predicted == y[200:]).mean() > 0.85
    assert predicted[y[200:]].mean() > 0.6 and (~predicted[~y[200:]]).mean() > 0.85  # the rare class is not out-voted


def test_craniofacial_correlation_follows_the_decoded_face(real_face):
    test, train = _split(12, 2, 0, real_face, None), _split(4, 2, 1, real_face, None)
    rng = np.random.default_rng(5)
    test.embedding[:, 0] = rng.uniform(-1.5, 1.5, len(test.embedding))   # how tall each decoded face is
    pred_6s = test.embedding + 0.1 * rng.standard_normal(test.embedding.shape).astype(np.float32)
    decoder = StretchDecoder(real_face)
    crani = evaluate_paper(pred_6s, pred_6s, test, train, decoder, ks=[1], craniofacial_max=20)["craniofacial"]
    assert decoder.training  # evaluation put the decoder back in the mode it found it in
    assert crani["samples"] == 20
    assert set(crani["voice_vs_face_decoded"]) == set(crani["baseline_shuffled"])
    r, base = crani["voice_vs_face_decoded"], crani["baseline_shuffled"]
    for name in ("face_height", "nose_height", "lower_face_height"):  # vertical lengths in IODs follow the stretch
        assert r[name] > 0.8, (name, r[name])
        assert abs(base[name]) < r[name] - 0.3, (name, base[name])


def test_no_decoder_skips_craniofacial_with_a_reason(real_face):
    test = _split(3, 2, 0, real_face, None)
    crani = evaluate_paper(test.embedding, test.embedding, test, test, None, ks=[1])["craniofacial"]
    assert crani == {"samples": 0, "reason": "no face decoder given"}


def test_predictions_must_match_the_test_split(real_face):
    test = _split(3, 2, 0, real_face, None)
    with pytest.raises(ValueError, match="pred_short has shape"):
        evaluate_paper(test.embedding[:2], test.embedding, test, test, None, ks=[1])


def test_flatten_metrics_keeps_numbers_with_dotted_names():
    nested = {"retrieval": {"6s": {"recall_at_1": 0.5, "queries": 10}}, "gender": {"labelled": 0, "reason": "none"},
              "craniofacial": {"voice_vs_face_decoded": {"nose_width": None, "mouth_width": 0.2}}, "ok": True}
    assert flatten_metrics(nested) == {"retrieval.6s.recall_at_1": 0.5, "retrieval.6s.queries": 10.0,
                                       "gender.labelled": 0.0, "craniofacial.voice_vs_face_decoded.mouth_width": 0.2}


def test_a_report_differing_only_in_the_kernels_last_digits_is_written_the_same():
    # the Frechet distance of the demo's committed evaluation, with OpenBLAS's AVX-512 and its Haswell kernels
    on_avx512 = {"images": {"frechet_distance": 0.08057597453202528, "detection_ratio": 1.0},
                 "retrieval": {"6s": {"recall_at_1": 71 / 191, "queries": 191}}, "reason": "none", "missing": None}
    on_avx2 = on_avx512 | {"images": {"frechet_distance": 0.08057597453202531, "detection_ratio": 1.0}}
    assert json.dumps(to_significant(on_avx512)) == json.dumps(to_significant(on_avx2))
    assert to_significant(on_avx512) == {"images": {"frechet_distance": 0.080576, "detection_ratio": 1.0},
                                         "retrieval": {"6s": {"recall_at_1": 0.371728, "queries": 191}},
                                         "reason": "none", "missing": None}
    assert round(to_significant(71 / 191) * 191) == 71  # the promotion gate's hit count survives the rounding


def test_face_grid_has_a_column_per_source_and_a_row_per_speaker(real_face):
    test = _split(5, 2, 0, real_face, None)
    decoder = StretchDecoder(real_face)
    grid = paper_face_grid(test, test.embedding, test.embedding, decoder, speakers=3, cell=32)
    assert grid.size == (4 * 32, 18 + 3 * 32)
    true_cell = np.asarray(grid)[18:50, :32].astype(float)
    assert true_cell.std() > 10  # a face was pasted, not left white
    decoded = decode_images(decoder, test.embedding[:2])
    assert decoded.shape == (2, 64, 64, 3) and decoded.dtype == np.uint8
    with pytest.raises(ValueError, match="titles"):
        face_grid(test.face[:2], [decoded], GRID_TITLES)


def test_the_short_clip_metric_feeds_the_encoder_what_serving_feeds_it(tmp_path):
    """Evaluation's 3 s numbers must describe the served model: the same 3 s of audio, evaluated or POSTed as a file,
    reach the encoder as the same samples (the 3 s repeated to the 6 s clip), so they give the same feature."""
    from s2f.audio import SAMPLE_RATE
    from s2f.evaluation import predict_short
    from s2f.inference import Speech2Face, decode_audio
    from tests.serving import audio_bytes, tiny_models

    model = Speech2Face.from_files(*tiny_models(tmp_path), device="cpu")
    clips = (np.random.default_rng(0).standard_normal((2, 6 * SAMPLE_RATE)) * 3000).astype(np.int16)
    seen: list[np.ndarray] = []
    hook = model.encoder.register_forward_hook(lambda mod, args, out: seen.append(args[0].numpy().copy()))
    try:
        evaluated = predict_short(model.encoder, clips, short_seconds=3.0)
        served = [model.feature(decode_audio(audio_bytes(c[:3 * SAMPLE_RATE], SAMPLE_RATE), "3s.wav")) for c in clips]
    finally:
        hook.remove()
    evaluation_input, serving_inputs = seen[0], seen[1:]
    for i in range(len(clips)):
        assert evaluation_input[i].shape == serving_inputs[i][0].shape == (6 * SAMPLE_RATE,)
        np.testing.assert_array_equal(evaluation_input[i], serving_inputs[i][0])
        np.testing.assert_allclose(evaluated[i], served[i], atol=1e-5)


def test_short_clips_are_the_first_seconds_repeated_to_the_clip_length():
    from s2f.evaluation import short_clips

    audio = np.arange(2 * 10, dtype=np.int16).reshape(2, 10)   # 10 samples per clip at a 2 Hz "rate": 5 s clips
    np.testing.assert_array_equal(short_clips(audio, 1.5, sample_rate=2),
                                  [[0, 1, 2, 0, 1, 2, 0, 1, 2, 0], [10, 11, 12, 10, 11, 12, 10, 11, 12, 10]])
    np.testing.assert_array_equal(short_clips(audio, 9.0, sample_rate=2), audio)   # longer than the clip: unchanged


def test_the_short_key_names_its_length_and_policy_and_6s_stays_for_promotion(real_face):
    test = _split(3, 2, 0, real_face, ["m", "f", "m"])
    report = evaluate_paper(test.embedding, test.embedding, test, test, None, ks=[1], short_seconds=2.5)
    assert set(report["retrieval"]) == set(report["features"]) == {"2.5s_repeated", "6s"}
    assert "agreement_2.5s_repeated" in report["gender"]
    flat = flatten_metrics(report)
    assert PromoteParams.model_fields["metric"].default in flat and "retrieval.2.5s_repeated.recall_at_1" in flat
