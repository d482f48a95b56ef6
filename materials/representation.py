"""UniMat's unified crystal representation (Yang et al., ICLR 2024, Sec. 2.1 and Fig. 1).

A crystal becomes a tensor over the periodic table: a 9 x 18 grid of element cells (periods 1-7
in rows 0-6 by IUPAC group; the lanthanides La-Lu and actinides Ac-Lr in rows 7 and 8, columns
2-16), each cell with ``L`` slots, each slot holding one atom's fractional coordinates, plus the six
lattice parameters.

Periodic handling (our choice, documented): every fractional coordinate f is stored as the point
(cos 2 pi f, sin 2 pi f) on the unit circle, so a slot has 6 channels and f = 0 and f = 1 are the
same point (the representation itself is periodic; decoding is atan2 mod 1). The null value of an
empty slot is the zero vector, the centre of every circle: at distance 1 per axis from any atom,
whatever its coordinates.

Occupancy (``occupancy_channel=True``, the default since round 3): a seventh channel per slot holds
1 for an atom and 0 for an empty slot (so its posterior mean is the probability of an atom), and
decoding reads it (> 0.5 = atom). Empty slots stay the zero vector, so an untrained backbone
(output ~0) keeps them empty (``sigma_data`` small; ``tests/materials/test_occupancy_fix.py``);
a -1 null would have to be learnt as an output offset first. Without it (the
original radius-only encoding, kept to load old checkpoints) a slot is an atom when its mean
(cos, sin) radius exceeds 0.5; but the centre of the circles is also the posterior mean of an atom
whose position is still uncertain, so "empty" and "occupied, position undecided" look alike to the
denoiser and half-decided slots decode as extra atoms stacked on others (measured on Perov-5:
~20 atoms per sample instead of 5, nearest neighbours 0.03 A apart;
``benchmarks/results/materials.md``). A separate occupancy channel is UniMat's own choice in spirit
(its null value lies outside the coordinate range, Sec. 2.1).

Element cells: ``decode`` only places atoms in cells of elements seen in training (``elements``,
recorded by ``fit``; a documented modelling choice: an unconditional model cannot have learnt an
element it never saw, and stray slots there decoded as Rf, Db ... in the embedded demo).

Lattice: (ln a, ln b, ln c, alpha, beta, gamma [deg]) standardised by data statistics.
Within a cell, atoms fill the first slots in lexicographic order of their wrapped coordinates.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
from pymatgen.core import Composition, Element, Lattice, Structure

from common.errors import DataError

GRID_ROWS, GRID_COLS = 9, 18
COORD_CHANNELS = 6  # (cos, sin) of x, y, z
OCCUPIED_RADIUS = 0.5  # radius-only encoding: a slot is an atom above this mean radius


def element_cell(element: Element | str) -> tuple[int, int]:
    """Row and column of an element's cell in the 9 x 18 grid (f-block in rows 7 and 8)."""
    el = Element(element) if isinstance(element, str) else element
    z = el.Z
    if 57 <= z <= 71:
        return 7, z - 57 + 2
    if 89 <= z <= 103:
        return 8, z - 89 + 2
    return el.row - 1, el.group - 1


def _build_cell_table() -> dict[tuple[int, int], Element]:
    table = {}
    for z in range(1, 119):
        el = Element.from_Z(z)
        table[element_cell(el)] = el
    return table


CELL_ELEMENT: dict[tuple[int, int], Element] = _build_cell_table()


def cell_element(row: int, col: int) -> Element | None:
    """The element of a grid cell, or None for cells of the grid that hold no element."""
    return CELL_ELEMENT.get((row, col))


def _element_of(site_specie: object, item: str) -> Element:
    """The Element of a site's species; a DataError for dummy species or Z outside 1-118."""
    el = getattr(site_specie, "element", site_specie)
    if not isinstance(el, Element):
        raise DataError(f"species {site_specie!s} is not a chemical element", file=item,
                        field="species", expected="elements H-Og of the periodic table")
    return el


def check_structure(structure: Structure, item: str = "structure") -> None:
    """Raise DataError for disordered/partially occupied sites or species outside the table."""
    for i, site in enumerate(structure):
        if not site.is_ordered:
            raise DataError(f"site {i} is disordered or partially occupied ({site.species})",
                            file=item, field="occupancy", expected="fully ordered sites, one "
                            "element each with occupancy 1")
        _element_of(site.specie, item)


