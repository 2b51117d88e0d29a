"""Generator metrics on features: Fréchet distance, SVHF 1:2 matching (plain, gender-stratified), identity accuracy."""

import numpy as np
import pytest

from s2f.generation_metrics import frechet_distance, identity_accuracy, matching_accuracy


def _speakers(n_speakers: int, clips: int, dim: int, seed: int, noise: float = 0.0):
    """(N, dim) faces of `n_speakers` random people, `clips` each (plus noise), and their (N,) speaker ids."""
    rng = np.random.default_rng(seed)
    people = rng.standard_normal((n_speakers, dim))
    ids = np.repeat(np.arange(n_speakers), clips)
    return people[ids] + noise * rng.standard_normal((len(ids), dim)), ids


# ---- Fréchet distance ---------------------------------------------------------------------------------------------

def test_frechet_of_a_set_with_itself_is_zero():
    x = np.random.default_rng(0).standard_normal((400, 32)) @ np.random.default_rng(1).standard_normal((32, 32))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)


def test_frechet_of_a_mean_shift_is_the_squared_shift():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((300, 16))
    shift = rng.standard_normal(16)
    assert frechet_distance(x, x + shift) == pytest.approx(float(shift @ shift), rel=1e-6)


def test_frechet_sees_a_change_of_spread_by_the_trace_term():
    """fake = c·real (same mean): Σ_f = c²Σ_r, so the distance is Tr(Σ_r)(1 − c)²: only a right √ term gives it."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((500, 8)) * np.arange(1, 9)
    x -= x.mean(axis=0)
    trace = np.trace(np.cov(x, rowvar=False))
    assert frechet_distance(x, 3 * x) == pytest.approx(4 * trace, rel=1e-6)


def test_frechet_is_symmetric_and_handles_fewer_samples_than_dimensions():
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((200, 12)), 0.5 + 2 * rng.standard_normal((150, 12))
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)
    few = rng.standard_normal((40, 128))                      # singular covariance, as 40 generated dlib features
    assert frechet_distance(few, few) == pytest.approx(0.0, abs=1e-6)
    assert np.isfinite(frechet_distance(few, rng.standard_normal((40, 128))))


def test_frechet_rejects_features_of_different_sizes():
    with pytest.raises(ValueError, match="D"):
        frechet_distance(np.zeros((5, 4)), np.zeros((5, 3)))


# ---- 1:2 matching -------------------------------------------------------------------------------------------------

def test_random_generations_match_at_chance():
    true, ids = _speakers(400, 5, 32, seed=5)                  # 2000 queries
    genders = np.where(ids % 2, "m", "f")
    generated = np.random.default_rng(6).standard_normal(true.shape)
    out = matching_accuracy(generated, true, ids, genders, pairs_per_query=1, seed=0)
    assert out["chance"] == 0.5 and out["trials"] == 2000 and out["trials_gender_stratified"] == 2000
    assert abs(out["accuracy"] - 0.5) < 0.05
    assert abs(out["accuracy_gender_stratified"] - 0.5) < 0.05


def test_the_true_face_always_wins_and_foils_are_never_the_same_speaker():
    """Each speaker's clips share one face: a foil of the query's own speaker would tie, and ties count as wrong."""
    true, ids = _speakers(30, 4, 16, seed=7)
    out = matching_accuracy(true, true, ids, None, pairs_per_query=20, seed=0)
    assert out == {"accuracy": 1.0, "trials": 120 * 20, "chance": 0.5}


def test_ties_count_as_wrong():
    """A degenerate (all-zero) generated feature is equally near every face: it must score 0, not a coin flip."""
    true, ids = _speakers(20, 3, 8, seed=8)
    assert matching_accuracy(np.zeros_like(true), true, ids, None, 5, 0)["accuracy"] == 0.0


def test_gender_only_generations_beat_chance_unless_stratified():
    """Faces = gender direction + identity; generations know the gender only. Unstratified, every mixed-gender trial
    is won (≈ 0.75); stratified, foils share the query's gender, so identity alone decides (≈ 0.5)."""
    rng = np.random.default_rng(9)
    n_speakers, clips = 300, 4
    gender = rng.integers(0, 2, n_speakers)
    direction = np.where(gender, 1.0, -1.0)[:, None] * np.eye(32)[0] * 6        # (S, 32)
    true_people = direction + rng.standard_normal((n_speakers, 32))
    ids = np.repeat(np.arange(n_speakers), clips)
    true = true_people[ids]
    generated = direction[ids] + rng.standard_normal(true.shape)               # gender, no identity
    labels = np.where(gender[ids] == 1, "m", "f")
    out = matching_accuracy(generated, true, ids, labels, pairs_per_query=4, seed=1)
    assert abs(out["accuracy"] - 0.75) < 0.05
    assert abs(out["accuracy_gender_stratified"] - 0.5) < 0.05


def test_unlabelled_queries_and_lone_genders_are_left_out_of_the_stratified_trials():
    true, ids = _speakers(6, 2, 8, seed=10)
    labels = np.array(["m", "m", "m", "m", "", "", "f", "f", "f", "f", "f", "f"])  # speaker 2 unknown
    labels[6:8] = "x"                                                             # speaker 3: the only "x"
    out = matching_accuracy(true, true, ids, labels, pairs_per_query=3, seed=0)
    assert out["trials"] == 12 * 3
    assert out["trials_gender_stratified"] == (4 + 4) * 3                       # speakers 0, 1 (m) and 4, 5 (f)
    assert out["accuracy_gender_stratified"] == 1.0


def test_matching_is_deterministic_with_its_seed_and_nan_without_other_speakers():
    true, ids = _speakers(50, 2, 8, seed=11)
    noisy = true + np.random.default_rng(12).standard_normal(true.shape)
    assert matching_accuracy(noisy, true, ids, None, 3, 4) == matching_accuracy(noisy, true, ids, None, 3, 4)
    assert matching_accuracy(noisy, true, ids, None, 3, 4) != matching_accuracy(noisy, true, ids, None, 3, 5)
    lone = matching_accuracy(true[:2], true[:2], np.array(["a", "a"]), None, 3, 0)
    assert np.isnan(lone["accuracy"]) and lone["trials"] == 0


# ---- identity accuracy --------------------------------------------------------------------------------------------

def test_identity_of_real_faces_is_recognised_and_of_random_ones_is_chance():
    train_x, train_y = _speakers(50, 6, 32, seed=13, noise=0.3)
    test_x, test_y = _speakers(50, 40, 32, seed=13, noise=0.3)                  # the same 50 people, other clips
    real = identity_accuracy(train_x, train_y, test_x, test_y)
    assert real == {"accuracy": 1.0, "chance": 1 / 50, "classes": 50}
    random = identity_accuracy(train_x, train_y, np.random.default_rng(14).standard_normal(test_x.shape), test_y)
    assert abs(random["accuracy"] - random["chance"]) < 0.015  # ±5 standard errors of 2000 draws


def test_identity_of_an_unseen_speaker_is_an_error_not_a_miss():
    x, y = _speakers(3, 2, 4, seed=15)
    with pytest.raises(ValueError, match="stranger"):
        identity_accuracy(x, y.astype(str), x[:1], np.array(["stranger"]))
