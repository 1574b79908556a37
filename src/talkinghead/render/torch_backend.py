"""Pure-PyTorch z-buffer rasterizer: batched, CPU and CUDA, no Python loop over triangles or pixels.

Renders the NCC projection texture of VividTalk (Eq. 9, Eq. 10) where nvdiffrast is unavailable, with
the conventions of :mod:`talkinghead.render.base`. Two passes:

1. *Visibility* (no autograd). Every drawable triangle of every batch item gets the integer bounding
   box of the pixel centres it can cover, clipped to the image. The boxes are enumerated exactly —
   ``repeat_interleave`` gives one candidate per (triangle, pixel) pair, no padding to a fixed box size
   — and each candidate is tested at its pixel centre with the triangle's three barycentric planes
   (edge functions divided by the area, expressed relative to the box origin for precision). A covered
   candidate's key packs the IEEE bits of its inverse depth (a positive float32's bits order like the
   float, so the nearest surface has the largest inverse depth) above the triangle id; one
   ``scatter_reduce(amin)`` per image resolves the z-buffer, equal depths going to the lower triangle
   id, independent of the order of the triangles or of the scatter.
2. *Fragments* (differentiable). For the covered pixels only, the winning triangle's vertices are
   gathered again from the input and the barycentrics and depth recomputed with ordinary tensor ops, so
   gradients reach the vertex positions wherever the visible triangle does not change.
"""

import torch

from talkinghead.render.base import BACKGROUND_DEPTH, Rasterizer, RasterOutput, check_inputs, signed_area

_EMPTY_KEY = torch.iinfo(torch.int64).max
_INFINITY_BITS = 0x7F800000  # float32 +inf; minus the bits of a positive float reverses its order
_MIN_AREA = 1e-8  # twice the area in px², below which a triangle is degenerate and skipped


