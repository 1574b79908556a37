"""A drawn mouth interior: a dark cavity with a teeth band inside a driven face's inner-lip polygon.

The morphable model leaves the inner-lip loop as a hole. A driven mouth that opens wider than the portrait's own
reveals what the portrait never showed (a closed-mouth photo has no teeth or cavity to warp), so it is painted:

* **where**: a fan of triangles from the inner-lip loop to a hub half-way between the middles of the upper and
  lower inner lip (FaceMesh 13 and 14), rasterized on the driven mesh (:class:`LipFan`); a lip coordinate runs
  from 0 on the upper inner lip through 0.5 at the hub to 1 on the lower one;
* **what** (:func:`interior_colour`): :data:`CAVITY_COLOR`, darkest near the lips' shadow, with a
  :data:`TEETH_COLOR` band under the upper lip, its edge blurred (σ 0.8 px). The cavity stays dark down to the
  lower lip (in speech the lower lip mostly hides the lower teeth): over a lower lip no darker or redder than
  the skin (a painting, a black-and-white photo, a statue) a pale band there is taken for the lip's edge by
  MediaPipe FaceMesh, which then measures the mouth less open than the mesh (docs/RESULTS.md, twenty-ninth pass).
  Given the portrait, the colour is toned to its lips (:func:`toned_to_portrait`): grey in a grey face;
* **how much** (:func:`interior_opacity`): ``clamp(2 (1 − A_src / A_drv), 0, 1)``, A the screen areas of the
  portrait's and the driven inner-lip polygons: nothing where the driven mouth is no wider than the portrait's
  own (whatever the portrait shows there is warped unchanged), fully painted from twice its area.

The embedded corpus' frames are rendered with it (:mod:`talkinghead.data.synthetic.frame_renderer`), and
:class:`~talkinghead.models.mesh_to_video.MeshToVideo` ``(mouth_interior=True)`` composites the same painting
over its frames (:class:`MouthInterior`).
"""

import torch
from kornia.color import rgb_to_grayscale
from kornia.filters import gaussian_blur2d
from torch import nn

from talkinghead.face.camera import PerspectiveCamera
from talkinghead.face.morphable_model import MorphableModel
from talkinghead.render.factory import make_rasterizer

CAVITY_COLOR = (0.13, 0.04, 0.05)
TEETH_COLOR = (0.88, 0.85, 0.79)
EDGE_SIGMA = 0.8  # px: the blur of the painted edge
BOX_MARGIN = 4  # px around the lips rendered by MouthInterior: more than the edge blur's 5 × 5 kernel reaches


