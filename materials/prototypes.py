"""The embedded offline training set: simple ionic prototypes decorated by charge-balanced ions.

Built by the project itself (no download): rock salt, CsCl, zinc blende, wurtzite, fluorite,
anti-fluorite, rutile and cubic perovskite prototypes (their textbook Wyckoff positions via
``Structure.from_spacegroup``), each decorated with ions whose common oxidation states balance the
formula, the lattice scaled from Shannon ionic radii (pymatgen ``Species.ionic_radius``). This is
the offline demo default (unrelaxed, no hull table needed); the proxy-stable set built from seed
prototypes by substitution, CHGNet relaxation and a proxy E_hull filter is ``materials.stable_set``.
"""

from __future__ import annotations

import itertools
import math

from pymatgen.core import Lattice, Species, Structure

CATIONS = {1: ["Li", "Na", "K", "Rb", "Cs", "Ag"],
           2: ["Mg", "Ca", "Sr", "Ba", "Zn", "Cd", "Mn", "Fe", "Co", "Ni"],
           4: ["Ti", "Zr", "Sn", "Ge", "Hf", "Si"]}
ANIONS = {1: ["F", "Cl", "Br", "I"], 2: ["O", "S", "Se"]}


def _radius(symbol: str, oxi: int) -> float:
    try:
        r = Species(symbol, oxi).ionic_radius
    except ValueError:
        r = None
    return float(r) if r else 1.2


def _rocksalt(a: str, x: str, d: float) -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(2 * d), [a, x],
                                     [[0, 0, 0], [0.5, 0.5, 0.5]])


def _cscl(a: str, x: str, d: float) -> Structure:
    return Structure.from_spacegroup("Pm-3m", Lattice.cubic(2 * d / math.sqrt(3)), [a, x],
                                     [[0, 0, 0], [0.5, 0.5, 0.5]])


def _zincblende(a: str, x: str, d: float) -> Structure:
    return Structure.from_spacegroup("F-43m", Lattice.cubic(4 * d / math.sqrt(3)), [a, x],
                                     [[0, 0, 0], [0.25, 0.25, 0.25]])


def _wurtzite(a: str, x: str, d: float) -> Structure:
    lat = d * math.sqrt(8 / 3)
    return Structure.from_spacegroup("P6_3mc", Lattice.hexagonal(lat, lat * 1.633), [a, x],
                                     [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, 0.375]])


def _fluorite(a: str, x: str, d: float) -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(4 * d / math.sqrt(3)), [a, x],
                                     [[0, 0, 0], [0.25, 0.25, 0.25]])


def _rutile(a: str, x: str, d: float) -> Structure:
    lat = d / 0.43
    return Structure.from_spacegroup("P4_2/mnm", Lattice.tetragonal(lat, lat * 0.645), [a, x],
                                     [[0, 0, 0], [0.305, 0.305, 0]])


def _perovskite(a: str, b: str, x: str, d: float) -> Structure:
    return Structure.from_spacegroup("Pm-3m", Lattice.cubic(2 * d), [a, b, x],
                                     [[0.5, 0.5, 0.5], [0, 0, 0], [0.5, 0, 0]])


def _pick(items: list, k: int | None) -> list:
    """``k`` items spread evenly over ``items`` (all when ``k`` is None)."""
    if k is None or k >= len(items):
        return items
    step = len(items) / k
    return [items[int(i * step)] for i in range(k)]


def prototype_structures(max_per_prototype: int | None = None) -> list[Structure]:
    """Charge-balanced decorations of eight ionic prototypes (primitive cells), fixed order.

    ``max_per_prototype`` keeps that many decorations per prototype and charge class, spread
    over the element lists; only those are built (building every decoration takes a while).
    """
    k = max_per_prototype
    jobs: list[tuple] = []
    for q in (1, 2):  # AX with |q| = 1 or 2: rock salt, CsCl, zinc blende, wurtzite
        pairs = list(itertools.product(CATIONS[q], ANIONS[q]))
        for build in (_rocksalt, _cscl, _zincblende, _wurtzite):
            jobs += [(build, a, x, _radius(a, q) + _radius(x, -q)) for a, x in _pick(pairs, k)]
    jobs += [(_fluorite, a, x, _radius(a, 2) + _radius(x, -1))  # AX2 fluorite
             for a, x in _pick(list(itertools.product(CATIONS[2], ANIONS[1])), k)]
    jobs += [(_fluorite, x, a, _radius(a, 1) + _radius(x, -2))  # A2X anti-fluorite, X on 4a
             for a, x in _pick(list(itertools.product(CATIONS[1], ANIONS[2])), k)]
    jobs += [(_rutile, a, "O", _radius(a, 4) + _radius("O", -2)) for a in _pick(CATIONS[4], k)]
    perov = [(a, b, "O", 4) for a, b in itertools.product(["Ca", "Sr", "Ba"], CATIONS[4])]
    perov += [(a, b, "F", 2) for a, b in itertools.product(["K", "Rb", "Cs"],
                                                            ["Mg", "Zn", "Mn", "Ni", "Co"])]
    jobs += [(_perovskite, a, b, x, _radius(b, qb) + _radius(x, -1 if x == "F" else -2))
             for a, b, x, qb in _pick(perov, None if k is None else 2 * k)]
    return [build(*args).get_primitive_structure() for build, *args in jobs]