def max_atoms_per_element(structures: list[Structure]) -> int:
    """The smallest L that holds every structure (largest count of one element in one cell)."""
    best = 0
    for s in structures:
        counts = Composition({_element_of(sp, "structure"): n
                              for sp, n in s.composition.items()})
        best = max(best, int(max(counts.values())))
    return best


@dataclass
class LatticeScaler:
    """Standardises (ln a, ln b, ln c, alpha, beta, gamma) with floors on the spreads."""

    mean: list[float] = field(default_factory=lambda: [1.5, 1.5, 1.5, 90.0, 90.0, 90.0])
    std: list[float] = field(default_factory=lambda: [0.3, 0.3, 0.3, 15.0, 15.0, 15.0])

    @classmethod
    def fit(cls, structures: list[Structure]) -> LatticeScaler:
        params = np.array([_lattice_params(s.lattice) for s in structures], dtype=np.float64)
        mean = params.mean(0)
        std = np.maximum(params.std(0), [0.05, 0.05, 0.05, 5.0, 5.0, 5.0])
        return cls(mean.tolist(), std.tolist())

    def encode(self, lattice: Lattice) -> np.ndarray:
        return (_lattice_params(lattice) - np.array(self.mean)) / np.array(self.std)

    def decode(self, z: np.ndarray) -> tuple[float, ...]:
        p = np.asarray(z, dtype=np.float64) * np.array(self.std) + np.array(self.mean)
        return tuple(float(v) for v in np.concatenate([np.exp(p[:3]), p[3:]]))


def _lattice_params(lattice: Lattice) -> np.ndarray:
    a, b, c = lattice.abc
    return np.array([math.log(a), math.log(b), math.log(c), *lattice.angles], dtype=np.float64)


def valid_lattice(abc_angles: tuple[float, ...], min_volume: float = 0.1) -> bool:
    """Positive finite lengths, angles in (0, 180) forming a real cell, volume > ``min_volume``."""
    a, b, c, al, be, ga = abc_angles
    if not all(math.isfinite(v) for v in abc_angles) or min(a, b, c) <= 0:
        return False
    if not all(0 < x < 180 for x in (al, be, ga)):
        return False
    ca, cb, cg = (math.cos(math.radians(x)) for x in (al, be, ga))
    vol2 = 1 - ca**2 - cb**2 - cg**2 + 2 * ca * cb * cg
    return vol2 > 0 and a * b * c * math.sqrt(vol2) > min_volume


