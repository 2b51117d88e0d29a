"""The `s2f` command: each DVC stage by name (`s2f preprocess --help`; `train_decoder` or `train-decoder`), the
same code `dvc repro` runs, and the tools: `s2f ingest` (a corpus to validated shards and a summary in one command),
`s2f model-summary` (a preset voice encoder layer by layer: shapes, parameters, FLOPs), `s2f promote` (the
registry's challenger to champion through the gate in params.yaml, or `--rollback`), `s2f infer` (voice clips to
face images with the registry's champion or local weights), `s2f serve` (a web page: a voice in, each family's face
out), `s2f upload-pending` (shards whose upload to S3 failed, once S3 is back) and `s2f summary` (the evaluation
table, 100 columns)."""

from __future__ import annotations

import argparse
import importlib
import sys

from s2f.numerics import cap_cpu_isa

STAGES = ["download", "collect", "preprocess", "features", "gather", "train_decoder", "train_encoder", "train_gan",
          "evaluate", "register"]
TOOLS = ["ingest", "model_summary", "promote", "infer", "serve", "upload_pending", "summary"]


def main(argv: list[str] | None = None) -> None:
    command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="s2f", description=__doc__)
    parser.add_argument("command", choices=[s.replace("_", "-") for s in STAGES + TOOLS],
                        help="a pipeline stage or a tool: ingest (a whole corpus to shards in one command), "
                             "model-summary (a preset encoder's layers, parameters and FLOPs), promote (challenger → "
                             "champion through the gate), infer (voice or video files to face PNGs), serve (the "
                             "voice → face web page), upload-pending (shards whose S3 upload failed) or summary "
                             "(the evaluation table); its own options follow "
                             "(s2f COMMAND --help)")
    if argv and not argv[0].startswith("-"):  # `s2f train_decoder` (the stage's name) and `s2f train-decoder`
        argv[0] = argv[0].replace("_", "-")
    args, rest = parser.parse_known_args(argv[:1])
    if command_line:  # as `python -m s2f.stages.X` does, before torch computes anything (not when a test calls main)
        cap_cpu_isa()
    stage = importlib.import_module(f"s2f.stages.{args.command.replace('-', '_')}")
    program, sys.argv[0] = sys.argv[0], f"s2f {args.command}"  # what the stage's --help calls it (argparse's prog)
    try:
        stage.main(rest + argv[1:])
    except Exception as err:
        from s2f.stages.common import is_input_file_error

        if not is_input_file_error(err):  # a bad model or shard file is the user's input: one line, no traceback
            raise
        raise SystemExit(f"s2f {args.command}: {err}") from None
    finally:
        sys.argv[0] = program


if __name__ == "__main__":
    main()
