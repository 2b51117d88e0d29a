import warnings

import numpy as np
import pytest

from s2f.metrics import feature_distances, gallery_recall, pearson_r, retrieval_recall


def test_perfect_predictions_retrieve_every_speaker():
    gallery = np.eye(5)
    ids = np.array(list("abcde"))
    assert retrieval_recall(gallery, ids, gallery, ids, [1, 5]) == {1: 1.0, 5: 1.0}


def test_constant_prediction_scores_no_better_than_chance():
    rng = np.random.default_rng(0)
    gallery, ids = rng.standard_normal((20, 8)), np.arange(20)
    queries = np.ones((20, 8))
    recall = retrieval_recall(queries, ids, gallery, ids, [1, 10])
    assert recall[1] <= 1 / 20 + 1e-9 and recall[10] <= 10 / 20 + 1e-9


def test_ties_count_against_the_query():
    gallery = np.array([[1.0, 0.0], [1.0, 0.0]])
    assert retrieval_recall(gallery[:1], np.array([0]), gallery, np.array([0, 1]), [1])[1] == 0.0


def test_feature_distances():
    d = feature_distances(np.array([[1.0, 0.0]]), np.array([[0.0, 2.0]]))
    assert d == {"cosine_mean": 0.0, "l1_mean": 3.0, "l2_mean": np.sqrt(5)}


def test_unknown_query_identity_is_an_error_not_a_miss():
    gallery = np.eye(3)
    with pytest.raises(ValueError, match="zz"):
        retrieval_recall(gallery[:1], np.array(["zz"]), gallery, np.array(list("abc")), [1])


def test_gallery_recall_is_retrieval_recall_when_all_identities_fit():
    rng = np.random.default_rng(1)
    gallery, ids = rng.standard_normal((40, 16)), np.arange(40)
    qids = rng.integers(0, 40, 120)
    queries = gallery[qids] + 1.5 * rng.standard_normal((120, 16))
    ks = [1, 2, 5, 10, 50]
    out = gallery_recall(queries, qids, gallery, ids, ks, gallery_size=100)
    exact = retrieval_recall(queries, qids, gallery, ids, [1, 2, 5, 10])
    assert out["gallery_size"] == 40 and "recall_at_50" not in out  # K above the gallery is left out
    assert {k: out[f"recall_at_{k}"] for k in exact} == exact
    assert out["chance_at_5"] == 5 / 40
    assert 0.1 < out["recall_at_1"] < 0.9  # neither trivial nor hopeless: the equality above means something


def test_gallery_recall_of_random_queries_is_chance_in_a_gallery_of_100():
    rng = np.random.default_rng(2)
    gallery, ids = rng.standard_normal((300, 32)), np.arange(300)
    queries, qids = rng.standard_normal((600, 32)), rng.integers(0, 300, 600)
    out = gallery_recall(queries, qids, gallery, ids, [1, 10, 50], gallery_size=100, seed=0, trials=3)
    assert out["gallery_size"] == 100 and out["chance_at_10"] == 0.1
    assert abs(out["recall_at_1"] - 0.01) < 0.01
    assert abs(out["recall_at_10"] - 0.10) < 0.03
    assert abs(out["recall_at_50"] - 0.50) < 0.05
    # a smaller gallery than the full one makes good queries easier: recall@1 of noisy-true queries rises above full
    noisy = gallery[qids] + 1.5 * rng.standard_normal((600, 32))
    full = retrieval_recall(noisy, qids, gallery, ids, [1])[1]
    assert gallery_recall(noisy, qids, gallery, ids, [1], gallery_size=100)["recall_at_1"] > full


def test_gallery_recall_is_seeded():
    rng = np.random.default_rng(3)
    gallery, ids = rng.standard_normal((150, 8)), np.arange(150)
    queries, qids = gallery + rng.standard_normal((150, 8)), ids
    a = gallery_recall(queries, qids, gallery, ids, [1, 5], gallery_size=20, seed=4)
    assert a == gallery_recall(queries, qids, gallery, ids, [1, 5], gallery_size=20, seed=4)
    assert a != gallery_recall(queries, qids, gallery, ids, [1, 5], gallery_size=20, seed=5)


def test_perfect_queries_have_recall_one_in_any_gallery():
    rng = np.random.default_rng(4)
    gallery, ids = rng.standard_normal((250, 8)), np.array([f"id{i}" for i in range(250)])
    out = gallery_recall(gallery[::-1], ids[::-1], gallery, ids, [1, 2], gallery_size=100)
    assert out["recall_at_1"] == 1.0 and out["recall_at_2"] == 1.0


def test_gallery_recall_ties_count_against_the_query():
    gallery = np.ones((200, 4))
    out = gallery_recall(gallery, np.arange(200), gallery, np.arange(200), [1, 99, 100], gallery_size=100)
    assert out["recall_at_1"] == 0.0 and out["recall_at_99"] == 0.0 and out["recall_at_100"] == 1.0


def test_gallery_ids_must_be_unique():
    with pytest.raises(ValueError, match="unique"):
        gallery_recall(np.eye(2), np.array([0, 1]), np.eye(2), np.array([0, 0]), [1])


def test_pearson_r():
    x = np.arange(10.0)
    assert pearson_r(x, 3 * x + 1) == pytest.approx(1.0)
    assert pearson_r(x, -x) == pytest.approx(-1.0)
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal(500), rng.standard_normal(500)
    assert pearson_r(a, b) == pytest.approx(np.corrcoef(a, b)[0, 1])
    assert abs(pearson_r(a, b)) < 0.15


def test_pearson_r_is_nan_when_undefined_and_skips_non_finite_pairs():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning either
        assert np.isnan(pearson_r(np.full(5, 0.1), np.arange(5.0)))
        assert np.isnan(pearson_r(np.array([1.0]), np.array([2.0])))
        assert pearson_r(np.array([1.0, 2.0, np.nan, 3.0]), np.array([2.0, 4.0, 0.0, 6.0])) == pytest.approx(1.0)
