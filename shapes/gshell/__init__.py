"""G-Shell: open and closed surfaces from a manifold SDF on a tet grid (Liu et al., ICLR 2024).

``build_tet_grid`` -> ``extract_gshell`` (marching tets + mSDF cut), differentiable renderers
(``get_renderer``: nvdiffrast on CUDA, DEODR on CPU; OpenCV cameras), ``render_views`` (target
views of any mesh), ``load_views`` / ``save_views`` (RGBA + ``cameras.json``) and multiview
``reconstruct(views, cameras) -> trimesh.Trimesh``.

Example::

    from shapes.gshell import render_views, reconstruct
    views, cameras = render_views(mesh, n_views=16, resolution=96)
    surface = reconstruct(views, cameras, resolution=32, iterations=300)
    surface.export("garment.glb")
    # the authors' settings (128^3, 5000 steps: GPU-sized), or shortened for a CPU
    paper = reconstruct(views, cameras, preset_config("paper", resolution=48, iterations=600))
"""

from __future__ import annotations

from .baselines import udf_baseline
from .extract import GShellMesh, cut_by_msdf, extract_gshell, marching_tets
from .reconstruct import ReconstructConfig, optimise, preset_config, reconstruct
from .render import Camera, get_renderer, look_at_camera
from .tetgrid import TetGrid, build_tet_grid
from .views import Views, check_views, framed_cameras, load_views, render_views, save_views

__all__ = ["Camera", "GShellMesh", "ReconstructConfig", "TetGrid", "Views", "build_tet_grid",
           "check_views", "cut_by_msdf", "extract_gshell", "framed_cameras", "get_renderer",
           "load_views",
           "look_at_camera", "marching_tets", "optimise", "preset_config", "reconstruct",
           "render_views",
           "save_views", "udf_baseline"]
