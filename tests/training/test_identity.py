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


def test_identity_head_is_the_same_bytes_whatever_the_thread_count():
    """The head is inside the `features` output: a machine with more cores must fit the same one (it differed
    between 1, 2 and 4 threads before the fit was pinned to one)."""
    rng = np.random.default_rng(0)
    x, speakers = rng.normal(size=(2000, 128)).astype(np.float32), rng.integers(0, 72, 2000)  # differed unpinned
    before = torch.get_num_threads()
    heads = []
    try:
        for threads in (1, 3):
            torch.set_num_threads(threads)
            head, _ = fit_identity_head(x, speakers, epochs=20)
            heads.append(torch.cat([head.weight.flatten(), head.bias]).numpy().tobytes())
            assert torch.get_num_threads() == threads  # the caller's setting is given back
    finally:
        torch.set_num_threads(before)
    assert heads[0] == heads[1]
