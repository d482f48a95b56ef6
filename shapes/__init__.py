"""3-D shape generation: WaLa wavelet-latent diffusion (Sivaram et al. 2024) and shared mesh tools.

Submodules are imported lazily so ``import shapes`` stays cheap; trimesh, PyWavelets,
scikit-image, point-cloud-utils and POT come with the ``genpipes[shapes]`` extra.
"""

from __future__ import annotations
