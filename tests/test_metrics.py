import numpy as np

from s2f.metrics import feature_distances, retrieval_recall


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
