"""Metrics of voice → face GENERATORS on face-feature vectors (pure numpy / scipy; the images → features step is
s2f/faces/generated.py).

- `frechet_distance`: FID's formula (Heusel et al. 2017) between the feature distributions of real and generated faces.
- `matching_accuracy`: the 1:2 voice → face matching of SVHF (Nagrani et al. 2018) as used for generated faces by
  Wen et al. 2019 ("Face Reconstruction from Voice using GANs"): is the face generated from a voice nearer to that
  speaker's real face than to another speaker's? Chance is 0.5.
- `identity_accuracy`: Wav2Pix's identity classification (Duarte et al. 2019): a classifier of the seen speakers,
  trained on their REAL faces, names the speaker of each generated face.
Retrieval of generated faces among real ones is `s2f.metrics.gallery_recall`.
"""

from __future__ import annotations

import numpy as np

from s2f.metrics import _unit

CHANCE_1_TO_2 = 0.5


# ---- Fréchet distance ---------------------------------------------------------------------------------------------

def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """‖μ_r − μ_f‖² + Tr(Σ_r + Σ_f − 2(Σ_r Σ_f)^½) between Gaussians fitted to real (N, D) and fake (M, D) features.

    This is FID's formula, but in the FACE-DESCRIPTOR space (e.g. dlib's 128-D), not Inception-v3's pool3: the
    Inception weights cannot be had offline here. So the numbers are NOT comparable to published FIDs, only to each
    other, and only at equal sample sizes (the estimate is biased upward for small N, as FID's is); an identity
    feature space also makes the distance see identity and attributes more than image texture.

    The trace of the matrix square root is computed exactly without one: with Σ_r = aᵀa and Σ_f = bᵀb (a, b the
    centred samples over √(N−1), √(M−1)), the non-zero eigenvalues of Σ_r Σ_f are those of (abᵀ)(abᵀ)ᵀ, so
    Tr((Σ_r Σ_f)^½) is the sum of the singular values of the (N, M) matrix abᵀ. The reference implementation
    (pytorch-fid) takes `scipy.linalg.sqrtm` of the (D, D) product, which gives the same number up to rounding but
    took minutes per call at VGG-Face's D = 4096 and needs an ε·I and an imaginary-part check on singular
    covariances (any N ≤ D). The result is clipped at 0 against rounding.
    """
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"frechet_distance needs (N, D) and (M, D) features, got {real.shape} and {fake.shape}")
    if len(real) < 2 or len(fake) < 2:
        raise ValueError(f"frechet_distance needs at least 2 samples a side, got {len(real)} and {len(fake)}")
    mu_r, mu_f = real.mean(axis=0), fake.mean(axis=0)                         # (D,)
    a = (real - mu_r) / np.sqrt(len(real) - 1)                                # (N, D): Σ_r = aᵀa
    b = (fake - mu_f) / np.sqrt(len(fake) - 1)                                # (M, D): Σ_f = bᵀb
    # Tr((Σ_r Σ_f)^½) = Σ √λ(aᵀa bᵀb) = Σ √λ((abᵀ)(abᵀ)ᵀ) = the nuclear norm of abᵀ: exact, and an (N, M) SVD
    # instead of a (D, D) matrix square root (minutes per call at VGG-Face's D = 4096)
    trace_sqrt = np.linalg.svd(a @ b.T, compute_uv=False).sum()
    diff = mu_r - mu_f
    value = diff @ diff + (a * a).sum() + (b * b).sum() - 2 * trace_sqrt
    return float(max(value, 0.0))


# ---- 1:2 matching -------------------------------------------------------------------------------------------------

