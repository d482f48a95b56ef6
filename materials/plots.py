"""Pictures a materials scientist looks at: unit cells in 3-D and the proxy E_hull histogram."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from pymatgen.core import Structure  # noqa: E402

_CORNERS = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=float)
_EDGES = [(a, b) for a in range(8) for b in range(a + 1, 8)
          if np.abs(_CORNERS[a] - _CORNERS[b]).sum() == 1]



def _save(fig: plt.Figure, path: str | Path) -> Path:
    """Write ``fig`` to ``path`` (parents created) and close it."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

def plot_unit_cells(structures: list[Structure], path: str | Path, titles: list[str] | None = None
                    ) -> Path:
    """3-D scatter of the atoms (coloured by element, sized by radius) with the cell edges."""
    from ase.data.colors import jmol_colors

    n = max(len(structures), 1)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig = plt.figure(figsize=(3.2 * cols, 3.2 * rows))
    for i, s in enumerate(structures):
        ax = fig.add_subplot(rows, cols, i + 1, projection="3d")
        m = s.lattice.matrix
        corners = _CORNERS @ m
        for a, b in _EDGES:
            ax.plot(*zip(corners[a], corners[b]), color="0.4", lw=0.8)
        for el in sorted({site.specie for site in s}, key=lambda e: e.Z):
            xyz = np.array([site.coords for site in s if site.specie == el])
            rgb = jmol_colors[el.Z] if el.Z < len(jmol_colors) else (0.5, 0.5, 0.5)  # ase: Z<=109
            size = 60 * float(el.atomic_radius or 1.0) ** 2
            ax.scatter(*xyz.T, s=size, color=rgb, edgecolor="k", linewidth=0.3, label=el.symbol)
        ax.set_title(titles[i] if titles else s.composition.reduced_formula, fontsize=9)
        ax.set_axis_off()
        ax.legend(fontsize=6, loc="upper right")
    return _save(fig, path)


def plot_ehull_histogram(values: dict[str, list[float]], path: str | Path) -> Path:
    """Histogram of proxy energies above hull (eV/atom), one series per label."""
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    shown = 0
    for label, vals in values.items():
        v = [x for x in vals if x is not None and math.isfinite(x)]
        if v:
            ax.hist(v, bins=20, alpha=0.6, label=f"{label} (n={len(v)})")
            shown += 1
    ax.axvline(0.0, color="k", lw=0.8)
    ax.axvline(0.1, color="k", lw=0.8, ls="--")
    ax.set_xlabel("proxy E_hull (eV/atom, CHGNet)")
    ax.set_ylabel("candidates")
    if shown:
        ax.legend(fontsize=8)
    else:  # nothing relaxed (evaluate.relax=false, or no valid candidate)
        ax.text(0.5, 0.5, "no relaxed candidate", ha="center", transform=ax.transAxes)
    return _save(fig, path)
