"""Evaluate faces generated from voice, the same way for every family (Speech2Face's decoded faces, Wen et al.,
Wav2Pix), so they stand on one table.

Per family, on held-out speakers, for 6 s of voice and for the first 3 s repeated to 6 s (`3s_repeated`):
- retrieval: R@K of the generated face's feature (the face backend run on the image, `embed_generated`) among
  galleries of held-out identities' true face features, with chance (Speech2Face's Table 4 protocol, on images);
- matching: 1:2 voice → face matching, is the generated face closer to the speaker's true face than to another
  person's? unstratified and gender-stratified where the corpus has labels (SVHF / Wen et al.'s protocol);
and from the 6 s faces:
- images: Wav2Pix's detection ratio (dlib finds a face and its 68 landmarks), and the Fréchet distance between
  real and generated faces in the face-descriptor space (FID's formula; Inception weights cannot be had offline);
- unseen_speech: Wav2Pix's identity accuracy, for a family trained on the seen speakers with some of their clips
  left out (`s2f.split.unseen_speech`): a nearest-centroid classifier over the seen speakers' real face features
  names the identity of the faces generated from the left-out clips.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from s2f.dataset import SplitData
from s2f.evaluation import gender_labels, retrieval_metrics
from s2f.faces.features import FaceFeatureBackend
from s2f.faces.generated import detection_ratio, embed_generated
from s2f.generation_metrics import frechet_distance, identity_accuracy, matching_accuracy
from s2f.models.voice_to_face import VoiceToFace

Generate = Callable[[np.ndarray], np.ndarray]   # (N, L) int16 clips → (N, S, S, 3) uint8 faces


def image_metrics(faces: dict[str, np.ndarray], test: SplitData, backend: FaceFeatureBackend, ks: Sequence[int],
                  gallery_size: int = 100, seed: int = 0, margin: float = 0.4) -> dict:
    """faces: {"6s": (N, S, S, 3) uint8, "3s_repeated": …} generated for the test clips, in the order of `test`."""
    genders = gender_labels(test.manifest)
    labelled = genders if (genders != "").any() else None
    report: dict = {"retrieval": {}, "matching": {}}
    features = {}
    for length, images in faces.items():
        features[length] = embed_generated(images, backend, margin=margin)
        report["retrieval"][length] = retrieval_metrics(features[length], test, ks, gallery_size, seed)
        report["matching"][length] = matching_accuracy(features[length], test.embedding, test.speakers, labelled,
                                                       seed=seed)
    detection = detection_ratio(faces["6s"])
    report["images"] = {"detection_ratio": detection["ratio"], "detected": detection["detected"],
                        "generated": detection["images"],
                        "frechet_distance": frechet_distance(test.embedding, features["6s"]),
                        "frechet_distance_real_halves": _real_halves_frechet(test.embedding, seed)}
    return report


def unseen_speech_metrics(generated: np.ndarray, held_speakers: np.ndarray, train: SplitData,
                          backend: FaceFeatureBackend, margin: float = 0.4) -> dict:
    """Identity accuracy of faces generated from seen speakers' unseen speech (Wav2Pix's protocol)."""
    features = embed_generated(generated, backend, margin=margin)
    return identity_accuracy(train.embedding, train.speakers, features, held_speakers)


def _real_halves_frechet(embedding: np.ndarray, seed: int) -> float:
    """The Fréchet distance between two random halves of the real faces: the floor a perfect generator of this
    many faces would score (the estimate is biased upward at small N), printed beside each family's distance."""
    order = np.random.default_rng(seed).permutation(len(embedding))
    half = len(order) // 2
    return frechet_distance(embedding[order[:half]], embedding[order[half:2 * half]])


def generate_faces(generate: Generate, audio: np.ndarray, short_seconds: float) -> dict[str, np.ndarray]:
    """The family's faces for the 3 s (repeated to the clip, as serving does) and the 6 s version of every clip."""
    from s2f.evaluation import short_clips, short_key

    return {short_key(short_seconds): generate(short_clips(audio, short_seconds)), "6s": generate(audio)}


def gan_generator(model: VoiceToFace, batch_size: int = 32) -> Generate:
    """A GAN family's model as a Generate: int16 clips → uint8 faces, a batch at a time."""
    import torch

    from s2f.audio import int16_to_float

    device = next(model.parameters()).device

    @torch.no_grad()
    def generate(audio: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(audio), batch_size):
            wave = int16_to_float(torch.from_numpy(audio[start:start + batch_size])).to(device)
            out.append(model(wave).mul(255).round().byte().permute(0, 2, 3, 1).cpu().numpy())  # (B, S, S, 3)
        return np.concatenate(out)

    return generate
