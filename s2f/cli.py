"""The `s2f` command: each DVC stage by name (`s2f preprocess --help`), the same code `dvc repro` runs,
`s2f ingest` (a corpus to validated shards and a summary in one command) and `s2f model-summary` (a preset voice
encoder layer by layer: shapes, parameters, FLOPs)."""

from __future__ import annotations

import argparse
import importlib
import sys

STAGES = ["download", "preprocess", "features", "train_decoder", "train_encoder", "evaluate"]
TOOLS = ["ingest", "model_summary"]


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="s2f", description=__doc__)
    parser.add_argument("command", choices=[s.replace("_", "-") for s in STAGES + TOOLS],
                        help="a pipeline stage, ingest (a whole corpus to shards in one command) or model-summary "
                             "(a preset encoder's layers, parameters and FLOPs); its own options follow "
                             "(s2f COMMAND --help)")
    args, rest = parser.parse_known_args(argv[:1])
    stage = importlib.import_module(f"s2f.stages.{args.command.replace('-', '_')}")
    stage.main(rest + argv[1:])


if __name__ == "__main__":
    main()
