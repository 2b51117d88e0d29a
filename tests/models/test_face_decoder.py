import dataclasses

import pytest
import torch

from s2f.io.checkpoints import load_model, save_model
from s2f.models.face_decoder import (DecodedFace, DecoderLossWeights, FaceDecoder, FaceDecoderConfig, FeatureProxy,
                                     FeatureProxyConfig, decoder_loss)

TINY = FaceDecoderConfig(in_dim=16, hidden=64, image_size=16, texture_grid=4, texture_channels=64, landmark_hidden=64)


def mean_face(n: int = 68, seed: int = 0) -> torch.Tensor:
    """A plausible-ish mean shape: n points in the middle of the image, normalized."""
    return 0.3 + 0.4 * torch.rand(n, 2, generator=torch.Generator().manual_seed(seed))


def test_demo_size_shapes_and_range():
    torch.manual_seed(0)
    model = FaceDecoder(FaceDecoderConfig())
    out = model.decode(torch.randn(2, 128))
    assert isinstance(out, DecodedFace)
    assert out.image.shape == out.texture.shape == (2, 3, 64, 64)
    assert out.landmarks.shape == (2, 68, 2)
    assert 0 <= out.image.min() and out.image.max() <= 1
    assert model(torch.randn(3, 128)).shape == (3, 3, 64, 64)    # forward → image, for today's callers


