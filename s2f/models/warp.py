"""Thin-plate spline (TPS) image warping in pure torch: batched and differentiable w.r.t. the image and both point sets.

Cole et al. (2017) decode a face as a texture on the mean face shape plus landmarks, and a differentiable warp moves
the texture onto the landmarks; this module is that warp. It is also how the training textures are made
(`s2f.faces.align`): the same warp run the other way, each face onto the mean shape.

Coordinates: points are (x, y) in normalized image coordinates [0, 1]: 0 is the left/top *edge* of the image and 1
the right/bottom edge, so the centre of pixel column j is at (j + 0.5) / W. This is `grid_sample`'s
`align_corners=False` convention (its [-1, 1] is our 2·u − 1).

The spline. Given K control points c_k (here: the destination points) and the values v_k they must map to (the source
points), the TPS is the smoothest map f: R² → R² (least bending energy) with f(c_k) = v_k:

    f(p) = a_0 + a_x·x + a_y·y + Σ_k w_k · U(‖p − c_k‖),        U(r) = r² · log r²   (U(0) = 0)

with one (a, w) per output coordinate. The coefficients solve the (K + 3)-square linear system

    [ K + λI   P ] [ w ]   [ v ]        K_ij = U(‖c_i − c_j‖),   P_i = (1, x_i, y_i)
    [ Pᵀ       0 ] [ a ] = [ 0 ]

where Pᵀw = 0 keeps the affine part out of the radial part, and λ (`reg`) trades exact interpolation for a stable,
smoother solve (λ = 0 is exact interpolation; coincident control points make the system singular without it).

Backward mapping: to render the output we need, for every *output* pixel, where to read in the input; so the spline is
fitted from dst to src (control points dst, values src), evaluated at every output pixel centre, and the input is
sampled there bilinearly. Content found at src_points in the input then appears at dst_points in the output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Corners and edge midpoints, mapped to themselves: the frame of the image stays put, so only the face moves.
ANCHORS = torch.tensor([[0.0, 0.0], [0.5, 0.0], [1.0, 0.0], [0.0, 0.5], [1.0, 0.5], [0.0, 1.0], [0.5, 1.0], [1.0, 1.0]])


def tps_kernel(d2: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """U as a function of the squared distance: d² · log d².

    Why `+ eps` inside the log: U(0) = 0, but autograd through log(0) gives 0 · (−inf) = nan; with eps the function
    is smooth everywhere and its value and gradient at d² = 0 are exactly 0.
    """
    return d2 * torch.log(d2 + eps)


def _pairwise_d2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B, M, 2), (B, K, 2) → (B, M, K) squared distances.

    By differences, not the ‖a‖² − 2a·b + ‖b‖² trick, so that d² is exactly 0 where points coincide; and x and y
    apart, so the largest temporary is (B, M, K), not (B, M, K, 2) (M is every pixel of the image).
    """
    dx = a[..., 0].unsqueeze(2) - b[..., 0].unsqueeze(1)                     # (B, M, K)
    dy = a[..., 1].unsqueeze(2) - b[..., 1].unsqueeze(1)
    return dx * dx + dy * dy


def _affine_basis(p: torch.Tensor) -> torch.Tensor:
    """(B, M, 2) → (B, M, 3) rows (1, x, y)."""
    return torch.cat([torch.ones_like(p[..., :1]), p], dim=-1)


def tps_fit(ctrl: torch.Tensor, values: torch.Tensor, reg: float = 1e-4) -> torch.Tensor:
    """Solve for the TPS coefficients mapping `ctrl` (B, K, 2) to `values` (B, K, 2) → (B, K + 3, 2) = [w; a]."""
    B, K, _ = ctrl.shape
    kernel = tps_kernel(_pairwise_d2(ctrl, ctrl))                             # (B, K, K)
    kernel = kernel + reg * torch.eye(K, dtype=ctrl.dtype, device=ctrl.device)
    P = _affine_basis(ctrl)                                                   # (B, K, 3)
    zeros = ctrl.new_zeros(B, 3, 3)
    system = torch.cat([torch.cat([kernel, P], 2), torch.cat([P.transpose(1, 2), zeros], 2)], 1)  # (B, K+3, K+3)
    rhs = torch.cat([values, ctrl.new_zeros(B, 3, 2)], 1)                    # (B, K+3, 2)
    return torch.linalg.solve(system, rhs)                                    # (B, K+3, 2)


def tps_eval(coeffs: torch.Tensor, ctrl: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Evaluate the fitted spline at `points` (B, M, 2) → (B, M, 2)."""
    K = ctrl.shape[1]
    radial = tps_kernel(_pairwise_d2(points, ctrl))                           # (B, M, K)
    return radial @ coeffs[:, :K] + _affine_basis(points) @ coeffs[:, K:]     # (B, M, 2)


def pixel_centres(height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """(H·W, 2) normalized (x, y) of every pixel centre, row-major (the order of `grid_sample`'s grid)."""
    ys = (torch.arange(height, dtype=like.dtype, device=like.device) + 0.5) / height
    xs = (torch.arange(width, dtype=like.dtype, device=like.device) + 0.5) / width
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], -1).reshape(-1, 2)


def tps_warp(image: torch.Tensor, src_points: torch.Tensor, dst_points: torch.Tensor, reg: float = 1e-4,
             anchors: bool = True, field_size: int | None = None) -> torch.Tensor:
    """Deform `image` (B, C, H, W) so that its content at `src_points` (B, N, 2) moves to `dst_points` (B, N, 2).

    Points are normalized (x, y) in [0, 1] (see the module docstring). `anchors` adds the 8 frame points mapped to
    themselves. `field_size` (optional) evaluates the spline on a coarser field_size² grid and upsamples the sampling
    field bilinearly: the spline is smooth, so this loses little and cuts the (B, H·W, N) kernel at large sizes.

    The spline is solved in float32 (float64 if given) with autocast off: half precision has no batched solve, and
    K is ill-conditioned enough that fp16 would be noise. The output has the image's dtype.
    """
    B, C, H, W = image.shape
    if src_points.shape != dst_points.shape or src_points.shape[0] != B or src_points.shape[-1] != 2:
        raise ValueError(f"src/dst points must both be (B={B}, N, 2), got {tuple(src_points.shape)} and "
                         f"{tuple(dst_points.shape)}")
    dtype = torch.promote_types(torch.promote_types(src_points.dtype, dst_points.dtype), torch.float32)
    with torch.autocast(image.device.type, enabled=False):
        src, dst = src_points.to(dtype), dst_points.to(dtype)
        if anchors:
            frame = ANCHORS.to(dtype=dtype, device=image.device).expand(B, -1, -1)  # (B, 8, 2)
            src, dst = torch.cat([src, frame], 1), torch.cat([dst, frame], 1)     # (B, N+8, 2)
        coeffs = tps_fit(dst, src, reg)                                           # (B, K+3, 2): dst → src
        fh, fw = (H, W) if field_size is None else (field_size, field_size)
        where = tps_eval(coeffs, dst, pixel_centres(fh, fw, dst).expand(B, -1, -1))  # (B, fh·fw, 2) in src
        grid = (where * 2 - 1).view(B, fh, fw, 2)                                 # grid_sample's [-1, 1]
        if (fh, fw) != (H, W):
            grid = F.interpolate(grid.permute(0, 3, 1, 2), size=(H, W), mode="bilinear",
                                 align_corners=False).permute(0, 2, 3, 1)         # (B, H, W, 2)
        out = F.grid_sample(image.to(dtype), grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.to(image.dtype)                                                    # (B, C, H, W)
