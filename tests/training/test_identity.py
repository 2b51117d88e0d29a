import numpy as np
import torch

from s2f.training.identity import accuracy, fit_identity_head, head_from_arrays


def test_identity_head_learns_the_training_speakers_and_is_frozen():
    rng = np.random.default_rng(0)
    centres = 1.0 + rng.normal(0, 0.05, (6, 16))  # like face features: a common mean, small differences
    speakers = np.repeat([f"spk{i}" for i in range(6)], 10)
    x = centres[np.repeat(np.arange(6), 10)] + rng.normal(0, 0.01, (60, 16))
    head, ids = fit_identity_head(x.astype(np.float32), speakers, epochs=200)
    assert ids == sorted(set(speakers)) and head.out_features == 6
    assert accuracy(head, x.astype(np.float32), speakers, ids) == 1.0
    assert not any(p.requires_grad for p in head.parameters())


def test_head_from_arrays_reproduces_the_given_layer():
    weight, bias = np.arange(12, dtype=np.float32).reshape(3, 4), np.array([1, 2, 3], np.float32)
    head = head_from_arrays(weight, bias)
    x = torch.ones(2, 4)
    torch.testing.assert_close(head(x), x @ torch.from_numpy(weight).T + torch.from_numpy(bias))
