"""``genpipes shapes reconstruct``: G-Shell multiview reconstruction of open and closed meshes.

``--mesh PATH`` renders views of a mesh (normalised to the unit cube), reconstructs it and
reports Chamfer / normal consistency / F-score against it; ``--views DIR`` reconstructs from a
user's RGBA images + ``cameras.json`` (format in ``shapes/gshell/views.py``). Writes the mesh
(OBJ/PLY/GLB), a preview PNG, ``metrics.json`` and (for ``--mesh``) the rendered target views
into ``--out DIR``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from common.errors import ConfigError
from common.io import atomic_write_json
from pipelines.registry import Command

FORMATS = ("obj", "ply", "glb")


def _add_arguments(p: Any) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--mesh", metavar="PATH", help="a mesh to render and reconstruct")
    src.add_argument("--views", metavar="DIR", help="RGBA images + cameras.json (OpenCV)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--mode", choices=("gshell", "watertight"), default="gshell",
                   help="gshell (SDF + mSDF, open surfaces) or watertight (mSDF off)")
    p.add_argument("--n-views", type=int, default=16,
                   help="views rendered for --mesh (garments with openings 2-4 cells wide, e.g. "
                   "t-shirt sleeves: 24 with --resolution 48)")
    p.add_argument("--image-size", type=int, default=96, help="view size in pixels (--mesh)")
    p.add_argument("--preset", choices=("default", "paper"), default="default",
                   help="'paper': the G-Shell authors' multiview settings (128^3, 5000 steps of "
                   "2 views, lr 0.03 falling 10x, their Huber mSDF regularisers; ~CPU-hours "
                   "here: shorten with --resolution / --iterations); options given below "
                   "override the preset")
    p.add_argument("--resolution", type=int, default=None,
                   help="tet grid cubes per axis (default 32, paper 128); an opening needs about "
                   "3 cells across to be cut (48 opens a t-shirt's sleeves, ~2.4x the CPU time "
                   "of 32)")
    p.add_argument("--iterations", type=int, default=None, help="default 300, paper 5000")
    p.add_argument("--coarse-resolution", type=int, default=0, metavar="N",
                   help="coarse-to-fine: start on an N^3 grid and resample onto --resolution "
                   "halfway (0: off)")
    p.add_argument("--open-start", type=float, default=0.0, metavar="F",
                   help="fraction of the run fitted with the SDF alone before the mSDF 'open' "
                   "term ramps in (0: from the start); 0.5 also carves closed objects' "
                   "concavities (Chamfer 0.0328 -> 0.0281) but costs thin garments more "
                   "(t-shirt 0.0116 -> 0.0135) than --open-share 0.1")
    p.add_argument("--open-share", type=float, default=0.0, metavar="F",
                   help="the mSDF 'open' pull acts only in unobserved parts of the template in "
                   "which at least this share of vertices is seen through by the views (0: off); "
                   "0.1 keeps stray votes from cutting closed objects during the fit (a box's "
                   "groove: Chamfer 0.0328 -> 0.0283) but costs some garments (tank +7 %%)")
    p.add_argument("--views-per-step", type=int, default=None, help="default 4, paper 2")
    p.add_argument("--lr", type=float, default=None, help="default 0.01, paper 0.03")
    p.add_argument("--min-opening", type=int, default=16, metavar="N",
                   help="close openings / drop pieces below N template vertices at 24^3 "
                   "(scaled with the resolution squared; 0: keep all)")
    p.add_argument("--renderer", choices=("auto", "deodr", "nvdiffrast"), default="auto")
    p.add_argument("--formats", default="obj,ply,glb", help="comma list of obj, ply, glb")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace files in --out")


def _handler(args: Any) -> int:
    from shapes.export import export_mesh, render_preview
    from shapes.gshell.evaluate import compare_meshes
    from shapes.gshell.reconstruct import preset_config, reconstruct
    from shapes.gshell.render import get_renderer
    from shapes.gshell.views import load_views, render_views, save_views

    formats = [f.strip().lower() for f in args.formats.split(",") if f.strip()]
    bad = sorted(set(formats) - set(FORMATS))
    if bad or not formats:
        raise ConfigError(f"--formats {args.formats!r}: unknown {bad}; valid: {', '.join(FORMATS)}")
    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise ConfigError(f"{out} is not empty; pass --overwrite or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    renderer = get_renderer(args.renderer)
    target = None
    if args.mesh:
        from shapes.mesh_io import load_mesh, normalize_to_unit_cube

        target, _, _ = normalize_to_unit_cube(load_mesh(args.mesh, allow_flat=True))
        views, cams = render_views(target, args.n_views, args.image_size, renderer=renderer)
        save_views(views, cams, out / "views")
    else:
        views, cams = load_views(args.views)
    given = {k: getattr(args, k) for k in ("resolution", "iterations", "views_per_step", "lr")
             if getattr(args, k) is not None}
    cfg = preset_config(args.preset, mode=args.mode, min_opening=args.min_opening,
                        seed=args.seed, coarse_resolution=args.coarse_resolution,
                        open_start=args.open_start, open_share=args.open_share, **given)
    t0 = time.perf_counter()
    mesh = reconstruct(views, cams, cfg, renderer)
    seconds = time.perf_counter() - t0
    written = [export_mesh(mesh, out / f"reconstruction.{fmt}", overwrite=args.overwrite)
               for fmt in formats]
    metrics: dict[str, Any] = {"mode": args.mode, "preset": args.preset,
                               "renderer": renderer.name,
                               "seconds": round(seconds, 2), "n_views": len(views),
                               "resolution": cfg.resolution, "iterations": cfg.iterations,
                               "views_per_step": cfg.views_per_step, "lr": cfg.lr,
                               "coarse_resolution": args.coarse_resolution,
                               "open_start": args.open_start, "open_share": args.open_share,
                               "faces": int(len(mesh.faces))}
    meshes, titles = [mesh], [f"G-Shell ({args.mode})"]
    if target is not None:
        metrics.update(compare_meshes(mesh, target))
        meshes, titles = [target, mesh], ["target", titles[0]]
    atomic_write_json(out / "metrics.json", metrics)
    preview = render_preview(meshes, out / "preview.png", titles=titles)
    print(f"wrote {', '.join(str(p) for p in written)}, {preview} and {out / 'metrics.json'}")
    print(", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in metrics.items()))
    return 0


RECONSTRUCT = Command(
    help="G-Shell multiview reconstruction (--mesh PATH to render+reconstruct, --views DIR)",
    add_arguments=_add_arguments, handler=_handler)
