import re
import subprocess
import sys

import pytest
import torch

from s2f.models.presets import PRESETS, get_preset
from s2f.models.summary import (encoder_flops, encoder_table, format_table, layer_table, meta_encoder,
                                spectrogram_shape)
from s2f.models.voice_encoder import ConvBlock, VoiceEncoder, VoiceEncoderConfig
from s2f.stages import model_summary
from tests.conftest import ROOT

TINY = VoiceEncoderConfig(blocks=(ConvBlock(4, time_pool=True, freq_stride=2),), last_channels=8, kernel=4,
                          hidden=16, out_dim=8)


def _printed_int(text: str, label: str) -> int:
    return int(re.search(rf"{label}: ([\d,]+)", text).group(1).replace(",", ""))


def test_paper_summary_shows_table_1_shapes_and_the_true_parameter_count(capsys):
    model_summary.main(["--preset", "paper"])
    out = capsys.readouterr().out
    assert "input spectrogram: 598×257×2" in out
    assert "512 channels × 37 time × 65 frequency" in out
    assert "512×65 = 33,280 inputs" in out
    assert _printed_int(out, "output dimension") == 4096
    expected = sum(p.numel() for p in meta_encoder(PRESETS["paper"].encoder).parameters())
    assert _printed_int(out, "total parameters") == expected
    table_total = re.search(r"^total\s+([\d,]+)\s+([\d,]+)$", out, re.M)
    assert int(table_total.group(1).replace(",", "")) == expected
    # the four 2×1 pools halve time only: 598 → 299 → 149 → 74 → 37
    pools = re.findall(r"MaxPool2d\s+(\d+)×(\d+)×(\d+)", out)
    assert [(int(t), int(f)) for _, t, f in pools] == [(299, 257), (149, 257), (74, 257), (37, 257)]
    assert re.search(r"head\.2\s+Linear\s+4096\s", out)


def test_cli_prints_the_paper_summary_and_rejects_unknown_presets():
    ok = subprocess.run([sys.executable, "-m", "s2f.cli", "model-summary", "--preset", "paper"], cwd=ROOT,
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "input spectrogram: 598×257×2" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "s2f.cli", "model-summary", "--preset", "huge"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert "huge" in bad.stderr and "paper" in bad.stderr and "demo" in bad.stderr


def test_seconds_changes_time_not_output(capsys):
    model_summary.main(["--preset", "paper", "--seconds", "3"])
    out = capsys.readouterr().out
    assert "input spectrogram: 298×257×2" in out
    assert "512 channels × 18 time × 65 frequency" in out  # 298 → 149 → 74 → 37 → 18
    assert _printed_int(out, "output dimension") == 4096


def test_too_short_clip_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        model_summary.main(["--preset", "paper", "--seconds", "0.1"])
    assert exit_info.value.code == 2
    assert "too short" in capsys.readouterr().err


def test_help_names_the_presets(capsys):
    with pytest.raises(SystemExit) as exit_info:
        model_summary.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--preset {paper,demo}" in out and "--seconds" in out


def test_get_preset_names_the_known_presets():
    assert get_preset("paper").encoder.out_dim == get_preset("paper").feature_dim == 4096
    assert get_preset("demo").backend == "dlib" and get_preset("demo").feature_dim == 128
    with pytest.raises(ValueError, match=r"'big'.*paper, demo"):
        get_preset("big")


def test_spectrogram_shape_matches_the_audio_front_end():
    assert spectrogram_shape(6.0) == (598, 257, 2)
    assert spectrogram_shape(3.0) == (298, 257, 2)


def test_flops_match_a_hand_count_for_a_tiny_encoder():
    # 0.1 s = 1600 samples → 1 + (1600 - 400) // 160 = 8 frames of 257 bins
    t, f = 8, 129  # the block's conv keeps time ("same" padding) and halves frequency: ceil(257 / 2)
    block = 2 * (4 * t * f) * (2 * 4 * 4)           # 4 outputs channels, each a dot product over 2 × 4 × 4
    t //= 2                                         # 2×1 max-pool
    last = 2 * (8 * t * f) * (4 * 4 * 4)            # 8 channels over 4 × 4 × 4
    head = 2 * (f * 8) * 16 + 2 * 16 * 8            # Linear(129·8 → 16), Linear(16 → 8)
    assert block + last + head == 825_856
    assert encoder_flops(TINY, 0.1) == 825_856
    rows = encoder_table(TINY, 0.1)
    assert [r.flops for r in rows if r.flops] == [block, last, 2 * (f * 8) * 16, 2 * 16 * 8]


def test_meta_table_matches_a_real_forward_pass():
    """The meta device reports the same shapes and parameters as running the model for real on CPU."""
    torch.manual_seed(0)
    real = layer_table(VoiceEncoder(TINY).eval(), torch.randn(1, 16000) * 0.1)
    meta = layer_table(meta_encoder(TINY), torch.empty(1, 16000, device="meta"))
    assert real == meta
    assert sum(r.params for r in real) == sum(p.numel() for p in VoiceEncoder(TINY).parameters())
    assert real[-1].shape == (1, 8)


def test_demo_summary_counts_its_parameters(capsys):
    model_summary.main(["--preset", "demo", "--all-layers"])
    out = capsys.readouterr().out
    assert "64 channels × 37 time × 17 frequency" in out  # four strided, pooled blocks: 257 → 17, 598 → 37
    assert _printed_int(out, "output dimension") == 128
    assert _printed_int(out, "total parameters") == sum(p.numel() for p in VoiceEncoder(PRESETS["demo"].encoder)
                                                        .parameters())
    assert "ZeroPad2d" in out  # --all-layers lists the padding layers too


def test_format_table_totals_the_rows():
    rows = encoder_table(TINY, 0.1)
    text = format_table(rows, "tiny")
    assert text.splitlines()[0] == "tiny"
    assert text.splitlines()[-1].split()[-2:] == [f"{sum(r.params for r in rows):,}", "825,856"]
