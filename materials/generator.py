"""``CrystalGenerator``: UniMat diffusion (Yang et al., ICLR 2024) fitted and sampled via the core.

EDM preconditioning (``common.denoiser.Preconditioned``) around the 3-D U-Net, trained by
``common.training.DiffusionModule`` with slot-permutation augmentation, sampled with the core's
samplers; crystal structure prediction (CSP) conditions on the composition's occupancy by channel
concatenation and classifier-free guidance (``common.guidance.classifier_free``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pymatgen.core import Composition, Structure
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from common.denoiser import Preconditioned
from common.errors import CheckpointError, ConfigError, DataError
from common.guidance import classifier_free
from common.io import load_checkpoint, save_checkpoint
from common.noise import sigmas_karras
from common.samplers import get_sampler
from common.seeds import randn, sample_generators
from common.training import DiffusionModule, TrainerConfig, make_trainer

from .representation import GRID_COLS, GRID_ROWS, UniMatEncoder
from .training_batches import TensorSet, TrainingCollate, cell_frequency

log = logging.getLogger(__name__)
CHECKPOINT_KIND = "materials/unimat"


@dataclass
class GeneratorConfig:
    """Model, training and sampling settings of a ``CrystalGenerator``."""

    slots: int | None = None  # L; None = from the data
    occupancy_channel: bool = True  # 0/1 occupancy per slot (False: radius-only, pre-round-3)
    restrict_elements: bool = True  # decode only into cells of elements seen in training
    # unconditional decoding: "data" draws the atom count n from the training distribution and
    # keeps the n most occupied slots (DiffCSP's ab initio generation also fixes n from the
    # training distribution first); "threshold": every slot whose occupancy exceeds 0.5
    atom_count: str = "data"
    # with atom_count="data": "data" also draws the number of distinct elements k from the
    # training distribution p(k | n), keeps the k element cells most likely present and
    # distributes the n atoms over them by slot occupancy, preferring a SMACT charge-balanced
    # allocation (materials.composition); "free": the n most occupied slots of any cells
    element_count: str = "data"
    # unconditional sampling: "two_stage" samples a composition (the occupied slots of an
    # unconditional draw), then its structure with the CSP mode: p(x) = p(comp) p(x | comp),
    # both from this one model (trained 1 - p_uncond of the time on the conditional task);
    # "joint" keeps the unconditional draw's own coordinates
    unconditional: str = "two_stage"
    channels: int = 32
    emb_dim: int = 128
    full_res_attention: bool = False
    # how a voxel knows its element cell (materials.model): "learned" per-cell embeddings (new
    # models), "properties" (fixed element-property channels), "both", or "none" (shift-equivariant
    # pre-round-5 net, which cannot learn per-element frequencies; checkpoints saved before this
    # setting existed load with "none")
    cell_position: str = "learned"
    # EDM's sigma_data; None = the std of the encoded training tensor. Most slots are empty (zero),
    # so that std is far below 0.5: with 0.5 an under-trained net (F ~ 0) samples every slot from
    # N(0, 0.5^2), whose mean (cos, sin) radius 0.63 exceeds the 0.5 threshold -> all slots filled.
    sigma_data: float | None = None
    lr: float = 5e-4
    batch_size: int = 64
    min_batches_per_epoch: int = 25  # small sets are repeated (checkpoints are saved per epoch)
    p_uncond: float = 0.2  # classifier-free guidance: drop the condition this often
    lattice_share: float = 0.2  # loss share of the six lattice numbers
    occupied_share: float = 0.4  # loss share of occupied slots (the rest goes to empty slots)
    # loss weights of the rows trained WITHOUT the composition (the unconditional model):
    # "uniform" weights every grid entry alike, so the optimum is the posterior mean E[x0 | x_t];
    # "shares" (rounds 1-3) gives them the occupied/empty shares too, but those weights depend on
    # the unseen x0, so the optimum becomes the tilted mean E[w x0 | x_t] / E[w | x_t]: with ~5
    # of 486 slots occupied an occupied entry weighs ~100x an empty one and every slot's odds of
    # being occupied are inflated ~100x (over-predicted anions, diffuse cation cells on Perov-5)
    uncond_loss: str = "uniform"
    # with uncond_loss="channel": the occupancy channel's share of the grid loss, the same for
    # every slot (x0-independent, so the optimum stays the posterior mean), moving capacity to
    # the rare occupied entries that "uniform" under-fits (round 5 probe)
    occupancy_loss_share: float = 0.5
    # share of the batch loss carried by the rows trained WITHOUT the composition (the
    # unconditional model that draws compositions in two-stage sampling); None = their natural
    # share p_uncond. The row weight depends only on the condition-dropout draw, never on x0, so
    # both optima stay posterior means; it moves capacity to the unconditional task, which the
    # conditional rows (80 % of a batch, occupied entries weighted ~50x) starved: round 6 measured
    # its occupancy output at 0.31 at sigma 0.5 on training data where a per-slot Bayes rule gets
    # 0.81 (tests/materials/test_cov_uncond_share.py)
    uncond_share: float | None = 0.8
    # per-cell loss weight of the unconditional rows: every entry of element cell c is weighted
    # by f_c^-power (f_c = share of training crystals with an atom in c, floored at 1 %; cells
    # never occupied count as f = 1), normalised to the same total. The weight is a function of
    # the cell index alone, never of x0, so the optimum stays the posterior mean E[x0 | x_t];
    # it only moves capacity to rare (cation) cells. 0 = off. Round 8: 0.5 with uncond_loss=
    # "channel" brought the cation occupancy probe to the Bayes rule, but COV on Perov-5 fell
    # (13 -> 5 %; benchmarks/results/materials.md), so both stay off by default
    cell_weight_power: float = 0.0
    sampler: str = "heun"
    steps: int = 40
    sigma_min: float = 0.002
    sigma_max: float = 20.0
    rho: float = 7.0
    guidance: float = 1.0  # CFG weight w in CSP mode: 1 = conditional model, > 1 extrapolates
    # pair-repulsion reconstruction guidance (materials.guidance) whenever the occupancy is
    # known (CSP, two-stage stage 2): scale (0 = off) and radius r0 in Angstrom
    repulsion: float = 10.0
    repulsion_radius: float = 1.0
    repulsion_sigma_max: float | None = None  # guide only at sigma <= this (None: every step)


class CrystalGenerator:
    """Generate crystals with UniMat diffusion: ``fit(structures)``, ``sample(n, composition)``.

    Args:
        config: model/sampling settings (``GeneratorConfig``); keyword overrides are accepted too.
        trainer: Lightning settings (``common.training.TrainerConfig``).
    """

    def __init__(self, config: GeneratorConfig | None = None,
                 trainer: TrainerConfig | None = None, **overrides: Any) -> None:
        cfg = config or GeneratorConfig()
        for k, v in overrides.items():
            if not hasattr(cfg, k):
                raise ConfigError(f"unknown CrystalGenerator setting {k!r}; valid: "
                                  f"{', '.join(asdict(cfg))}")
            setattr(cfg, k, v)
        self.config = cfg
        self.trainer_config = trainer or TrainerConfig(max_steps=1000)
        self.encoder: UniMatEncoder | None = None
        self.model: Preconditioned | None = None
        self.skipped: list[tuple[str, str]] = []

    # building ------------------------------------------------------------------------------------
    def _build(self, encoder: UniMatEncoder, data: np.ndarray | None = None) -> None:
        from .model import UniMatUNet

        self.encoder = encoder
        if self.config.sigma_data is None:
            if data is None:
                raise ConfigError("sigma_data=None needs training data to be estimated")
            self.config.sigma_data = float(np.std(data))
        backbone = UniMatUNet(encoder.slots, self.config.channels, self.config.emb_dim,
                              full_res_attention=self.config.full_res_attention,
                              slot_channels=encoder.slot_channels,
                              cell_position=self.config.cell_position)
        self.model = Preconditioned(backbone, sigma_data=self.config.sigma_data)

    def encode_dataset(self, structures: list[Structure]) -> tuple[np.ndarray, np.ndarray]:
        """Flat tensors and occupancies; structures with too many atoms per element are skipped."""
        xs, occs = [], []
        self.skipped = []
        for i, s in enumerate(structures):
            try:
                xs.append(self.encoder.encode(s, item=f"structure {i}"))
                occs.append(self.encoder.occupancy(s.composition, item=f"structure {i}"))
            except DataError as exc:
                self.skipped.append((f"structure {i}", str(exc)))
        if self.skipped:
            log.warning("skipped %d of %d structures (e.g. %s)", len(self.skipped),
                        len(structures), self.skipped[0][1])
        if not xs:
            raise DataError("no usable structure to train on", field="structures",
                            expected=f"ordered crystals with at most L={self.encoder.slots} "
                            "atoms of one element")
        return np.stack(xs), np.stack(occs)

    # training -------------------------------------------------------------------------------------
    def training_objects(self, structures: list[Structure], seed: int | None = None
                         ) -> tuple[DiffusionModule, DataLoader]:
        """The LightningModule and DataLoader ``fit`` trains (for pipelines with own trainers)."""
        import lightning.pytorch as pl

        structures = list(structures)
        if not structures:
            raise DataError("empty training set", field="structures", expected="structures")
        fresh = self.model is None
        if self.encoder is None:
            self.encoder = UniMatEncoder.fit(structures, self.config.slots,
                                             self.config.occupancy_channel,
                                             self.config.restrict_elements)
        x, occ = self.encode_dataset(structures)
        if fresh:
            self._build(self.encoder, x)
        seed = self.trainer_config.seed if seed is None else seed
        pl.seed_everything(seed, workers=True, verbose=False)
        batch = min(self.config.batch_size, len(x))
        repeats = max(1, -(-self.config.min_batches_per_epoch * batch // len(x)))
        loader = DataLoader(TensorSet(x, occ, repeats), batch_size=batch, shuffle=True,
                            collate_fn=TrainingCollate(self.encoder, self.config, seed,
                                                       cell_frequency(occ)),
                            drop_last=True)
        module = DiffusionModule(self.model, lr=self.config.lr, warmup_steps=50)
        return module, loader

    def fit(self, structures: list[Structure], checkpoint_dir: str | Path | None = None,
            seed: int | None = None) -> CrystalGenerator:
        """Train on ``structures`` (resumes from ``checkpoint_dir/last.ckpt`` when it exists)."""
        module, loader = self.training_objects(structures, seed)
        trainer = make_trainer(self.trainer_config, checkpoint_dir)
        ckpt = None
        if checkpoint_dir is not None and (Path(checkpoint_dir) / "last.ckpt").is_file():
            ckpt = str(Path(checkpoint_dir) / "last.ckpt")
        trainer.fit(module, loader, ckpt_path=ckpt)
        self.model.eval()
        return self

    # sampling -------------------------------------------------------------------------------------
    def _require_model(self) -> None:
        if self.model is None or self.encoder is None:
            raise CheckpointError("CrystalGenerator has no model: call fit() or load() first")

    def condition(self, composition: Composition | str, item: str = "composition") -> np.ndarray:
        """The [2, 9, 18, L] CSP condition of a composition (occupancy + flag)."""
        self._require_model()
        occ = self.encoder.occupancy(composition, item=item)
        return np.stack([occ, np.ones_like(occ)])

    @torch.no_grad()
    def sample_flat(self, n: int, composition: Composition | str | None = None,
                    seed: int | None = None, batch_size: int = 256, progress: bool = True,
                    occupancy: np.ndarray | None = None, stream: int = 0
                    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Raw flat samples [n, D] (and the occupancy used, in CSP mode).

        ``occupancy``: per-sample CSP masks [n, 9, 18, L] instead of one ``composition``.
        Sample ``i`` uses the generator seeded ``seed + i + stream * 2**40``.
        """
        self._require_model()
        cfg = self.config
        seed = 0 if seed is None else int(seed)
        gens = sample_generators([seed + i + stream * 2**40 for i in range(n)])
        sampler = get_sampler(cfg.sampler)
        sigmas = sigmas_karras(cfg.steps, cfg.sigma_min, cfg.sigma_max, cfg.rho)
        cond_np = None if composition is None else self.condition(composition)
        cond_all = None
        if occupancy is not None:
            occupancy = np.asarray(occupancy, dtype=np.float64)
            cond_all = np.stack([occupancy, np.ones_like(occupancy)], axis=1)
        denoise = self.model
        if (cond_np is not None or cond_all is not None) and cfg.guidance != 1.0:
            denoise = classifier_free(self.model, cfg.guidance, uncond=None)
        if (cond_np is not None or cond_all is not None) and cfg.repulsion:
            from .guidance import repulsion_guided

            denoise = repulsion_guided(denoise, self.encoder, cfg.repulsion,
                                       cfg.repulsion_radius, cfg.repulsion_sigma_max)
        self.model.eval()
        out = []
        bar = tqdm(total=n, desc="sampling crystals", disable=not progress)
        for start in range(0, n, batch_size):
            g = gens[start:start + batch_size]
            x = randn((len(g), self.encoder.dim), g) * sigmas[0]
            cond = None if cond_np is None else torch.as_tensor(
                cond_np, dtype=torch.float32)[None].expand(len(g), *cond_np.shape)
            if cond_all is not None:
                cond = torch.as_tensor(cond_all[start:start + batch_size], dtype=torch.float32)
            out.append(sampler(denoise, x, sigmas, cond=cond, generator=g).double().numpy())
            bar.update(len(g))
        bar.close()
        return np.concatenate(out), None if cond_np is None else cond_np[0]

    def sample(self, n: int, composition: Composition | str | None = None,
               seed: int | None = None, return_invalid: bool = False, progress: bool = True,
               check_composition: bool = True) -> list[Structure | None]:
        """``n`` generated crystals (unconditional, or CSP for ``composition``).

        Samples whose lattice is invalid or that hold no atom are dropped, unless
        ``return_invalid`` (then they are ``None``, so the list has exactly ``n`` entries).
        A CSP composition that SMACT cannot charge-balance is a DataError unless
        ``check_composition=False`` (benchmarks keep every test composition).
        Sample ``i`` depends only on ``seed + i``, not on the batch it is drawn in.
        """
        if composition is not None:
            composition = _check_csp_composition(composition, check_composition)
        if self.config.atom_count not in ("data", "threshold"):
            raise ConfigError(f"atom_count={self.config.atom_count!r}; expected 'data' or "
                              "'threshold'")
        if self.config.element_count not in ("data", "free"):
            raise ConfigError(f"element_count={self.config.element_count!r}; expected 'data' "
                              "or 'free'")
        if self.config.unconditional not in ("two_stage", "joint"):
            raise ConfigError(f"unconditional={self.config.unconditional!r}; expected "
                              "'two_stage' or 'joint'")
        flat, occ = self.sample_flat(n, composition, seed, progress=progress)
        seed = 0 if seed is None else int(seed)
        masks = [self._decode_mask(f, occ, seed + i) for i, f in enumerate(flat)]
        if composition is None and self.config.unconditional == "two_stage":
            # the composition of each draw, in the first slots of its cells (as CSP encodes a
            # composition; measured on Perov-5 at 400 steps: 35-37 % struct. valid vs 23-27 %
            # when stage 2 keeps the draw's own slot indices)
            masks = [_first_slots(self.encoder.occupancy_mask(f) if m is None else m)
                     for f, m in zip(flat, masks)]
            flat, _ = self.sample_flat(n, seed=seed, progress=progress,
                                       occupancy=np.stack(masks), stream=1)
        out = [self.encoder.decode(f, occupancy=m) for f, m in zip(flat, masks)]
        return out if return_invalid else [s for s in out if s is not None]

    def _decode_mask(self, flat: np.ndarray, occ: np.ndarray | None, seed: int
                     ) -> np.ndarray | None:
        """CSP occupancy, the top-n slots for an atom count n drawn with ``seed``, or None."""
        if occ is not None or self.config.atom_count != "data":
            return occ
        n = self.encoder.draw_atom_count(np.random.default_rng([seed, 1]))
        if n is None:
            return None
        k = None
        if self.config.element_count == "data":
            k = self.encoder.draw_element_count(n, np.random.default_rng([seed, 2]))
        if k is None:  # "free", or a checkpoint without the element-count distribution
            return self.encoder.top_slots(flat, n)
        from .composition import composition_mask

        return composition_mask(self.encoder.occupancy_score(flat), n, k)

    # persistence ----------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Atomically save config, encoder and weights (loadable with ``weights_only=True``)."""
        self._require_model()
        return save_checkpoint(path, CHECKPOINT_KIND, {
            "config": asdict(self.config), "encoder": self.encoder.as_dict(),
            "state_dict": self.model.state_dict()})

    @classmethod
    def load(cls, path: str | Path) -> CrystalGenerator:
        """A generator saved by :meth:`save`."""
        obj = load_checkpoint(path, CHECKPOINT_KIND)
        # saved before round 5: the backbone had no cell-position information
        # (and were trained with the natural unconditional share: uncond_share=None)
        config = {"cell_position": "none", "uncond_share": None, **obj["config"]}
        unknown = sorted(set(config) - set(GeneratorConfig.__dataclass_fields__))
        if unknown:
            raise CheckpointError(f"{path}: saved by a newer genpipes (unknown generator "
                                  f"settings {unknown}); upgrade genpipes to load it")
        gen = cls(GeneratorConfig(**config))
        try:
            gen._build(UniMatEncoder.from_dict(obj["encoder"]))
            gen.model.load_state_dict(obj["state_dict"])
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{path}: weights do not fit the saved generator settings "
                                  f"(cell_position={config['cell_position']!r}): {exc}") from None
        gen.model.eval()
        return gen

    def load_lightning_checkpoint(self, path: str | Path) -> None:
        """Load weights from a Lightning ``.ckpt`` written during ``fit`` (keys ``model.*``)."""
        self._require_model()
        state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
        self.model.load_state_dict({k[len("model."):]: v for k, v in state.items()
                                    if k.startswith("model.")})


def _first_slots(mask: np.ndarray) -> np.ndarray:
    """The same atom count per element cell, moved into the cell's first slots."""
    counts = mask.sum(-1, keepdims=True)
    return (np.arange(mask.shape[-1]) < counts).astype(np.float64)


def _check_csp_composition(composition: Composition | str, balance: bool = True
                           ) -> Composition:
    """A Composition for CSP; DataError when it cannot be charge-balanced (SMACT)."""
    from .metrics import smact_validity

    try:
        comp = Composition(composition)
    except Exception as exc:
        raise DataError(f"not a composition: {composition!r} ({exc})", field="composition",
                        expected="a formula such as 'SrTiO3'") from None
    if balance and not smact_validity(comp):
        raise DataError(f"{comp.formula} cannot be charge-balanced (SMACT oxidation states with "
                        "the electronegativity test)", field="composition",
                        expected="a charge-balanced composition or an all-metal alloy")
    return comp


__all__ = ["CrystalGenerator", "GeneratorConfig", "GRID_ROWS", "GRID_COLS"]
