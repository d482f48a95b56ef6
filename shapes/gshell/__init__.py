"""G-Shell: open and closed surfaces from a manifold SDF on a tet grid (Liu et al., ICLR 2024).

``build_tet_grid`` -> ``extract_gshell`` (marching tets + mSDF cut), differentiable renderers
(``get_renderer``: nvdiffrast on CUDA, DEODR on CPU) and multiview ``reconstruct``.
"""

from __future__ import annotations

from .extract import GShellMesh, cut_by_msdf, extract_gshell, marching_tets
from .render import Camera, get_renderer, look_at_camera
from .tetgrid import TetGrid, build_tet_grid

__all__ = ["Camera", "GShellMesh", "TetGrid", "build_tet_grid", "cut_by_msdf", "extract_gshell",
           "get_renderer", "look_at_camera", "marching_tets"]
