"""The identity classifier head f_VGG of the distillation loss, for backends that do not come with one.

VGG-Face ships its own (fc8 over 2622 identities). dlib's descriptor does not, so, as the design says, a linear
softmax classifier is fitted on the training speakers' face features and then frozen. Full-batch Adam on a few
thousand 128-D rows takes well under a second, so it is fitted where the features are (the `features` stage).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from s2f.numerics import one_thread


def fit_identity_head(embedding: np.ndarray, speakers: np.ndarray, epochs: int = 300, lr: float = 0.05,
                      seed: int = 0) -> tuple[nn.Linear, list[str]]:
    """A linear classifier feature → training identity, and the identity order of its outputs.

    Features are standardised inside the layer (weights and bias absorb mean and scale) because face features of
    different people differ by a few percent around a common mean. It is fitted on one thread, whatever the
    machine: the head is part of the `features` output, and its bytes would otherwise depend on the core count
    (`s2f.numerics`); a few thousand rows take well under a second either way.
    """
    with one_thread():
        return _fit(embedding, speakers, epochs, lr, seed)


def _fit(embedding: np.ndarray, speakers: np.ndarray, epochs: int, lr: float, seed: int) -> tuple[nn.Linear, list[str]]:
    torch.manual_seed(seed)
    ids = sorted(set(map(str, speakers)))
    index = {s: i for i, s in enumerate(ids)}
    x = torch.from_numpy(np.asarray(embedding, np.float32))
    y = torch.tensor([index[str(s)] for s in speakers])
    mean, scale = x.mean(0), x.std(0).clamp_min(1e-6)
    inner = nn.Linear(x.shape[1], len(ids))
    opt = torch.optim.Adam(inner.parameters(), lr=lr)
    for _ in range(epochs):
        loss = F.cross_entropy(inner((x - mean) / scale), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    head = nn.Linear(x.shape[1], len(ids))
    with torch.no_grad():  # fold the standardisation in: W' = W / s, b' = b − W' · m
        head.weight.copy_(inner.weight / scale)
        head.bias.copy_(inner.bias - head.weight @ mean)
    return head.requires_grad_(False).eval(), ids


def head_from_arrays(weight: np.ndarray, bias: np.ndarray) -> nn.Linear:
    """Rebuild a frozen head from (classes, dim) weights and (classes,) bias, e.g. VGG-Face's fc8."""
    head = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(np.asarray(weight, np.float32)))
        head.bias.copy_(torch.from_numpy(np.asarray(bias, np.float32)))
    return head.requires_grad_(False).eval()


@torch.no_grad()
def accuracy(head: nn.Module, embedding: np.ndarray, speakers: np.ndarray, ids: list[str]) -> float:
    index = {s: i for i, s in enumerate(ids)}
    y = torch.tensor([index[str(s)] for s in speakers])
    return float((head(torch.from_numpy(np.asarray(embedding, np.float32))).argmax(1) == y).float().mean())