def test_paper_size_shapes():
    torch.manual_seed(0)
    cfg = FaceDecoderConfig(in_dim=4096, hidden=1024, image_size=224, texture_grid=14, texture_channels=256)
    model = FaceDecoder(cfg).eval()
    with torch.no_grad():
        out = model.decode(torch.randn(1, 4096))
    assert out.image.shape == (1, 3, 224, 224) and out.landmarks.shape == (1, 68, 2)
    assert 0 <= out.image.min() and out.image.max() <= 1
    convs = [m for m in model.texture if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [m.out_channels for m in convs] == [128, 64, 32, 32]  # four ×2 steps, 14 → 224, channels halved ≥ 32


@pytest.mark.parametrize("size, grid", [(60, 8), (64, 6), (4, 8)])
def test_image_size_must_be_grid_times_power_of_two(size, grid):
    with pytest.raises(ValueError, match="texture_grid × 2\\^k"):
        FaceDecoder(FaceDecoderConfig(image_size=size, texture_grid=grid))


def test_zero_landmark_offsets_make_the_warp_the_identity():
    torch.manual_seed(0)
    model = FaceDecoder(TINY).eval()
    model.set_mean_shape(mean_face())
    out = model.decode(torch.randn(4, 16))
    torch.testing.assert_close(out.landmarks, model.mean_landmarks.expand(4, -1, -1))
    torch.testing.assert_close(out.image, out.texture, atol=1e-3, rtol=0)


def test_texture_at_the_mean_shape_appears_at_the_predicted_landmarks():
    """Shift every predicted landmark by (2, 1) px: the image at each landmark must show the texture at the mean."""
    torch.manual_seed(0)
    size = 32
    model = FaceDecoder(dataclasses.replace(TINY, image_size=size)).eval()
    cells = torch.randperm(16 * 16, generator=torch.Generator().manual_seed(1))[:68]
    mean_px = torch.stack([8 + cells % 16, 8 + cells // 16], -1).float()     # distinct pixels in the middle
    model.set_mean_shape((mean_px + 0.5) / size)
    with torch.no_grad():
        model.landmarks[-1].bias.copy_(torch.tensor([2.0, 1.0]).repeat(68) / size)
        model.texture[-1].weight.mul_(100)                                     # a texture with contrast
        out = model.decode(torch.randn(2, 16))
    moved_px = mean_px.long() + torch.tensor([2, 1])
    image_at = out.image[:, :, moved_px[:, 1], moved_px[:, 0]]               # (B, 3, 68)
    texture_at = out.texture[:, :, mean_px[:, 1].long(), mean_px[:, 0].long()]
    torch.testing.assert_close(image_at, texture_at, atol=2e-3, rtol=0)
    assert (out.image - out.texture).abs().max() > 0.2                         # the image did change


def test_a_coarse_warp_field_draws_nearly_the_exact_warp_and_is_saved(tmp_path):
    """warp_field evaluates the spline on a coarse grid (the demo: 16² at 64 px, half the stage's time): the same
    weights must draw nearly the same face, and a saved decoder must come back with its field."""
    torch.manual_seed(0)
    exact = FaceDecoder(dataclasses.replace(TINY, image_size=32)).eval()
    exact.set_mean_shape(mean_face())
    coarse = FaceDecoder(dataclasses.replace(TINY, image_size=32, warp_field=8)).eval()
    with torch.no_grad():
        exact.landmarks[-1].bias.copy_(0.01 * torch.randn(68 * 2))                 # every landmark moves
        exact.texture[-1].weight.mul_(20)                                          # a texture with contrast
    coarse.load_state_dict(exact.state_dict())
    x = torch.randn(2, 16)
    with torch.no_grad():
        a, b = exact.decode(x), coarse.decode(x)
    torch.testing.assert_close(a.landmarks, b.landmarks)
    assert 0 < (a.image - b.image).abs().mean() < 0.01
    save_model(coarse, tmp_path / "decoder.pt")
    assert load_model(tmp_path / "decoder.pt").config.warp_field == 8
    for too_coarse in (0, 1):
        with pytest.raises(ValueError, match="at least 2"):
            FaceDecoder(dataclasses.replace(TINY, warp_field=too_coarse))


def test_set_mean_shape_refuses_pixels_and_wrong_shapes():
    model = FaceDecoder(TINY)
    with pytest.raises(ValueError, match="normalized"):
        model.set_mean_shape(mean_face() * 224)
    with pytest.raises(ValueError, match="mean shape must be"):
        model.set_mean_shape(mean_face(5))


def test_mean_shape_is_saved_with_the_weights(tmp_path):
    torch.manual_seed(0)
    model = FaceDecoder(TINY).eval()
    model.set_mean_shape(mean_face())
    save_model(model, tmp_path / "decoder.pt")
    loaded = load_model(tmp_path / "decoder.pt")
    assert loaded.config == TINY
    torch.testing.assert_close(loaded.mean_landmarks, mean_face())
    x = torch.randn(2, 16)
    torch.testing.assert_close(loaded(x), model(x))


def _decoded_with_proxy():
    """A tiny decoder, a frozen proxy, 3 features and their decoding (seeded)."""
    torch.manual_seed(0)
    model = FaceDecoder(TINY)
    proxy = FeatureProxy(FeatureProxyConfig(image_size=16, out_dim=16, channels=8)).requires_grad_(False)
    feature = torch.randn(3, 16)
    decoded = model.decode(feature)
    return model, proxy, feature, decoded


def test_decoder_loss_terms_and_weighted_total():
    model, proxy, feature, decoded = _decoded_with_proxy()
    texture, landmarks = torch.rand(3, 3, 16, 16), mean_face().expand(3, -1, -1) + 0.01
    weights = DecoderLossWeights(texture=1.0, landmarks=100.0, identity=0.1)
    terms = decoder_loss(decoded, texture, landmarks, weights, identity=proxy, feature=feature)
    assert set(terms) == {"texture_l1", "landmark_mse", "identity", "total"}
    assert all(torch.isfinite(v) and v.ndim == 0 for v in terms.values())
    weighted = terms["texture_l1"] + 100 * terms["landmark_mse"] + 0.1 * terms["identity"]
    torch.testing.assert_close(terms["total"], weighted)
    assert 0 <= terms["identity"] <= 2
    assert set(decoder_loss(decoded, texture, landmarks, weights)) == {"texture_l1", "landmark_mse", "total"}
    with pytest.raises(ValueError, match="feature"):
        decoder_loss(decoded, texture, landmarks, weights, identity=proxy)


def test_identity_term_reaches_the_landmarks_through_the_warp():
    """Only the identity term sees the warped image; its gradient must flow through the warp into the landmark head."""
    model, proxy, feature, decoded = _decoded_with_proxy()
    weights = DecoderLossWeights(texture=0.0, landmarks=0.0, identity=1.0)
    terms = decoder_loss(decoded, decoded.texture.detach(), decoded.landmarks.detach(), weights, proxy, feature)
    terms["total"].backward()
    assert model.landmarks[-1].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in proxy.parameters())


def test_feature_proxy_shapes_and_config_check():
    proxy = FeatureProxy(FeatureProxyConfig(image_size=64, out_dim=128, channels=16))
    assert proxy(torch.rand(2, 3, 64, 64)).shape == (2, 128)
    with pytest.raises(ValueError):
        FeatureProxy(FeatureProxyConfig(image_size=4))


def test_training_drives_texture_and_landmark_losses_down():
    torch.manual_seed(0)
    model = FaceDecoder(TINY)
    mean = mean_face()
    model.set_mean_shape(mean)
    features = torch.randn(8, 16)
    texture = torch.nn.functional.interpolate(torch.rand(8, 3, 4, 4), size=16, mode="bilinear")  # smooth faces
    landmarks = mean + 0.03 * torch.randn(8, 68, 2)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    weights = DecoderLossWeights()
    first = None
    for _ in range(150):
        terms = decoder_loss(model.decode(features), texture, landmarks, weights)
        first = first or {k: v.item() for k, v in terms.items()}
        opt.zero_grad()
        terms["total"].backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        last = decoder_loss(model.decode(features), texture, landmarks, weights)
    assert last["texture_l1"] < min(0.03, 0.2 * first["texture_l1"]), (first, last)
    assert last["landmark_mse"] < min(1e-5, 0.05 * first["landmark_mse"]), (first, last)  # RMS < 0.2 px at 64