@dataclass
class UniMatEncoder:
    """Structure <-> UniMat tensor ([C, 9, 18, L] slots + [6] lattice), flattened.

    C = 7 with the occupancy channel (6 coordinate channels + occupancy 0/1), else 6.
    ``elements``: symbols decoding may use (None = every element of the table).
    """

    slots: int
    lattice: LatticeScaler = field(default_factory=LatticeScaler)
    occupancy_channel: bool = True
    elements: list[str] | None = None
    atom_counts: dict[str, float] | None = None  # training distribution of atoms per cell
    # training distribution of distinct elements given the atom count: {"N": {"k": p}}
    element_counts: dict[str, dict[str, float]] | None = None

    @classmethod
    def fit(cls, structures: list[Structure], slots: int | None = None,
            occupancy_channel: bool = True, restrict_elements: bool = True) -> UniMatEncoder:
        """L from the data (unless given), lattice statistics and the elements of ``structures``."""
        elements = None
        if restrict_elements:
            elements = sorted({_element_of(sp, "structure").symbol for s in structures
                               for sp in s.composition}, key=lambda e: Element(e).Z)
        counts = np.bincount([len(s) for s in structures])
        atom_counts = {str(n): float(c / counts.sum()) for n, c in enumerate(counts) if c}
        pairs: dict[str, dict[str, float]] = {}
        for s in structures:
            row = pairs.setdefault(str(len(s)), {})
            k = str(len(s.composition.elements))
            row[k] = row.get(k, 0.0) + 1.0
        element_counts = {n: {k: c / sum(row.values()) for k, c in row.items()}
                          for n, row in pairs.items()}
        return cls(slots or max_atoms_per_element(structures), LatticeScaler.fit(structures),
                   occupancy_channel, elements, atom_counts, element_counts)

    # sizes -----------------------------------------------------------------------------------
    @property
    def slot_channels(self) -> int:
        return COORD_CHANNELS + int(self.occupancy_channel)

    @property
    def grid_shape(self) -> tuple[int, int, int, int]:
        return (self.slot_channels, GRID_ROWS, GRID_COLS, self.slots)

    @property
    def dim(self) -> int:
        """Length of the flat vector: C * 9 * 18 * L slot numbers then 6 lattice numbers."""
        return int(np.prod(self.grid_shape)) + 6

    def cell_mask(self) -> np.ndarray:
        """[9, 18] bool: the element cells decoding may use (``elements``, or every element)."""
        mask = np.zeros((GRID_ROWS, GRID_COLS), dtype=bool)
        for (r, c), el in CELL_ELEMENT.items():
            mask[r, c] = self.elements is None or el.symbol in self.elements
        return mask

    def as_dict(self) -> dict:
        return {"slots": self.slots, "lattice": asdict(self.lattice),
                "occupancy_channel": self.occupancy_channel, "elements": self.elements,
                "atom_counts": self.atom_counts, "element_counts": self.element_counts}

    @classmethod
    def from_dict(cls, d: dict) -> UniMatEncoder:
        # checkpoints from before round 3 have neither key: radius encoding, every element
        return cls(int(d["slots"]), LatticeScaler(**d["lattice"]),
                   bool(d.get("occupancy_channel", False)), d.get("elements"),
                   d.get("atom_counts"), d.get("element_counts"))

    # encoding ----------------------------------------------------------------------------------
    def occupancy(self, composition: Composition | str, item: str = "composition") -> np.ndarray:
        """[9, 18, L] mask with the first n slots of each element's cell set (n = its count)."""
        comp = Composition(composition)
        occ = np.zeros((GRID_ROWS, GRID_COLS, self.slots), dtype=np.float64)
        for sp, n in comp.items():
            el = _element_of(sp, item)
            if abs(n - round(n)) > 1e-8:
                raise DataError(f"non-integer amount {n} of {el}", file=item, field="composition",
                                expected="integer atom counts per cell")
            n = int(round(n))
            if n > self.slots:
                raise DataError(f"{n} atoms of {el} but the model has L={self.slots} slots per "
                                "element", file=item, field=str(el),
                                expected=f"at most {self.slots} atoms of one element")
            r, c = element_cell(el)
            occ[r, c, :n] = 1.0
        return occ

    def encode(self, structure: Structure, item: str = "structure") -> np.ndarray:
        """The flat float64 vector of one ordered structure (UniMat Fig. 1)."""
        check_structure(structure, item)
        grid = np.zeros(self.grid_shape, dtype=np.float64)
        by_cell: dict[tuple[int, int], list[np.ndarray]] = {}
        for site in structure:
            el = _element_of(site.specie, item)
            by_cell.setdefault(element_cell(el), []).append(np.mod(site.frac_coords, 1.0))
        for (r, c), coords in by_cell.items():
            if len(coords) > self.slots:
                raise DataError(
                    f"{len(coords)} atoms of {cell_element(r, c)} but L={self.slots} slots",
                    file=item, field=str(cell_element(r, c)),
                    expected=f"at most {self.slots} atoms of one element (raise L)")
            coords.sort(key=lambda f: tuple(np.round(f, 8)))
            f = np.array(coords)  # [n, 3]
            ang = 2 * np.pi * f
            grid[0:COORD_CHANNELS:2, r, c, : len(f)] = np.cos(ang).T
            grid[1:COORD_CHANNELS:2, r, c, : len(f)] = np.sin(ang).T
            if self.occupancy_channel:
                grid[COORD_CHANNELS, r, c, : len(f)] = 1.0
        return np.concatenate([grid.ravel(), self.lattice.encode(structure.lattice)])

    # decoding ----------------------------------------------------------------------------------
    def split(self, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        flat = np.asarray(flat, dtype=np.float64)
        return flat[:-6].reshape(self.grid_shape), flat[-6:]

    def occupancy_score(self, flat: np.ndarray) -> np.ndarray:
        """[9, 18, L] how occupied each slot looks (occupancy channel, or mean radius);
        -inf in cells outside ``elements``."""
        grid, _ = self.split(flat)
        if self.occupancy_channel:
            score = grid[COORD_CHANNELS].copy()
        else:
            score = np.sqrt(grid[0:COORD_CHANNELS:2] ** 2 + grid[1:COORD_CHANNELS:2] ** 2).mean(0)
        score[~self.cell_mask()] = -np.inf
        return score

    def occupancy_mask(self, flat: np.ndarray) -> np.ndarray:
        """[9, 18, L] the slots ``decode`` treats as atoms without a given occupancy."""
        score = self.occupancy_score(flat)
        return (score > (0.5 if self.occupancy_channel else OCCUPIED_RADIUS)).astype(np.float64)

    def top_slots(self, flat: np.ndarray, n: int) -> np.ndarray:
        """[9, 18, L] mask of the ``n`` slots that look most occupied (allowed cells only)."""
        score = self.occupancy_score(flat)
        n = min(int(n), int(np.isfinite(score).sum()))
        mask = np.zeros(score.size)
        mask[np.argsort(-score.ravel(), kind="stable")[:n]] = 1.0
        return mask.reshape(score.shape)

    def draw_atom_count(self, rng: np.random.Generator) -> int | None:
        """An atom count from the training distribution (None when it was not recorded)."""
        if not self.atom_counts:
            return None
        ns = [int(k) for k in self.atom_counts]
        p = np.array(list(self.atom_counts.values()))
        return int(rng.choice(ns, p=p / p.sum()))

    def draw_element_count(self, n_atoms: int, rng: np.random.Generator) -> int | None:
        """Distinct elements k from the training distribution p(k | N) (None: not recorded)."""
        row = (self.element_counts or {}).get(str(int(n_atoms)))
        if not row:
            return None
        ks = [int(k) for k in row]
        p = np.array(list(row.values()))
        return int(rng.choice(ks, p=p / p.sum()))

    def decode(self, flat: np.ndarray, occupancy: np.ndarray | None = None,
               min_volume: float = 0.1) -> Structure | None:
        """A Structure from a flat vector, or None when the lattice is invalid or no atom is left.

        Without ``occupancy`` (a [9, 18, L] mask, e.g. from a CSP composition) a slot holds an
        atom when its occupancy channel exceeds 0.5 (radius-only encoding: mean (cos, sin)
        radius above 0.5), and only in the cells of ``elements``.
        """
        grid, lat = self.split(flat)
        params = self.lattice.decode(lat)
        if not valid_lattice(params, min_volume):
            return None
        cos, sin = grid[0:COORD_CHANNELS:2], grid[1:COORD_CHANNELS:2]  # [3, 9, 18, L]
        if occupancy is not None:
            occupied = np.asarray(occupancy) > 0.5
        else:
            occupied = self.occupancy_mask(flat) > 0.5
        species, coords = [], []
        for r, c, k in zip(*np.nonzero(occupied)):
            el = cell_element(int(r), int(c))
            if el is None:
                continue
            frac = np.mod(np.arctan2(sin[:, r, c, k], cos[:, r, c, k]) / (2 * np.pi), 1.0)
            species.append(el)
            coords.append(frac)
        if not species:
            return None
        return Structure(Lattice.from_parameters(*params), species, np.array(coords))


def permute_slots(x: np.ndarray, grid_shape: tuple[int, ...], rng: np.random.Generator,
                  *extra: np.ndarray) -> tuple[np.ndarray, ...]:
    """Slot-permutation augmentation: shuffle the L slots of every cell independently.

    ``x`` is a batch of flat vectors [B, D]; each array in ``extra`` is a [B, C, 9, 18, L] tensor
    (e.g. the occupancy condition) permuted the same way. The decoded structures do not change.
    """
    b = x.shape[0]
    grid = x[:, :-6].reshape(b, *grid_shape)
    perm = np.argsort(rng.random((b, 1, *grid_shape[1:])), axis=-1)
    out = np.take_along_axis(grid, np.broadcast_to(perm, grid.shape), axis=-1)
    flat = np.concatenate([out.reshape(b, -1), x[:, -6:]], axis=1)
    rest = tuple(np.take_along_axis(e, np.broadcast_to(perm, e.shape[:1] + (e.shape[1],)
                                                       + perm.shape[2:]), axis=-1) for e in extra)
    return (flat, *rest)
