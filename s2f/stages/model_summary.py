"""model-summary: print a preset voice encoder layer by layer (output shape, parameters, FLOPs) and its totals.

Nothing is allocated or downloaded: the model runs on PyTorch's `meta` device, so the ~165M-parameter paper encoder
is summarised in a second. Shapes are printed without the batch axis: convs as channels×time×frequency, then
channels×frequency after the average over time, then the feature size. FLOPs are multiply-adds × 2 of the convs and
linear layers for one clip (the spectrogram itself is not counted); a training step costs about 3× the forward pass.
"""

from __future__ import annotations

import argparse

from s2f.models.presets import PRESETS, Preset
from s2f.models.summary import encoder_table, format_table, meta_encoder, spectrogram_shape

# parameter-free layers that only pad or rectify: shown with --all-layers
QUIET_KINDS = {"ZeroPad2d", "ReLU", "Identity"}


def summarize(preset: Preset, seconds: float, all_layers: bool = False) -> str:
    """The text `s2f model-summary` prints for `preset` on clips of `seconds`."""
    config = preset.encoder
    rows = encoder_table(config, seconds)
    conv = next(r for r in reversed(rows) if r.name.startswith("convs."))   # output of the last conv: (1, C, T', F')
    channels, time, freq = conv.shape[1:]
    params = sum(p.numel() for p in meta_encoder(config).parameters())
    flops = sum(r.flops for r in rows)
    shown = rows if all_layers else [r for r in rows if r.kind not in QUIET_KINDS]
    lines = [
        f"preset {preset.name}: {preset.description}",
        f"input spectrogram: {'×'.join(map(str, spectrogram_shape(seconds)))} "
        f"(time × frequency × real/imaginary) for {seconds:g} s at 16 kHz",
        f"after the convs: {channels} channels × {time} time × {freq} frequency; averaged over time → "
        f"{channels}×{freq} = {channels * freq:,} inputs to the first FC layer",
        f"output dimension: {config.out_dim} ({preset.backend} face features)",
        f"total parameters: {params:,}",
        f"forward FLOPs per clip: {flops / 1e9:,.1f} G (a training step ≈ 3×: {3 * flops / 1e9:,.1f} G)",
        "",
        format_table(shown, "layers (output shape without the batch axis)"
                     + ("" if all_layers else "; padding and ReLU rows hidden, see --all-layers")),
    ]
    return "\n".join(lines)


def min_seconds(preset: Preset) -> float:
    """The shortest clip that still leaves one time step after every 2×1 pool."""
    pools = sum(block.time_pool for block in preset.encoder.blocks)
    samples = 400 + (2 ** pools - 1) * 160   # one 25 ms frame, then a 10 ms hop per further frame
    return samples / 16_000


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="s2f model-summary", description=__doc__.strip().splitlines()[0])
    parser.add_argument("--preset", required=True, choices=list(PRESETS),
                        help="; ".join(f"{p.name}: {p.description}" for p in PRESETS.values()))
    parser.add_argument("--seconds", type=float, default=None,
                        help="clip length in seconds (default: the preset's, 6 s for both); the output size does "
                             "not depend on it, the time axis and the FLOPs do")
    parser.add_argument("--all-layers", action="store_true", help="also list the padding and ReLU layers")
    args = parser.parse_args(argv)
    if args.seconds is not None and args.seconds < min_seconds(PRESETS[args.preset]):
        parser.error(f"--seconds {args.seconds:g} is too short for preset {args.preset}: "
                     f"at least {min_seconds(PRESETS[args.preset]):.3f} s")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    preset = PRESETS[args.preset]
    print(summarize(preset, preset.seconds if args.seconds is None else args.seconds, args.all_layers))


if __name__ == "__main__":
    main()
