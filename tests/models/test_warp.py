import pytest
import torch

from s2f.models.warp import tps_warp


def blob(size: int, centres: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """(1, 1, size, size) image with a Gaussian dot (peak 1) at each normalized (x, y) centre."""
    pix = (torch.arange(size, dtype=torch.float64) + 0.5) / size
    yy, xx = torch.meshgrid(pix, pix, indexing="ij")
    img = sum(torch.exp(-((xx - x) ** 2 + (yy - y) ** 2) * size**2 / (2 * sigma**2)) for x, y in centres.tolist())
    return img[None, None]


def peak(image: torch.Tensor) -> tuple[int, int]:
    """(x, y) pixel index of the brightest pixel of a (1, 1, H, W) image."""
    idx = int(image[0, 0].argmax())
    return idx % image.shape[-1], idx // image.shape[-1]


def test_gradcheck_image_and_both_point_sets():
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(1, 1, 8, 8, dtype=torch.float64, generator=gen, requires_grad=True)
    src = (0.2 + 0.6 * torch.rand(1, 6, 2, dtype=torch.float64, generator=gen)).requires_grad_()
    dst = (src.detach() + 0.05 * torch.randn(1, 6, 2, dtype=torch.float64, generator=gen)).requires_grad_()
    assert torch.autograd.gradcheck(tps_warp, (image, src, dst))
    assert torch.autograd.gradcheck(lambda i, s, d: tps_warp(i, s, d, field_size=4), (image, src, dst))


def test_same_points_is_identity():
    torch.manual_seed(0)
    image = torch.rand(2, 3, 16, 16)
    points = 0.2 + 0.6 * torch.rand(2, 10, 2)
    torch.testing.assert_close(tps_warp(image, points, points), image, atol=1e-4, rtol=0)


def test_dot_at_src_lands_at_dst():
    size = 32
    src = torch.tensor([[[0.30, 0.35], [0.70, 0.30], [0.50, 0.75]]], dtype=torch.float64)
    dst = src.clone()
    dst[0, 0] = torch.tensor([0.45, 0.55])                      # move one point ~5-6 px, keep the others
    image = blob(size, src[0, :1])                              # the dot sits at the moved point only
    out = tps_warp(image, src, dst)
    want = (dst[0, 0] * size - 0.5).round().long().tolist()
    got = peak(out)
    assert abs(got[0] - want[0]) <= 1 and abs(got[1] - want[1]) <= 1, (got, want)
    assert out.max() > 0.8                                      # the dot moved, it was not smeared away
    assert out[0, 0, round(0.35 * size), round(0.30 * size)] < 0.1  # and left its old place


def test_anchors_keep_the_frame_still():
    """Warp a coordinate ramp (channel 0 = x, channel 1 = y): the output says where each pixel was read from."""
    size = 32
    pix = (torch.arange(size, dtype=torch.float64) + 0.5) / size
    yy, xx = torch.meshgrid(pix, pix, indexing="ij")
    ramp = torch.stack([xx, yy])[None]                          # (1, 2, H, W)
    src = torch.tensor([[[0.5, 0.5]]], dtype=torch.float64)
    out = tps_warp(ramp, src, src + torch.tensor([0.1, -0.1], dtype=torch.float64))
    moved = (out - ramp).norm(dim=1)[0] * size                  # (H, W) displacement in pixels
    assert moved[[0, 0, -1, -1, 0, 16], [0, -1, 0, -1, 16, 0]].max() < 0.5  # corners and edge midpoints stay
    # the output at the dst point (0.6, 0.4) was read from the src point (0.5, 0.5): ~3.2 px either way
    torch.testing.assert_close(out[0, :, round(0.4 * size - 0.5), round(0.6 * size - 0.5)],
                               torch.tensor([0.5, 0.5], dtype=torch.float64), atol=0.5 / size, rtol=0)


def test_coarse_field_is_close_to_full_resolution():
    torch.manual_seed(2)
    image = blob(48, torch.tensor([[0.3, 0.4], [0.6, 0.6]]), sigma=3.0).float()
    src = 0.25 + 0.5 * torch.rand(1, 12, 2)
    dst = src + 0.03 * torch.randn(1, 12, 2)
    full, coarse = tps_warp(image, src, dst), tps_warp(image, src, dst, field_size=24)
    assert (full - coarse).abs().max() < 0.05


def test_half_precision_image_keeps_its_dtype():
    torch.manual_seed(3)
    image = torch.rand(1, 3, 16, 16)
    src = 0.3 + 0.4 * torch.rand(1, 5, 2)
    dst = src + 0.02
    image, src, dst = image.bfloat16(), src.bfloat16(), dst.bfloat16()
    out = tps_warp(image, src, dst)                             # solved in float32 inside, not in bfloat16
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), tps_warp(image.float(), src.float(), dst.float()), atol=0.01, rtol=0)


def test_mismatched_points_are_refused():
    with pytest.raises(ValueError, match="src/dst points"):
        tps_warp(torch.rand(1, 1, 8, 8), torch.rand(1, 4, 2), torch.rand(1, 5, 2))
