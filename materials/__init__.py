"""UniMat crystal generation (Yang et al., ICLR 2024) with CDVAE/DiffCSP metrics and a DFT proxy.

``CrystalGenerator`` fits a diffusion model over the periodic-table tensor and samples pymatgen
``Structure`` objects, free or for a given composition; ``materials.metrics`` and
``materials.stability`` score any list of structures.
"""

from __future__ import annotations

from .data import load_structures
from .generator import CrystalGenerator, GeneratorConfig
from .representation import UniMatEncoder

__all__ = ["CrystalGenerator", "GeneratorConfig", "UniMatEncoder", "load_structures"]
