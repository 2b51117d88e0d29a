"""train_gan: fit one voice → face GAN family (Wen et al. 2019 or Wav2Pix) on the training speakers' shards.

Reads the `train_gan` section: `--family` picks its subsection (`train_gan.wen2019`, `train_gan.wav2pix`); dvc.yaml
runs one stage per listed family (`train_gan@<family>`). The last `unseen_speech_per_speaker` clips of each training
speaker are left out, for evaluation's seen-speaker / unseen-speech identity metric. Writes the family's audio → face
model (weights + JSON config), a metrics JSON, a per-epoch curve of every D and G loss term, and logs them to MLflow
with a grid of faces generated from the held-out clips after every epoch. Resumes from its checkpoint when killed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from s2f.config import GAN_FAMILIES, TrainGanParams
from s2f.dataset import load_split
from s2f.io.checkpoints import save_model
from s2f.io.tracking import EpochCurve, TrackedRun, main_process_run
from s2f.models.voice_to_face import VoiceToFace
from s2f.split import unseen_speech
from s2f.stages.common import load_params, run_stage, stage_parser, write_curve, write_json
from s2f.training.distributed import setup_runtime, teardown_runtime
from s2f.training.gan import image_size, train_gan
from s2f.training.pairs import dense_labels, shrink_faces

GRID_VOICES = 8


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--family", choices=GAN_FAMILIES, required=True, help="the GAN family to train")
    parser.add_argument("--pre", type=Path, default=Path("data/preprocessed"), help="preprocessed shards")
    parser.add_argument("--features", type=Path, default=Path("data/features"), help="face-feature shards and split")
    parser.add_argument("--model", type=Path, help="the audio → face model (default: models/gan/FAMILY.pt)")
    parser.add_argument("--metrics", type=Path, help="default: reports/train_gan/FAMILY.json")
    parser.add_argument("--curve", type=Path, help="default: reports/plots/train_gan_FAMILY.csv")
    parser.add_argument("--checkpoint", type=Path, help="resumed from when it matches these params and data "
                        "(default: data/interim/checkpoints/train_gan_FAMILY.pt)")
    args = parser.parse_args(argv)
    family = args.family
    model_path = args.model or Path(f"models/gan/{family}.pt")
    checkpoint = args.checkpoint or Path(f"data/interim/checkpoints/train_gan_{family}.pt")
    metrics_path = args.metrics or Path(f"reports/train_gan/{family}.json")
    if metrics_path.resolve() == model_path.with_suffix(".json").resolve():
        parser.error(f"--metrics {metrics_path} is where the model's config goes (beside {model_path.name})")
    params: TrainGanParams = load_params("train_gan", args.params)
    runtime = setup_runtime(params.loop.cpu_threads)
    with main_process_run(f"train_gan@{family}", params.model_dump(), runtime.is_main) as run:
        data = load_split(args.pre, args.features, "train", audio=True, faces=True).for_training(
            params.loop.in_memory_mb)
        if run is not None:
            run.log_dataset(data.manifest, "train", "data/features")
        held = unseen_speech(data.manifest, params.unseen_speech_per_speaker)
        labels, speaker_ids = dense_labels(data.speakers)
        faces = shrink_faces(data.face, image_size(family, params))
        curve = EpochCurve(run, label=f"train_gan@{family}", epochs=getattr(params, family).epochs)
        grid = SampleGrid(run, data.audio[held], faces[held], data.speakers[held],
                          Path(f"data/interim/train_gan/{family}/samples"))
        model = train_gan(family, data.audio[~held], faces[~held], labels[~held], params, runtime, curve,
                          checkpoint, grid)
        if run is not None:
            meta = {"family": family, "trained_on_samples": int((~held).sum()), "speakers": len(speaker_ids)}
            save_model(model, model_path, meta)
            scores, step, stamp = curve.scores()
            run.log_model(model_path, family, scores, step=step, stamp=stamp, params=meta)
            run.log_artifact(write_curve(args.curve or Path(f"reports/plots/train_gan_{family}.csv"), curve.rows,
                                         f"train_gan@{family}: D and G loss terms per epoch"), "plots")
    teardown_runtime(runtime)
    if not runtime.is_main:
        return
    write_json(metrics_path,
               curve.last | {"samples": int((~held).sum()), "unseen_speech_samples": int(held.sum()),
                             "processes": runtime.world_size})
    print(f"train_gan@{family}: final D loss {curve.last['loss_d_total']:.4f}, G loss {curve.last['loss_g_total']:.4f}"
          f" on {int((~held).sum())} samples")


class SampleGrid:
    """After each epoch: the true face and the generated one for up to 8 held-out voices, as a PNG in `folder`
    (outside the DVC outputs: a report) logged to MLflow under `samples/`."""

    def __init__(self, run: TrackedRun | None, audio: np.ndarray, faces: np.ndarray, speaker_ids: np.ndarray,
                 folder: Path):
        first = [int(np.flatnonzero(speaker_ids == s)[0]) for s in sorted(set(speaker_ids.tolist()))][:GRID_VOICES]
        self.run, self.folder = run, folder
        self.audio, self.faces = np.asarray(audio[first]), np.asarray(faces[first])  # a few rows, even if streamed

    @torch.no_grad()
    def __call__(self, epoch: int, model: VoiceToFace) -> None:
        if self.run is None or not len(self.audio):
            return
        from s2f.evaluation import face_grid

        device = next(model.parameters()).device
        wave = torch.from_numpy(self.audio.astype(np.float32) / 32768.0).to(device)
        generated = model(wave).mul(255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
        image = face_grid(self.faces, [generated], ("true face", f"epoch {epoch + 1}"), cell=96)
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"epoch_{epoch + 1:03d}.png"  # kept: a tracker that is away sends it later
        image.save(path)
        self.run.log_artifact(path, "samples")


if __name__ == "__main__":
    run_stage(main)