def matching_accuracy(generated: np.ndarray, true_faces: np.ndarray, speakers: np.ndarray,
                      genders: np.ndarray | None = None, pairs_per_query: int = 10, seed: int = 0) -> dict:
    """SVHF's 1:2 matching for generated faces: the share of trials where a face generated from query i's voice is
    more cosine-similar to i's real face than to the real face of another speaker j.

    generated, true_faces: (N, D) features of the face generated from clip i's voice and of clip i's real face;
    speakers (N,) their speaker ids; genders (N,) "m" / "f" / "" (unknown) or None. Each query gets
    `pairs_per_query` foils j, each a row of another speaker drawn uniformly (with `seed`: the same trials every run).
    Ties count as wrong (a degenerate all-zero feature, equally near every face, scores 0, not a coin flip).

    Why also gender-stratified (SVHF's and Wen et al.'s stratified test): a generator that only gets gender right
    already wins every mixed-gender trial, about half of them, so unstratified accuracy ≈ 0.75 with no identity
    information; with the foil drawn from the query's own gender, only identity beyond gender scores above 0.5.
    Queries without a gender label, or whose gender has no other speaker, are skipped there.

    Returns accuracy, trials (queries used × pairs_per_query), chance (0.5); with genders also
    accuracy_gender_stratified and trials_gender_stratified. An accuracy with no trials is nan ("not measurable").
    """
    generated, true_faces = np.asarray(generated, np.float64), np.asarray(true_faces, np.float64)
    speakers = np.asarray(speakers)
    if generated.shape != true_faces.shape or generated.ndim != 2:
        raise ValueError(f"generated {generated.shape} and true_faces {true_faces.shape} must be the same (N, D)")
    if speakers.shape != (len(generated),):
        raise ValueError(f"speakers has shape {speakers.shape}, expected ({len(generated)},)")
    if pairs_per_query < 1:
        raise ValueError(f"pairs_per_query must be at least 1, got {pairs_per_query}")
    gen, real = _unit(generated), _unit(true_faces)
    own = (gen * real).sum(axis=1)                                              # (N,) cos(generated_i, true_i)
    everyone = np.zeros(len(gen), dtype=int)
    acc, trials = _matching(gen, real, own, speakers, everyone, everyone == 0, pairs_per_query, seed)
    out: dict = {"accuracy": acc, "trials": trials, "chance": CHANCE_1_TO_2}
    if genders is not None:
        genders = np.asarray(genders, dtype=object)
        if genders.shape != speakers.shape:
            raise ValueError(f"genders has shape {genders.shape}, expected {speakers.shape}")
        labelled = np.array([isinstance(g, str) and g != "" for g in genders])
        _, group = np.unique(np.where(labelled, genders, "").astype(str), return_inverse=True)
        acc, trials = _matching(gen, real, own, speakers, group, labelled, pairs_per_query, seed)
        out |= {"accuracy_gender_stratified": acc, "trials_gender_stratified": trials}
    return out


def _matching(gen: np.ndarray, real: np.ndarray, own: np.ndarray, speakers: np.ndarray, group: np.ndarray,
              usable: np.ndarray, pairs: int, seed: int) -> tuple[float, int]:
    """Accuracy and trial count of 1:2 trials whose foil is a `usable` row of the query's `group`, another speaker."""
    rows = np.flatnonzero(usable)                                               # candidate foils and queries
    _, spk = np.unique(speakers[rows], return_inverse=True)
    key = group[rows] * (spk.max(initial=0) + 1) + spk                          # (R,) sorts by group, then speaker
    order = np.argsort(key, kind="stable")
    sorted_group, sorted_key = group[rows][order], key[order]
    g0, g1 = np.searchsorted(sorted_group, group[rows], "left"), np.searchsorted(sorted_group, group[rows], "right")
    s0, s1 = np.searchsorted(sorted_key, key, "left"), np.searchsorted(sorted_key, key, "right")
    others = (g1 - g0) - (s1 - s0)                                              # (R,) foils available per query
    has = others > 0
    queries, g0, s0, s1, others = rows[has], g0[has], s0[has], s1[has], others[has]
    if len(queries) == 0:
        return float("nan"), 0
    draw = np.floor(np.random.default_rng(seed).random((len(queries), pairs)) * others[:, None]).astype(int)
    at = g0[:, None] + draw                                                     # (Q, P) position in the group block...
    at = np.where(at >= s0[:, None], at + (s1 - s0)[:, None], at)               # ...skipping the query's own speaker
    foils = rows[order[at]]                                                     # (Q, P) row indices j
    foil_sim = np.einsum("qd,qpd->qp", gen[queries], real[foils])               # (Q, P) cos(generated_i, true_j)
    correct = own[queries][:, None] > foil_sim
    return float(correct.mean()), int(correct.size)


# ---- identity classification --------------------------------------------------------------------------------------

def identity_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> dict:
    """Wav2Pix's identity accuracy: the share of generated faces test_x (M, D) whose speaker test_y (M,) a classifier
    of the seen speakers, fitted on their REAL face features train_x (N, D) with labels train_y (N,), names.

    Wav2Pix trained a CNN on real images of the training identities; on features, we use the nearest class
    centroid by cosine (the mean unit feature of each speaker): it has no seed, no hyperparameter and no training
    run to report, and it is how face descriptors such as dlib's are meant to be compared (trained so that one
    person's faces cluster by angle). Every test speaker must be one of the classes (generated faces of SEEN
    speakers, as in Wav2Pix); an unseen one is an error, not a miss.

    Returns accuracy, chance (1 / classes) and classes.
    """
    train_x, test_x = np.asarray(train_x, np.float64), np.asarray(test_x, np.float64)
    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    if len(train_x) != len(train_y) or len(test_x) != len(test_y):
        raise ValueError("identity_accuracy needs one label per feature row")
    classes, inverse = np.unique(train_y, return_inverse=True)
    unseen = sorted({str(y) for y in set(test_y.tolist()) - set(classes.tolist())})
    if unseen:
        raise ValueError(f"test identities with no real training faces: {', '.join(unseen[:5])}")
    unit = _unit(train_x)
    centroids = np.zeros((len(classes), train_x.shape[1]))                      # (C, D)
    np.add.at(centroids, inverse, unit)
    predicted = classes[np.argmax(_unit(test_x) @ _unit(centroids).T, axis=1)]  # (M,)
    return {"accuracy": float((predicted == test_y).mean()), "chance": 1.0 / len(classes), "classes": len(classes)}
