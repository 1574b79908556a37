"""Render the built-in face's NCC projection texture (Eq. 9) for a few expressions to PNG files.

``python tools/ncc_preview.py --out outputs/demo`` writes ``ncc_neutral.png``,
``ncc_jawOpen.png``, ``ncc_eyeBlink.png`` (PT_in), their inner-face masks ``mask_*.png`` and
``ncc_sheet.png`` (all three side by side). ``make demo`` writes them first. A ``--backend`` that cannot run
here (nvdiffrast without CUDA or not installed) or an output folder it cannot write is one line on stderr and
exit code 2.
"""

import argparse
import sys
from pathlib import Path

import torch

from talkinghead.atomic import write_png_atomic
from talkinghead.cli_conventions import add_common_arguments, configure_logging, verbosity
from talkinghead.face import PerspectiveCamera, builtin_morphable_model
from talkinghead.render.base import Rasterizer
from talkinghead.render.factory import make_rasterizer
from talkinghead.render.ncc import NCCRenderer

EXPRESSIONS = {"neutral": {}, "jawOpen": {"jawOpen": 1.0}, "eyeBlink": {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0}}


def render_expressions(rasterizer: Rasterizer) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{name: (PT_in (3, H, W), mask (1, H, W))} for :data:`EXPRESSIONS` at the frontal pose."""
    model = builtin_morphable_model()
    beta = torch.zeros(len(EXPRESSIONS), model.num_expression)
    for row, weights in enumerate(EXPRESSIONS.values()):
        for name, weight in weights.items():
            beta[row, model.expression_index(name)] = weight
    renderer = NCCRenderer(model, PerspectiveCamera(), rasterizer)
    pt_in, mask = renderer(model.vertices(beta=beta))
    return {name: (pt_in[i], mask[i]) for i, name in enumerate(EXPRESSIONS)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("outputs/demo"), help="output folder")
    parser.add_argument("--backend", default="auto", choices=("auto", "torch", "nvdiffrast"), help="rasterizer")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    configure_logging(verbosity(args))
    try:
        rasterizer = make_rasterizer(args.backend)
    except RuntimeError as error:  # nvdiffrast without CUDA, or not installed
        print(f"error: --backend {args.backend}: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        renders = render_expressions(rasterizer)
        for name, (pt_in, mask) in renders.items():
            write_png_atomic(pt_in, args.out / f"ncc_{name}.png")
            write_png_atomic(mask.expand(3, -1, -1), args.out / f"mask_{name}.png")
        write_png_atomic(torch.cat([pt for pt, _ in renders.values()], dim=-1), args.out / "ncc_sheet.png")
    except OSError as error:
        print(f"error: cannot write to {args.out}: {error.strerror or error}", file=sys.stderr)
        return 2
    print(f"wrote {len(renders) * 2 + 1} PNGs to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
