"""promote: move `champion` to `NAME@challenger` when it beats chance and the champion on the gate in params.yaml.

NAME (`--model`) is `speech2face` by default, or a GAN family (`wen2019`, `wav2pix`): each is promoted on its own,
on the same gate metric of its own section of the evaluation report.

The gate (`promote` section: metric, higher_is_better, min_improvement, chance_p_value) tests the challenger's
metric against the chance level its evaluation reported, then compares the evaluation metrics recorded on the two
versions. The decision and its numbers are written on the challenger version (`promotion.*` tags) either
way; a refusal exits with status 1 and the reason. `--rollback` makes the previous champion the champion again.
The encoder and decoder versions registered with the composite move with it; a GAN family's alias moves alone.
"""

from __future__ import annotations

import sys

from s2f.config import GAN_FAMILIES
from s2f.registry import COMPOSITE
from s2f.stages.common import load_params, stage_parser


def main(argv: list[str] | None = None) -> None:
    parser = stage_parser(__doc__)
    parser.prog = "s2f promote"
    parser.add_argument("--model", default=COMPOSITE, choices=(COMPOSITE, *GAN_FAMILIES), metavar="NAME",
                        help=f"the registered model to promote: {COMPOSITE} or a GAN family "
                             f"({', '.join(GAN_FAMILIES)})")
    parser.add_argument("--rollback", action="store_true", help="restore the previous champion instead")
    args = parser.parse_args(argv)
    import mlflow

    from s2f.io.tracking import tracking_uri
    from s2f.promotion import PromotionRefused, promote_or_rollback

    gate = None if args.rollback else load_params("promote", args.params)
    try:
        print(f"promote: {promote_or_rollback(mlflow.MlflowClient(tracking_uri()), gate, args.model)}")
    except PromotionRefused as refused:
        print(f"promote: {refused}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