def _edge_functions(x: torch.Tensor, y: torch.Tensor, px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """Edge functions w_i at points (px, py) of triangles with corners (x, y) (..., 3) → (..., 3).

    ``w_i`` is twice the signed area of the triangle (p, v_{i+1}, v_{i+2}); Σ w_i = twice the triangle's
    signed area and ``w_i / Σ w`` are the screen-space barycentrics.
    """
    xj, yj = x.roll(-1, dims=-1), y.roll(-1, dims=-1)
    xk, yk = x.roll(-2, dims=-1), y.roll(-2, dims=-1)
    return (xk - xj) * (py.unsqueeze(-1) - yj) - (yk - yj) * (px.unsqueeze(-1) - xj)


class TorchRasterizer(Rasterizer):
    """Rasterizer in plain PyTorch; works on any device the input lives on."""

    name = "torch"

    def rasterize(
        self,
        screen: torch.Tensor,
        triangles: torch.Tensor,
        size: tuple[int, int],
        cull_backfaces: bool = False,
    ) -> RasterOutput:
        check_inputs(screen, triangles, size)
        height, width = int(size[0]), int(size[1])
        triangles = triangles.to(screen.device, torch.long)
        with torch.no_grad():
            winner = self._visible_triangles(screen.detach().float(), triangles, height, width, cull_backfaces)
        return self._fragments(screen, triangles, winner, height, width)

    @staticmethod
    def _visible_triangles(
        screen: torch.Tensor, triangles: torch.Tensor, height: int, width: int, cull_backfaces: bool
    ) -> torch.Tensor:
        """Z-buffer pass: the visible triangle of every pixel, (B·H·W,) long, −1 = background."""
        batch, num_faces = screen.shape[0], triangles.shape[0]
        corners = screen[:, triangles]  # (B, F, 3, 3)
        x, y, depth = corners.unbind(-1)  # each (B, F, 3)
        area = signed_area(x, y)
        drawable = (area.abs() > _MIN_AREA) & (depth > 0).all(-1)
        if cull_backfaces:
            drawable &= area < 0  # front face: counter-clockwise on screen, negative area as v points down
        # Columns j whose centre j + 0.5 lies in [min x, max x], clipped to the image; rows likewise.
        col0 = torch.ceil(x.amin(-1).clamp(-1.0, width + 1.0) - 0.5).clamp(min=0)
        col1 = torch.floor(x.amax(-1).clamp(-1.0, width + 1.0) - 0.5).clamp(max=width - 1)
        row0 = torch.ceil(y.amin(-1).clamp(-1.0, height + 1.0) - 0.5).clamp(min=0)
        row1 = torch.floor(y.amax(-1).clamp(-1.0, height + 1.0) - 0.5).clamp(max=height - 1)
        cols = (col1 - col0 + 1).clamp(min=0).long()
        rows = (row1 - row0 + 1).clamp(min=0).long()
        count = torch.where(drawable, cols * rows, 0).view(-1)
        chosen = torch.nonzero(count).squeeze(1)  # (T,) flat (item, face) ids with candidate pixels
        count, cols = count[chosen], cols.view(-1)[chosen]
        col0, row0 = col0.view(-1)[chosen], row0.view(-1)[chosen]
        item = torch.div(chosen, num_faces, rounding_mode="floor")
        face = chosen - item * num_faces

        # Barycentric planes β_i(dx, dy) = c_i + gx_i·dx + gy_i·dy relative to the box's first pixel centre,
        # and the plane of the inverse depth Σ β_i / depth_i (screen-linear under perspective).
        x = x.view(-1, 3)[chosen] - (col0 + 0.5).unsqueeze(1)
        y = y.view(-1, 3)[chosen] - (row0 + 0.5).unsqueeze(1)
        inverse_area = area.view(-1)[chosen].reciprocal().unsqueeze(1)
        zero = torch.zeros_like(col0)
        barycentric_planes = torch.stack(
            (
                _edge_functions(x, y, zero, zero),
                y.roll(-1, dims=-1) - y.roll(-2, dims=-1),
                x.roll(-2, dims=-1) - x.roll(-1, dims=-1),
            ),
            dim=1,
        ) * inverse_area.unsqueeze(1)  # (T, 3 = [c, gx, gy], 3 = β_0, β_1, β_2)
        inverse_depth_planes = (barycentric_planes / depth.view(-1, 3)[chosen].unsqueeze(1)).sum(-1)  # (T, 3)

        # One candidate per (triangle, pixel of its box): row-major offsets (dx, dy) inside the box.
        total = int(count.sum())
        first = torch.cumsum(count, 0) - count
        owner = torch.repeat_interleave(torch.arange(count.shape[0], device=count.device), count, output_size=total)
        local = torch.arange(total, device=count.device) - first[owner]
        cols_of_owner = cols[owner]
        dy = torch.div(local, cols_of_owner, rounding_mode="floor")
        dx = local - dy * cols_of_owner
        planes = barycentric_planes.index_select(0, owner)  # (M, 3, 3)
        values = torch.addcmul(planes[:, 0], planes[:, 1], dx.unsqueeze(1))
        inside = (torch.addcmul(values, planes[:, 2], dy.unsqueeze(1)) >= 0).all(1)

        hit = torch.nonzero(inside).squeeze(1)
        owner, dx, dy = owner[hit], dx[hit], dy[hit]
        planes = inverse_depth_planes.index_select(0, owner)  # (P, 3)
        inverse_depth = planes[:, 0] + planes[:, 1] * dx + planes[:, 2] * dy
        depth_bits = _INFINITY_BITS - inverse_depth.view(torch.int32).long()
        key = (depth_bits << 32) | face[owner]
        base = item * (height * width) + row0.long() * width + col0.long()
        pixel = base[owner] + dy * width + dx
        zbuffer = torch.full((batch * height * width,), _EMPTY_KEY, dtype=torch.long, device=screen.device)
        zbuffer.scatter_reduce_(0, pixel, key, reduce="amin")
        return torch.where(zbuffer == _EMPTY_KEY, -1, zbuffer & 0xFFFFFFFF)

    @staticmethod
    def _fragments(
        screen: torch.Tensor, triangles: torch.Tensor, winner: torch.Tensor, height: int, width: int
    ) -> RasterOutput:
        """Differentiable barycentrics and depth of the visible triangles (see the module doc)."""
        batch = screen.shape[0]
        pixels = torch.nonzero(winner >= 0).squeeze(1)
        item = torch.div(pixels, height * width, rounding_mode="floor")
        rest = pixels - item * (height * width)
        row = torch.div(rest, width, rounding_mode="floor")
        col = rest - row * width
        vertex = (triangles.index_select(0, winner[pixels]) + (item * screen.shape[1]).unsqueeze(1)).view(-1)
        x, y, depth = screen.reshape(-1, 3).index_select(0, vertex).view(-1, 3, 3).unbind(-1)
        edges = _edge_functions(x, y, col.to(x.dtype) + 0.5, row.to(x.dtype) + 0.5)
        screen_weights = edges / edges.sum(-1, keepdim=True)  # affine barycentrics β
        weighted = screen_weights / depth
        inverse_depth = weighted.sum(-1, keepdim=True)
        barycentrics = screen.new_zeros(batch * height * width, 3).index_put_((pixels,), weighted / inverse_depth)
        depth_image = screen.new_full((batch * height * width,), BACKGROUND_DEPTH)
        depth_image.index_put_((pixels,), inverse_depth.squeeze(1).reciprocal())
        return RasterOutput(
            triangle_id=winner.view(batch, height, width),
            barycentrics=barycentrics.view(batch, height, width, 3),
            depth=depth_image.view(batch, height, width),
        )
