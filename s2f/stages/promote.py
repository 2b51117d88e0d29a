"""promote: move `champion` to `speech2face@challenger` when it beats the champion on the gate in params.yaml.

The gate (`promote` section: metric, higher_is_better, min_improvement) compares the evaluation metrics recorded on
the two versions. The decision and its numbers are written on the challenger version (`promotion.*` tags) either
way; a refusal exits with status 1 and the reason. `--rollback` makes the previous champion the champion again.
The encoder and decoder versions registered with the composite move with it.
"""

from __future__ import annotations

import sys

from s2f.stages.common import load_params, stage_parser


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.prog = "s2f promote"
    parser.add_argument("--rollback", action="store_true", help="restore the previous champion instead")
    args = parser.parse_args(argv)
    import mlflow

    from s2f.io.tracking import tracking_uri
    from s2f.promotion import PromotionRefused, promote_or_rollback

    gate = None if args.rollback else load_params("promote", args.params)
    try:
        print(f"promote: {promote_or_rollback(mlflow.MlflowClient(tracking_uri()), gate)}")
    except PromotionRefused as refused:
        print(f"promote: {refused}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
