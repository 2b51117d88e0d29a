"""What every stage entry point shares: argument parsing with `--params`, JSON metrics, quiet telemetry."""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from s2f.numerics import cap_cpu_isa

for _var, _value in {"DO_NOT_TRACK": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "GX_ANALYTICS_ENABLED": "false"}.items():
    os.environ.setdefault(_var, _value)


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's "(default: …)" only where there is a default to tell: not after a flag that has none, and not
    after a help text that already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, [], False) or "default" in text:
            return text
        return super()._get_help_string(action)


def stage_parser(doc: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(doc or "").strip().splitlines()[0],
                                     formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file; only this stage's section is read")
    return parser


def load_params(section: str, path: Path):
    """The stage's validated params section; a bad file ends the stage with one line naming the key, no traceback."""
    from s2f.config import ParamsError, load_section

    try:
        return load_section(section, path)
    except ParamsError as err:
        raise SystemExit(f"error: {err}") from None


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's `main` as `python -m` does; a bad input file (a model or shard that cannot be read) ends it
    with one line naming the file and the reason, not a traceback, since it is the user's to fix, not a bug.

    Called only as a process's entry point (`if __name__ == "__main__"`): once `main` has returned, every object is
    frozen out of the garbage collector (`gc.freeze`). Why: at exit the interpreter otherwise collects and frees the
    stage's whole object graph (GX, pandas, torch, dlib) one object at a time, which took 0.9 s after `preprocess`
    and 1.4 s after `features` here, for memory the OS takes back anyway. Nothing is lost: a stage writes and closes
    its outputs before `main` returns, and atexit handlers (MLflow, multiprocessing, temporary folders) still run.

    Before `main`, torch's CPU kernels are capped at AVX2 (`s2f.numerics.cap_cpu_isa`), so that the models a stage
    trains are the same bytes on every x86 machine; torch has not computed anything yet at this point.
    """
    cap_cpu_isa()
    try:
        main()
    except Exception as err:
        if not is_input_file_error(err):
            raise
        raise SystemExit(f"error: {err}") from None
    gc.freeze()


def is_input_file_error(err: Exception) -> bool:
    """A `ModelFileError` or `ShardError`. Looked up in sys.modules, not imported: if their module never loaded, no
    such file was read (and `s2f --help` stays free of torch)."""
    kinds = [getattr(sys.modules.get(m), n, None) for m, n in (("s2f.io.checkpoints", "ModelFileError"),
                                                                ("s2f.io.shards", "ShardError"))]
    return any(k is not None and isinstance(err, k) for k in kinds)


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def write_curve(path: Path, rows: list[dict], title: str | None = None) -> Path | None:
    """Per-epoch metrics as CSV, for `dvc plots`; with a `title`, also every loss term as a PNG beside it (a
    picture that needs no network: `s2f.plots`), whose path is returned."""
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)
    if title is None:
        return None
    from s2f.plots import curve_png

    return curve_png(rows, path.with_suffix(".png"), title)


def validate_manifest(manifest, out_dir: Path, report_dir: Path) -> None:
    """Run the raw clip manifest suite; a failing manifest stops here, naming the failures.

    The deterministic verdict goes to `out_dir/manifest.json` (inside the DVC output: lineage), GX's full result
    with its run ids and timestamps to `report_dir/manifest.json` (outside it: a report).
    """
    from s2f.validation import ShardRules, ShardValidator, write_result, write_verdict

    outcome = ShardValidator(ShardRules()).validate("raw_manifest", manifest, "manifest")
    write_verdict(outcome, out_dir / "manifest.json")
    write_result(outcome, report_dir / "manifest.json")
    if not outcome.success:
        raise SystemExit("the clip manifest failed validation:\n  " + "\n  ".join(outcome.failures)
                         + f"\n(result: {report_dir / 'manifest.json'})")
