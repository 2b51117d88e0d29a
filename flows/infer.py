"""The `infer` flow: a face PNG for every audio file in a folder, from `speech2face@champion` (or any model URI)."""

from __future__ import annotations

from prefect import flow, get_run_logger


@flow(name="infer", log_prints=True)
def infer(folder: str, out: str, model_uri: str = "models:/speech2face@champion") -> dict:
    """Batch inference; a bad file is reported with its reason and skipped, and fails the run at the end."""
    from pathlib import Path

    from s2f.serving.batch import infer_folder, load_speech2face  # here: `prefect deploy` need not load torch

    summary = infer_folder(load_speech2face(model_uri), Path(folder), Path(out))
    get_run_logger().info("infer: %s", summary)
    if not summary["total"]:
        raise RuntimeError(f"no audio files in {folder}")
    if summary.get("failed"):
        raise RuntimeError(f"{len(summary['failed'])} file(s) failed: {summary['failed']}")
    return summary