def smoothstep(x: torch.Tensor) -> torch.Tensor:
    """0 below 0, 1 above 1, ``3x² − 2x³`` between."""
    x = x.clamp(0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def polygon_area(points: torch.Tensor) -> torch.Tensor:
    """Unsigned shoelace area (B,) of polygons (B, P, 2)."""
    x, y = points[..., 0], points[..., 1]
    return 0.5 * (x * y.roll(-1, dims=-1) - x.roll(-1, dims=-1) * y).sum(-1).abs()


class LipFan:
    """The inner-lip loop of a morphable model closed by a fan of triangles around a hub vertex.

    Attributes:
        loop: (P,) the inner-lip loop's vertex indices, in order.
        triangles: (P, 3) the fan; the hub is vertex ``model.num_vertices``, appended by :meth:`with_hub`.
        lip_coordinate: (N + 1,) 0 on the upper inner lip, 1 on the lower, 0.5 at the corners and the hub.
    """

    def __init__(self, model: MorphableModel) -> None:
        loop = model.region("lip_inner").cpu()
        upper_chain, lower_chain = model.region("lip_inner_upper").cpu(), model.region("lip_inner_lower").cpu()
        upper, lower = set(upper_chain.tolist()), set(lower_chain.tolist())
        self.middles = torch.stack((upper_chain[len(upper_chain) // 2], lower_chain[len(lower_chain) // 2]))
        hub = model.num_vertices
        self.loop = loop
        self.triangles = torch.stack((loop, loop.roll(-1), torch.full_like(loop, hub)), dim=1)
        coordinate = torch.zeros(model.num_vertices + 1)
        coordinate[hub] = 0.5
        for vertex in loop.tolist():
            coordinate[vertex] = 0.5 if vertex in upper and vertex in lower else (1.0 if vertex in lower else 0.0)
        self.lip_coordinate = coordinate

    def with_hub(self, vertices: torch.Tensor) -> torch.Tensor:
        """(B, N, 3) → (B, N + 1, 3): the hub (mid-point of the inner lips' middles) appended as vertex N."""
        return torch.cat((vertices, vertices[:, self.middles].mean(1, keepdim=True)), dim=1)


def interior_opacity(source_loop: torch.Tensor, driven_loop: torch.Tensor) -> torch.Tensor:
    """(B,) ``clamp(2 (1 − A_src / A_drv), 0, 1)`` of the inner-lip polygons' screen points (B, P, 2)."""
    driven_area = polygon_area(driven_loop).clamp(min=1e-6)
    return (2.0 * (1.0 - polygon_area(source_loop) / driven_area)).clamp(0.0, 1.0)


def interior_colour(lip_coordinate: torch.Tensor, mouth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Colour (B, 3, H, W) and edge-blurred coverage (B, 1, H, W) of the painted interior, from the fan's
    coverage ``mouth`` (B, 1, H, W) and the lip coordinate interpolated over it (0 off the fan)."""
    dtype, device = mouth.dtype, mouth.device
    s = lip_coordinate
    teeth_band = smoothstep((0.24 - s) / 0.06)
    cavity = torch.tensor(CAVITY_COLOR, dtype=dtype, device=device)[None, :, None, None]
    teeth = torch.tensor(TEETH_COLOR, dtype=dtype, device=device)[None, :, None, None]
    shade = 0.7 + 0.3 * (1.0 - (2.0 * s - 1.0).abs())  # the cavity is darkest near the lips' shadow
    colour = cavity * shade + teeth_band * (teeth - cavity * shade)
    # One blur for both (zero outside the mouth, so the image border needs nothing but zeros).
    blurred = gaussian_blur2d(
        torch.cat((colour * mouth, mouth), dim=1), (5, 5), (EDGE_SIGMA,) * 2, border_type="constant"
    )
    colour, coverage = blurred[:, :3], blurred[:, 3:]
    return (colour / coverage.clamp(min=1e-3)).clamp(0.0, 1.0), coverage


def chroma(image: torch.Tensor) -> torch.Tensor:
    """Per-pixel chroma (B, 1, H, W) of images (B, 3, H, W): the largest channel minus the smallest."""
    return image.amax(dim=1, keepdim=True) - image.amin(dim=1, keepdim=True)


INTERIOR_CHROMA = max(CAVITY_COLOR) - min(CAVITY_COLOR)  # the cavity's; the teeth's is the same
# Lips at least half as colourful as the painted interior keep its full colour: every colour portrait measured
# (real photos and paintings 0.10-0.47 around the lips, the embedded corpus' faces 0.074 and more) does, and only
# near-grey faces fade towards a grey interior (a marble bust 0.025, black-and-white photos and a sketch 0).
FULL_COLOUR_LIPS_CHROMA = INTERIOR_CHROMA / 2


def lips_chroma(portraits: torch.Tensor, lips: torch.Tensor) -> torch.Tensor:
    """Mean chroma (B,) of portraits (B, 3, H, W) over the box (pixel centres) around their lips' screen points
    (B, V, 2); 0 where the box holds no pixel centre."""
    height, width = portraits.shape[-2:]
    x = torch.arange(width, device=portraits.device, dtype=lips.dtype) + 0.5
    y = torch.arange(height, device=portraits.device, dtype=lips.dtype) + 0.5
    low, high = lips.amin(dim=1), lips.amax(dim=1)  # (B, 2)
    inside_x = (x[None] >= low[:, :1]) & (x[None] <= high[:, :1])
    inside_y = (y[None] >= low[:, 1:]) & (y[None] <= high[:, 1:])
    box = (inside_y[:, :, None] & inside_x[:, None, :]).unsqueeze(1).to(portraits.dtype)  # (B, 1, H, W)
    return (chroma(portraits) * box).sum(dim=(1, 2, 3)) / box.sum(dim=(1, 2, 3)).clamp(min=1.0)


def toned_to_portrait(colour: torch.Tensor, portrait_chroma: torch.Tensor) -> torch.Tensor:
    """The interior's colour (B, 3, h, w) toned to the portrait's lips (chroma (B,), :func:`lips_chroma`): its
    chroma scaled by ``min(1, portrait_chroma / FULL_COLOUR_LIPS_CHROMA)`` around its luma (kornia's BT.601 grey).
    A black-and-white photo or a sketch gets a grey interior, a colour portrait the painted one to the bit; a
    cavity coloured inside a grey face is also read as less open by MediaPipe (docs/RESULTS.md, thirtieth pass)."""
    luma = rgb_to_grayscale(colour)
    fade = 1.0 - (portrait_chroma / FULL_COLOUR_LIPS_CHROMA).clamp(max=1.0)
    return colour - fade[:, None, None, None].to(colour.dtype) * (colour - luma)


class MouthInterior(nn.Module):
    """Paints the mouth interior of driven faces over frames of their portrait (module docstring).

    The fan is rasterized with the inner lip (the triangles touching an inner-lip vertex), which hides the parts
    of it the lips curl in front of, as the whole face does in the corpus' frames (tested equal at 0.3 rad of yaw);
    the rest of the face lies too far from the fan to hide it, and leaving it out keeps the painting at a fraction
    of a frame's rendering cost.

    Args:
        model: the morphable model of the vertices.
        camera: the frames' camera.
        rasterizer: ``auto`` | ``torch`` | ``nvdiffrast``; built per device on first use.
    """

    def __init__(self, model: MorphableModel, camera: PerspectiveCamera, rasterizer: str = "auto") -> None:
        super().__init__()
        self.fan = LipFan(model)
        triangles = model.triangles.cpu()
        near_fan = torch.isin(triangles, model.region("lip_inner").cpu()).any(dim=1)
        self.num_lip_triangles = int(near_fan.sum())
        self.triangles = torch.cat((triangles[near_fan], self.fan.triangles), dim=0)
        self.vertices = self.triangles.unique()
        self.lips = model.region("lips").cpu()
        self.camera = camera
        self.backend = rasterizer
        self._rasterizers: dict[str, object] = {}

    def forward(
        self, source: torch.Tensor, driven: torch.Tensor, portraits: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The interior of driven meshes ``driven`` over their portraits' posed meshes ``source``, both (B, N, 3)
        world cm, in the one box of the frame that can be painted (the lips and the blur's reach):
        ``(colour (B, 3, h, w), opacity (B, 1, h, w), box)``, ``box`` (4,) long = x0, y0, x1, y1 pixels
        (h = y1 − y0, w = x1 − x0; empty when the lips are outside the frame). With the portraits (B, 3, H, W)
        the colour is toned to their lips' (:func:`toned_to_portrait`). :func:`paint` composites it."""
        device = driven.device
        if str(device) not in self._rasterizers:
            self._rasterizers[str(device)] = make_rasterizer(self.backend, device)
        rasterizer = self._rasterizers[str(device)]
        batch, size = driven.shape[0], self.camera.image_size
        driven_screen = self.camera.project(self.fan.with_hub(driven))
        source_screen = self.camera.project(source)
        lips = driven_screen[:, self.vertices.to(device), :2].detach()
        x0, y0 = (lips.amin(dim=(0, 1)).floor() - BOX_MARGIN).clamp(0, size).long().tolist()
        x1, y1 = (lips.amax(dim=(0, 1)).ceil() + BOX_MARGIN).clamp(0, size).long().tolist()
        x1, y1 = max(x0, x1), max(y0, y1)
        box = torch.tensor([x0, y0, x1, y1], device=device)
        if x1 == x0 or y1 == y0:
            return driven.new_zeros(batch, 3, y1 - y0, x1 - x0), driven.new_zeros(batch, 1, y1 - y0, x1 - x0), box
        shift = torch.tensor([x0, y0, 0.0], device=device, dtype=driven.dtype)
        raster = rasterizer.rasterize(driven_screen - shift, self.triangles, (y1 - y0, x1 - x0))
        mouth = (raster.triangle_id >= self.num_lip_triangles).unsqueeze(1).to(driven.dtype)
        coordinate = self.fan.lip_coordinate.to(device, driven.dtype)[None, :, None].expand(batch, -1, -1)
        lip_coordinate = rasterizer.interpolate(coordinate, raster, self.triangles) * mouth
        colour, coverage = interior_colour(lip_coordinate, mouth)
        if portraits is not None:
            lips = source_screen[:, self.lips.to(device), :2].detach()
            colour = toned_to_portrait(colour, lips_chroma(portraits.detach(), lips))
        loop = self.fan.loop
        opacity = interior_opacity(source_screen[:, loop, :2], driven_screen[:, loop, :2])
        return colour, coverage * opacity[:, None, None, None], box


def paint(frames: torch.Tensor, colour: torch.Tensor, opacity: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    """Frames (B, 3, H, W) with :class:`MouthInterior`'s ``colour`` composited at ``opacity`` inside ``box``:
    ``frame · (1 − opacity) + colour · opacity`` there, the frames unchanged elsewhere (a new tensor)."""
    x0, y0, x1, y1 = box.tolist()
    region = frames[..., y0:y1, x0:x1]
    painted = frames.clone()
    painted[..., y0:y1, x0:x1] = region * (1.0 - opacity) + colour.to(region.dtype) * opacity
    return painted
