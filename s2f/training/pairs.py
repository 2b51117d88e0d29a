"""What the voice → face GANs read: a clip's voice, its speaker's face, and a face of somebody else.

Why a face of somebody else: Wav2Pix's discriminator also learns to reject a real face shown with the wrong voice
(the "wrong" pair), so the data gives every sample one. As in `s2f.training.data`, every random choice (the
horizontal flip, which other face) is seeded by (seed, epoch, index): a resumed run reads exactly the batches the
uninterrupted one would have.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from s2f.dataset import MappedRows, is_lazy
from s2f.training.data import SampleKey


def shrink_face(face: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 crop → (size, size, 3) uint8 (the GANs work at 64 or 128 px)."""
    if face.shape[0] == size and face.shape[1] == size:
        return face
    return np.asarray(Image.fromarray(face).resize((size, size), Image.Resampling.LANCZOS))


def shrink_faces(faces, size: int):
    """(N, H, W, 3) uint8 crops → (N, size, size, 3): resized once up front for an array, or as each row is read
    for streamed rows (`s2f.dataset`)."""
    if is_lazy(faces):
        return MappedRows(faces, partial(shrink_face, size=size))
    return np.stack([shrink_face(f, size) for f in faces]) if len(faces) else faces


def to_signed(faces: np.ndarray) -> torch.Tensor:
    """(..., S, S, 3) uint8 → (..., 3, S, S) float in [-1, 1], the GANs' image range."""
    x = torch.from_numpy(np.ascontiguousarray(faces)).float().div(127.5).sub(1.0)
    return x.movedim(-1, -3)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, S, S) float in [-1, 1] → (B, S, S, 3) uint8 (values outside the range are clipped)."""
    x = images.detach().float().clamp(-1, 1).add(1).mul(127.5).round().byte()
    return x.movedim(-3, -1).cpu().numpy()


def dense_labels(speakers: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Speaker ids → (N,) int64 class labels 0..K-1 in sorted-id order, and the ids in label order."""
    ids = sorted(set(speakers.tolist()))
    index = {s: i for i, s in enumerate(ids)}
    return np.array([index[s] for s in speakers], np.int64), ids


class FaceVoicePairs(Dataset):
    """(epoch, i) → {voice_key: voice i, "face": (3, S, S), "wrong_face": (3, S, S), "speaker": int}.

    voices: (N, L) int16 clips, given as float in [-1, 1] (key "wave"), or precomputed features such as a log-mel
    (N, 64, T) float32 (key "mel" for Wen et al.), given as they are. Faces (N, S, S, 3) uint8 stay compact;
    conversion happens per sample. Voices and faces may be arrays or streamed rows (`s2f.dataset`): only the labels
    are held whole. "wrong_face" is the face of a clip of another speaker.
    """

    def __init__(self, voices, faces, labels: np.ndarray, seed: int, flip: bool = True,
                 voice_key: str = "wave"):
        if not len(voices) == len(faces) == len(labels):
            raise ValueError(f"voices, faces and labels differ in length: {len(voices)}, {len(faces)}, {len(labels)}")
        if len(set(labels.tolist())) < 2:
            raise ValueError("the GANs need at least two speakers (a wrong face is another speaker's)")
        self.voices, self.faces, self.labels, self.seed, self.flip = voices, faces, labels, seed, flip
        self.voice_key = voice_key

    def __len__(self) -> int:
        return len(self.voices)

    def voice(self, i: int) -> torch.Tensor:
        v = self.voices[i]
        return torch.from_numpy(v.astype(np.float32) / 32768.0 if v.dtype == np.int16 else np.ascontiguousarray(v))

    def __getitem__(self, key: SampleKey) -> dict[str, torch.Tensor]:
        epoch, i = key
        rng = np.random.default_rng([self.seed, epoch, i])
        others = np.flatnonzero(self.labels != self.labels[i])
        wrong = int(others[rng.integers(len(others))])
        flip = self.flip and bool(rng.integers(2))
        face, wrong_face = (to_signed(self.faces[j]) for j in (i, wrong))
        if flip:
            face = face.flip(-1)
        return {self.voice_key: self.voice(i), "face": face, "wrong_face": wrong_face,
                "speaker": torch.tensor(int(self.labels[i]))}
