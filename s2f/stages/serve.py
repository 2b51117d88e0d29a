"""serve: a web page on 127.0.0.1 where a person gives a voice clip (a file or a 6 s recording) and sees the face each
model family's champion draws (`s2f serve`, then open http://127.0.0.1:8000).

The families are the registry's `speech2face`, `wen2019` and `wav2pix` (or --model NAME, repeatable), each as its
`champion` in the MLflow store of MLFLOW_TRACKING_URI (default ./mlruns.db); a family with no champion yet is left
out with a line saying so. A model trained on the synthetic demo corpus is marked as such on the page.
"""

from __future__ import annotations

import argparse
import sys

from s2f.stages.common import DefaultsHelpFormatter

FAMILIES = ["speech2face", "wen2019", "wav2pix"]


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="s2f serve", description=__doc__.split("\n\n")[0],
                                     formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on; keep 127.0.0.1 unless a proxy in front of it needs another")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (0: any free port)")
    parser.add_argument("--model", action="append", metavar="NAME",
                        help=f"a registered family to serve, repeatable (default: {', '.join(FAMILIES)})")
    return parser.parse_args(argv)


def load_champions(names: list[str]) -> list:
    """Each family's `champion` as a ServedModel; families without one are named on stderr and left out."""
    import mlflow

    from s2f.io.tracking import tracking_uri
    from s2f.registry import registry_version, trained_on_note
    from s2f.serving.page import ServedModel
    from s2f.stages.infer import load_audio_to_face

    mlflow.set_tracking_uri(tracking_uri())
    client, served = mlflow.MlflowClient(), []
    for name in names:
        uri = f"models:/{name}@champion"
        try:
            version = registry_version(client, uri)
            served.append(ServedModel(name, str(version.version), load_audio_to_face(uri),
                                      trained_on_note(version.tags)))
        except mlflow.exceptions.MlflowException as err:
            print(f"serve: {name} left out: no champion in {tracking_uri()} ({err.message.splitlines()[0]})",
                  file=sys.stderr)
    return served


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    import uvicorn

    from s2f.serving.page import create_app

    models = load_champions(args.model or FAMILIES)
    if not models:
        raise SystemExit("serve: no family has a champion: run `make demo` (or dvc repro, then s2f promote) first")
    print(f"serve: {', '.join(f'{m.name} v{m.version}' for m in models)} on http://{args.host}:{args.port}",
          flush=True)
    uvicorn.run(create_app(models), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
