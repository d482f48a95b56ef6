"""Stability benchmark on the proxy-stable set: UniMat (ours) vs PyXtal vs ion substitution.

The set is built by ``genpipes materials build-stable-set`` (``materials.stable_set``): decorated
prototypes whose DFT-anchored **proxy** E_hull (CHGNet) is below 0.1 eV/atom. It is split
train/test, by default holding out whole prototypes (``--split prototype --holdout
perovskite,rutile``) so that no test structure is one ion substitution of a training structure
away; ``--split random`` is the round-4 split. ``CrystalGenerator`` is fitted on the train
part; N unconditional candidates are drawn;
at equal candidate counts, PyXtal random symmetric crystals of our candidates' compositions and
ion substitutions of training structures (pymatgen's Hautier substitution probabilities). All are
relaxed with the same CHGNet settings and scored on the same hulls: validity, proxy E_hull
distribution, stable / metastable / S.U.N. counts with denominators, held-out rediscovery,
candidates per CPU-hour; the proxy calibration is printed beside every stability figure.
With ``--csp-substitution`` a fourth method: UniMat's composition-conditioned (CSP) mode on the
ion-substitution pool's compositions (``materials.stable_compositions``), i.e. the same novel
compositions as the substitution baseline with the frame drawn by our model instead of copied
from the training structure: a different generation mode from UniMat's unconditional one.

Each method draws ``--pool`` x N candidates; rows: the first N; the first N whose composition
passes a sanity rule (``--screen ionic``: SMACT charge neutrality + Pauling order on ICSD-common
oxidation states, ``materials.stable_screen``); with ``--energy-filter`` the best N by a
pre-relaxation filter (CHGNet single-point proxy E_hull of the unrelaxed cell). Every rule is
the same for every method. Times are process CPU seconds; relaxations are cached per candidate
in ``--work`` (an interrupted run resumes).

Usage: ``OMP_NUM_THREADS=1 nice -n 10 python benchmarks/materials_stability.py --set DIR
--hull ../shared/data/materials/mp20_hull --steps 4000 --max-cpu-minutes 15 --n 100 --pool 2``
(``--max-cpu-minutes`` caps training by process CPU time, ``--max-minutes`` by wall time);
``--only-throughput`` measures relaxations per minute (local 1 / 2 processes, Dask).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np

# this script lives next to benchmarks/materials.py: keep its folder off the import path
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]


def cpu_budget_callback(minutes: float):  # -> lightning Callback
    """A Lightning callback that stops training once this process has used ``minutes`` of CPU.

    Lightning's ``max_time`` is wall time, which on a shared, loaded machine buys few steps
    (round 6: a 13-min wall cap gave 3.6 CPU-min); process CPU time is the budget we control.
    Counts ``time.process_time()`` (the whole process, imports included).
    """
    import lightning.pytorch as pl

    class _CPUBudget(pl.Callback):
        def on_train_batch_end(self, trainer, *args) -> None:  # noqa: ANN001, ANN002
            if time.process_time() > 60 * minutes:
                trainer.should_stop = True

    return _CPUBudget()


def snapshot_callback(every: int, folder: Path):  # -> lightning Callback
    """A Lightning callback that saves the full training state every ``every`` steps.

    Files ``folder/snap_step<NNNNNN>.ckpt`` hold the raw weights and the EMA callback state
    (``common.training.load_ema_weights`` reads the averaged weights back), so the compositions
    a model draws can be tracked against training steps after the run.
    """
    import lightning.pytorch as pl

    class _Snapshots(pl.Callback):
        def on_train_batch_end(self, trainer, *args) -> None:  # noqa: ANN001, ANN002
            step = int(trainer.global_step)
            if step % every == 0:
                trainer.save_checkpoint(str(folder / f"snap_step{step:06d}.ckpt"))

    return _Snapshots()


def pyxtal_like(compositions: list, seed: int) -> list:
    """One PyXtal random symmetric crystal per composition (cell counts), random space group."""
    from materials.baselines import random_symmetric_crystals

    rng = np.random.default_rng(seed)
    return [random_symmetric_crystals(comp, 1, rng)[0] for comp in compositions]


def split_set(kept, mode: str, holdout: list[str], test_frac: float, seed: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """Train / test row indices of the set: ``"prototype"`` holds out whole prototypes.

    ``"prototype"``: every structure of the ``holdout`` prototypes is a test structure, so no
    test structure is an ion substitution of a training structure of the same frame (the set was
    itself made by substitution of 11 prototypes: under a random split most test structures are
    one substitution away from a training one). ``"random"``: a seeded random ``test_frac``.
    """
    n = len(kept)
    if mode == "prototype":
        unknown = sorted(set(holdout) - set(kept["prototype"]))
        if unknown:
            raise SystemExit(f"--holdout {unknown}: not prototypes of the set "
                             f"({sorted(set(kept['prototype']))})")
        is_test = kept["prototype"].isin(holdout).to_numpy()
        return np.flatnonzero(~is_test), np.flatnonzero(is_test)
    perm = np.random.default_rng(seed).permutation(n)
    n_test = int(round(test_frac * n))
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def relax_throughput(structs: list, fmax: float, n: int = 16, steps: int = 100) -> dict:
    """Relaxations per minute (incl. worker start-up) on local 1 / 2 processes and Dask 2 workers.

    ``n`` structures (cycled from ``structs``) are rattled (0.1 A) and expanded 8 % in volume so
    every relaxation does real FIRE work; the load average is read before each measurement.
    """
    import os

    from common.executor import get_executor
    from materials.stability import RelaxConfig, relax_many

    bench = []
    for i in range(n):
        t = structs[i % len(structs)].copy()
        t.perturb(0.1, min_distance=0.05)
        t.scale_lattice(t.volume * 1.08)
        bench.append(t)
    out = {}
    for kind, w, kw in (("local", 1, {}), ("local", 2, {}), ("dask", 2, {"processes": True})):
        load = os.getloadavg()[0]
        a = time.perf_counter()
        with get_executor(kind, n_workers=w, progress=False, **kw) as ex:
            res = relax_many(bench, RelaxConfig(fmax=fmax, steps=steps), ex)
        dt = time.perf_counter() - a
        out[f"{kind} x{w}"] = {"per_minute": 60 * n / dt, "seconds": dt, "load_before": load,
                               "load_after": os.getloadavg()[0], "n": n,
                               "fire_steps": int(sum(r["steps"] for r in res)),
                               "failed": sum(not math.isfinite(r["energy_per_atom"])
                                             for r in res)}
        print("throughput", kind, w, out[f"{kind} x{w}"], flush=True)
    return out


def prescore(cands: list, hull) -> tuple[list[float], float]:  # CPU seconds (process_time)
    """Pre-relaxation filter score: proxy E_hull (hull a) of the UNRELAXED cell, single point.

    One CHGNet energy per structurally valid candidate (no relaxation); invalid or missing
    candidates score +inf. Returns the scores and the seconds spent.
    """
    from materials import metrics as M
    from materials.stability import _chgnet

    t0 = time.process_time()
    out = [math.inf] * len(cands)
    idx = [i for i, s in enumerate(cands) if s is not None and M.structural_validity(s)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in idx:
            try:
                e = float(_chgnet().predict_structure(cands[i], task="e")["e"])
            except Exception:  # isolated atoms etc.
                continue
            c = cands[i].composition
            out[i] = hull.e_above_hull_from_formation(
                c, hull.refs.formation_energy_per_atom(c, e))
    return out, time.process_time() - t0


def relax_pool(cands: list, need: list[int], hull, relax_cfg, cache: Path | None = None
               ) -> dict[int, dict]:
    """Relax (once) every structurally valid candidate in ``need``; rows carry CPU seconds.

    ``cache``: a JSON-lines file of finished rows (candidate index, row); a rerun reads it and
    relaxes only the rest, so an interrupted benchmark loses at most one relaxation.
    """
    from pymatgen.core import Structure

    from materials import metrics as M
    from materials.stable_set import score_structures

    rows: dict[int, dict] = {}
    if cache is not None and cache.is_file():
        for line in cache.read_text().splitlines():
            d = json.loads(line)
            d["row"]["structure"] = Structure.from_dict(d["row"]["structure"])
            rows[int(d["i"])] = d["row"]
    for i in need:
        s = cands[i]
        if i in rows or s is None or not M.structural_validity(s):
            continue
        t0 = time.process_time()
        r = score_structures([s], hull, relax_cfg)[0]
        r["seconds"] = time.process_time() - t0
        rows[i] = r
        if cache is not None:
            with cache.open("a") as f:
                f.write(json.dumps({"i": i, "row": {**r, "structure": r["structure"].as_dict()}},
                                   default=float) + "\n")
    return {i: r for i, r in rows.items() if i in set(need)}


def score(cands: list, rows: list, train: list, test: list, self_hull,
          frames: dict | None = None) -> dict:
    """Validity, proxy E_hull (both hulls), uniqueness, novelty, rediscovery of ``test``.

    ``rows[i]`` is candidate ``i``'s relaxation row (``relax_pool``) or None. ``frames``: name ->
    prototype structure; counts relaxed candidates in each frame (anonymous StructureMatcher).
    """
    from materials import metrics as M

    n = len(cands)
    val = M.validity(cands)
    e = [math.nan] * n
    e_self = [math.nan] * n
    relaxed = [None] * n
    for i, r in enumerate(rows):
        if r is None:
            continue
        e[i] = r["e_above_hull_proxy"]
        relaxed[i] = r["structure"]
        if r["struct_valid"]:
            e_self[i] = self_hull.e_above_hull(r["structure"].composition,
                                               r["energy_per_atom_chgnet"])
    ok = [i for i in range(n) if relaxed[i] is not None]
    uniq, nov = [False] * n, [False] * n
    for i, u in zip(ok, M.uniqueness([relaxed[i] for i in ok])):
        uniq[i] = u
    for i, v in zip(ok, M.novelty([relaxed[i] for i in ok], train)):
        nov[i] = v
    found = M.novelty(test, [relaxed[i] for i in ok])  # True = not rediscovered
    in_frame = {}
    if frames:
        sm = M._matcher()
        for name, proto in frames.items():
            in_frame[name] = sum(_anon_fit(sm, relaxed[i], proto) for i in ok)
    from materials.stable_screen import screen

    return {"n": n, "valid": val["valid"], "ionic": screen(cands, "ionic"),
            "struct_valid": val["struct_valid"],
            "comp_valid": val["comp_valid"], "e_hull": e, "e_hull_self": e_self,
            "unique": uniq, "novel": nov, "in_frame": in_frame,
            "relax_seconds": sum(r["seconds"] for r in rows if r is not None),
            "rediscovered": sum(not f for f in found), "n_test": len(test),
            "formulas": [s.composition.reduced_formula if s is not None else "" for s in cands]}


def _anon_fit(sm, a, b) -> bool:  # noqa: ANN001 - pymatgen objects
    if len(a.composition) != len(b.composition):
        return False
    try:
        return bool(sm.fit_anonymous(a, b))
    except Exception:  # degenerate cells
        return False


def _frac(k: int, n: int) -> str:
    return f"{k} / {n} ({100 * k / max(n, 1):.0f} %)"


def table(results: dict, cal: dict) -> list[str]:
    """The markdown comparison table (counts over all N generated candidates)."""
    cal_txt = (f"MAE {cal['mae']:.3f} eV/atom, sign agreement {100 * cal['agreement_sign']:.0f} %"
               f" ({cal['n_formulas']} formulas)")
    lines = ["| metric | " + " | ".join(results) + " |", "|---" * (len(results) + 1) + "|"]

    def row(name: str, fn) -> None:
        lines.append(f"| {name} | " + " | ".join(fn(r) for r in results.values()) + " |")

    row("candidates generated (N)", lambda r: str(r["n"]))
    row("valid (struct. + comp.)", lambda r: _frac(sum(r["valid"]), r["n"]))
    row("passes the ionic composition screen", lambda r: _frac(sum(r["ionic"]), r["n"]))
    row("relaxed and scored", lambda r: _frac(sum(map(math.isfinite, r["e_hull"])), r["n"]))

    def med(r: dict) -> str:
        v = [x for x in r["e_hull"] if math.isfinite(x)]
        return f"{np.median(v):.3f}" if v else "-"

    row("median proxy E_hull, eV/atom (of scored)", med)
    for lab, thr in (("< 0", 0.0), ("< 0.1", 0.1), ("< 0.25", 0.25)):
        row(f"proxy E_hull {lab} eV/atom",
            lambda r, t=thr: _frac(sum(x < t for x in r["e_hull"] if math.isfinite(x)), r["n"]))
    st = [lambda r, i: r["e_hull"][i] <= 0, lambda r, i: r["e_hull"][i] <= 0.1]
    row("stable (E_hull <= 0)", lambda r: _frac(sum(st[0](r, i) for i in range(r["n"])), r["n"]))
    row("metastable (E_hull <= 0.1)",
        lambda r: _frac(sum(st[1](r, i) for i in range(r["n"])), r["n"]))

    def sun(r: dict, k: int) -> str:
        return _frac(sum(st[k](r, i) and r["valid"][i] and r["unique"][i] and r["novel"][i]
                         for i in range(r["n"])), r["n"])

    row("S.U.N. (valid, stable, unique, novel)", lambda r: sun(r, 0))
    row("meta-S.U.N. (E_hull <= 0.1)", lambda r: sun(r, 1))
    row("unique / novel (of relaxed)", lambda r: f"{sum(r['unique'])} / {sum(r['novel'])}")
    row("stable vs self-consistent hull (b) of the training set",
        lambda r: _frac(sum(x <= 0 for x in r["e_hull_self"] if math.isfinite(x)), r["n"]))
    row("held-out test structures rediscovered",
        lambda r: f"{r['rediscovered']} / {r['n_test']}")
    for fr in next(iter(results.values())).get("in_frame", {}):
        row(f"relaxed candidates in the held-out {fr} frame (anonymous match)",
            lambda r, f=fr: _frac(r["in_frame"][f], r["n"]))
    row("generation CPU seconds (incl. filter single points)",
        lambda r: f"{r['gen_seconds']:.0f}")
    row("relaxation CPU seconds", lambda r: f"{r['relax_seconds']:.0f}")
    row("candidates per CPU-hour (generation + relaxation)",
        lambda r: f"{3600 * r['n'] / max(r['gen_seconds'] + r['relax_seconds'], 1e-9):.0f}")
    row("proxy calibration (beside every stability figure)", lambda r: cal_txt)
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", required=True, help="folder of a built proxy-stable set")
    ap.add_argument("--hull", default="../shared/data/materials/mp20_hull")
    ap.add_argument("--work", default="runs/bench/materials_stability")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--sample-steps", type=int, default=20)
    ap.add_argument("--relax-steps", type=int, default=200)
    ap.add_argument("--test-frac", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-minutes", type=float, default=None,
                    help="stop training after this wall time (Lightning max_time)")
    ap.add_argument("--max-cpu-minutes", type=float, default=None,
                    help="stop training once the process has used this much CPU time (resumes "
                    "from WORK/ckpt_<tag>/last.ckpt; the CPU seconds are added to the record)")
    ap.add_argument("--csp-substitution", action="store_true",
                    help="also UniMat's composition-conditioned mode: one CSP structure per "
                    "ion-substitution composition (the substitution pool's compositions; a "
                    "different generation mode from the unconditional one)")
    ap.add_argument("--snapshot-every", type=int, default=0,
                    help="with --max-cpu-minutes: also save WORK/ckpt_<tag>/snap_step*.ckpt "
                    "every this many steps (EMA state included)")
    ap.add_argument("--pool", type=int, default=2,
                    help="draw pool*N per method; rows: the first N, the first N that pass "
                    "--screen, and (with --energy-filter) the best N by unrelaxed proxy E_hull")
    ap.add_argument("--screen", choices=("none", "ionic"), default="ionic",
                    help="composition sanity rule before relaxation (materials.stable_screen), "
                    "the same for every method; 'none' drops the screened rows")
    ap.add_argument("--energy-filter", action="store_true",
                    help="also the round-5 rows: best N of the pool by the unrelaxed proxy E_hull")
    ap.add_argument("--guidance", type=float, nargs="*", default=[],
                    help="extra UniMat rows with this CFG weight in the structure stage")
    ap.add_argument("--throughput", action="store_true", help="also measure relaxations/min")
    ap.add_argument("--split", choices=("prototype", "random"), default="prototype")
    ap.add_argument("--holdout", default="perovskite,rutile",
                    help="prototypes held out by --split prototype (comma-separated)")
    ap.add_argument("--train-only", action="store_true", help="fit (and cache) the generator")
    ap.add_argument("--only-throughput", action="store_true",
                    help="measure relaxations per minute only (1 / 2 processes, Dask)")
    ap.add_argument("--md", default=None,
                    help="write the generated tables here (default: WORK/"
                    "materials_stability_generated.md; the results file is curated from it)")
    args = ap.parse_args()

    from common.training import TrainerConfig
    from materials.generator import CrystalGenerator, GeneratorConfig
    from materials.stability import (
        DFTHull,
        ElementalReferences,
        RelaxConfig,
        SelfConsistentHull,
        proxy_calibration,
    )
    from materials.stable_compositions import ion_substitution
    from materials.stable_set import StableSetConfig, load_stable_set, read_candidates

    t_all = time.perf_counter()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    setdir = Path(args.set)
    scfg = StableSetConfig(**json.loads((setdir / "config.json").read_text()))
    structs = load_stable_set(setdir)
    if args.only_throughput:
        thr = relax_throughput(structs, scfg.fmax)
        (work / "throughput.json").write_text(json.dumps(thr, indent=1))
        return
    import pandas as pd

    kept = pd.read_csv(setdir / "stable_set.csv")
    tr_idx, te_idx = split_set(kept, args.split, args.holdout.split(","), args.test_frac,
                               args.seed)
    test = [structs[i] for i in te_idx]
    train = [structs[i] for i in tr_idx]
    refs = ElementalReferences(relax=RelaxConfig(fmax=scfg.element_fmax, steps=scfg.element_steps))
    hull = DFTHull.from_file(args.hull, refs)
    tr_rows = kept.iloc[tr_idx]
    self_hull = SelfConsistentHull(list(zip(tr_rows["formula"],
                                            tr_rows["energy_per_atom_chgnet"])), refs)
    cand = read_candidates(setdir / "candidates.csv")
    cal = proxy_calibration(list(cand["formula"]), list(cand["e_above_hull_proxy"]), hull)
    relax_cfg = RelaxConfig(fmax=scfg.fmax, steps=args.relax_steps)

    # ours: fit (cached in --work), sample N unconditional
    tag = f"{args.split}_s{args.steps}_c{args.channels}_seed{args.seed}"
    if args.max_minutes:
        tag += f"_t{args.max_minutes:g}min"
    if args.max_cpu_minutes:
        tag += f"_cpu{args.max_cpu_minutes:g}min"
    gpath = work / f"generator_{tag}.pt"
    train_s = float("nan")
    if gpath.is_file():
        gen = CrystalGenerator.load(gpath)
    else:
        gen = CrystalGenerator(GeneratorConfig(channels=args.channels, emb_dim=64,
                                               batch_size=32, lr=1e-3),
                               trainer=TrainerConfig(
                                   max_steps=args.steps, seed=args.seed, ema_decay=0.999,
                                   extra={"max_time": {"minutes": args.max_minutes}}
                                   if args.max_minutes else {}))
        t0, c0 = time.perf_counter(), time.process_time()
        ckdir = work / f"ckpt_{tag}"
        # CPU seconds of earlier (interrupted) processes that trained this checkpoint
        prior_f = work / f"{gpath.stem}.prior_cpu_seconds"
        prior = float(prior_f.read_text()) if prior_f.is_file() else 0.0
        if args.max_cpu_minutes:  # as gen.fit, plus a CPU-time stop (pipelines do the same)
            from common.training import make_trainer

            module, loader = gen.training_objects(train, args.seed)
            cbs = [cpu_budget_callback(args.max_cpu_minutes - prior / 60)]
            if args.snapshot_every:
                ckdir.mkdir(parents=True, exist_ok=True)
                cbs.append(snapshot_callback(args.snapshot_every, ckdir))
            trainer = make_trainer(gen.trainer_config, ckdir, cbs)
            last = ckdir / "last.ckpt"
            trainer.fit(module, loader, ckpt_path=str(last) if last.is_file() else None)
            gen.model.eval()
            done = int(trainer.global_step)
        else:
            gen.fit(train, checkpoint_dir=ckdir, seed=args.seed)
            done = -1
        train_s = time.perf_counter() - t0
        (work / f"{gpath.stem}.train_cpu_seconds").write_text(
            f"{time.process_time() - c0 + prior:.1f}")
        gen.save(gpath)
        import torch

        last = ckdir / "last.ckpt"  # written every epoch (25 batches)
        if done < 0 and last.is_file():
            done = torch.load(last, map_location="cpu", weights_only=False)["global_step"]
        (work / f"{gpath.stem}.train_seconds").write_text(f"{train_s:.1f} {done}")
    tfile = work / f"{gpath.stem}.train_seconds"
    steps_done = args.steps
    if tfile.is_file():
        train_s, steps_done = float(tfile.read_text().split()[0]), int(tfile.read_text().split()[1])
    cfile = work / f"{gpath.stem}.train_cpu_seconds"
    train_cpu = float(cfile.read_text()) if cfile.is_file() else float("nan")
    if args.train_only:
        return
    gen.config.steps = args.sample_steps
    n, pool = args.n, args.pool * args.n
    pools: dict[str, tuple[list, float]] = {}  # method -> (candidates, generation seconds)
    def cached_pool(f: Path, make, extra_s: float = 0.0) -> tuple[list, float]:  # noqa: ANN001
        """Candidates ``make()`` draws and their CPU seconds (+ ``extra_s``), cached as JSON at
        ``f`` in --work (a rerun does not redraw)."""
        from pymatgen.core import Structure

        from common.io import atomic_write_text

        if f.is_file():
            d = json.loads(f.read_text())
            return [None if x is None else Structure.from_dict(x) for x in d["s"]], d["cpu"]
        t0 = time.process_time()
        out = make()
        cpu = time.process_time() - t0 + extra_s
        atomic_write_text(f, json.dumps({"cpu": cpu, "s": [None if x is None else x.as_dict()
                                                            for x in out]}))
        return out, cpu

    def drawn(key: str, m: int, w: float = 1.0) -> tuple[list, float]:
        """Our m candidates at CFG weight w, cached in --work (a rerun does not resample)."""
        def make() -> list:
            gen.config.guidance = w
            return gen.sample(m, seed=args.seed, return_invalid=True)

        return cached_pool(work / f"pool_{tag}_{key}_n{m}_w{w:g}.json", make)

    def csp_drawn(comps: list, extra_s: float) -> tuple[list, float]:
        """Our CSP structure per composition (cached in --work); seconds include ``extra_s``."""
        from materials.stable_compositions import generate_for_compositions

        return cached_pool(work / f"pool_{tag}_csp_substitution_n{len(comps)}.json",
                           lambda: generate_for_compositions(gen, comps, seed=args.seed), extra_s)

    pools["UniMat (ours)"] = drawn("ours", pool)
    ours = pools["UniMat (ours)"][0]
    for w in args.guidance:
        pools[f"UniMat, CFG w={w:g}"] = drawn("cfg", n, w)
    gen.config.guidance = 1.0
    comps = [s.composition for s in ours if s is not None] or [s.composition for s in train]
    comps = [comps[i % len(comps)] for i in range(pool)]
    t0 = time.process_time()  # substitution before PyXtal: the cheap relaxations first
    pools["ion substitution"] = (ion_substitution(train, pool, args.seed, tuple(scfg.palette)),
                                 time.process_time() - t0)
    sub_s = pools["ion substitution"][1]
    if args.csp_substitution:  # UniMat's CSP mode on the substitution compositions
        pools["UniMat CSP on substitution compositions"] = csp_drawn(
            [None if x is None else x.composition for x in pools["ion substitution"][0]], sub_s)
    t0 = time.process_time()
    pools["PyXtal random"] = (pyxtal_like(comps, args.seed), time.process_time() - t0)

    frames = None
    if args.split == "prototype":
        from materials.stable_prototypes import seed_structure

        frames = {h: seed_structure(h) for h in args.holdout.split(",")}
    from materials.stable_screen import composition_summary, first_passing, occupancy_summary

    results: dict[str, dict] = {}
    comp_stats = {name: composition_summary(c) | occupancy_summary(c)
                  for name, (c, _) in pools.items()}
    comp_stats["training set"] = composition_summary(train) | occupancy_summary(train)
    print("compositions", comp_stats, flush=True)
    for name, (cands, gs) in pools.items():
        m = len(cands)
        plain = list(range(min(n, m)))
        sel = {name: (plain, gs * len(plain) / m, 0.0)}
        if args.screen != "none":  # first n of the pool that pass the composition rule
            t0 = time.process_time()
            idx = first_passing(cands, n, args.screen)
            used = (idx[-1] + 1) if len(idx) == n else m  # candidates drawn to fill the row
            sel[f"{name}, {args.screen} screen"] = (idx, gs * used / m, time.process_time() - t0)
        if args.energy_filter and m > n:  # best n of the pool by unrelaxed proxy E_hull
            pre, pre_s = prescore(cands, hull)
            best = [int(i) for i in np.argsort(pre, kind="stable")[:n]]
            sel[f"{name}, filtered {n}/{m}"] = (best, gs, pre_s)
        need = sorted(set().union(*(set(v[0]) for v in sel.values())))
        slug = "".join(ch if ch.isalnum() else "_" for ch in name)
        rows = relax_pool(cands, need, hull, relax_cfg,
                          cache=work / f"relax_{tag}_{slug}_r{args.relax_steps}.jsonl")
        for key, (idx, g_s, p_s) in sel.items():
            idx = idx + [None] * (n - len(idx))  # a screen's shortfall counts as failures
            r = score([cands[i] if i is not None else None for i in idx],
                      [rows.get(i) if i is not None else None for i in idx], train, test,
                      self_hull, frames)
            r["gen_seconds"] = g_s + p_s
            results[key] = r
            print(key, {k: v for k, v in r.items() if not isinstance(v, list)}, flush=True)
        (work / "results_partial.json").write_text(json.dumps(results, default=str))

    thr = relax_throughput(test or train, scfg.fmax, n=8) if args.throughput else {}

    summary = json.loads((setdir / "summary.json").read_text())
    split_txt = (f"prototype, held-out prototypes {args.holdout}" if args.split == "prototype"
                 else f"random, seed {args.seed}")
    lines = [
        "# Materials stability benchmark: proxy-stable set (ours vs PyXtal vs ion substitution)",
        "", "<!-- VERDICT: written by hand after the run -->", "",
        "## Comparison at equal candidate counts", "",
        f"Budget: shared 2-core CPU, every method in 1 process. Set: "
        f"{len(structs)} proxy-stable structures -> {len(train)} train / {len(test)} test "
        f"(split {split_txt}). UniMat: {steps_done} training steps (channels {args.channels}, "
        f"batch 32, lr 1e-3, EMA 0.999; {train_s / 60:.1f} min wall, not in the per-CPU-hour "
        f"figure), Heun {args.sample_steps} steps, unconditional two-stage. Baselines: PyXtal "
        "random symmetric crystals of our candidates' compositions (random space group, up to "
        "40 tries), ion substitution of training structures (Hautier probabilities >= 1e-3, "
        "same element palette as the set, formulas new to the training set); with "
        "--csp-substitution, UniMat CSP on the substitution compositions (a different mode). "
        "Relaxation: "
        f"CHGNet FIRE with cell relaxation, fmax {scfg.fmax}, <= {args.relax_steps} steps, for "
        "every structurally valid candidate of every method. Counts are over all N candidates "
        f"of a row. Each method draws {args.pool} x N: its plain row is the first N; its "
        f"'{args.screen} screen' row the first N of the pool whose composition passes the "
        "rule of materials.stable_screen (SMACT neutrality + Pauling order on ICSD-common "
        "oxidation states; a shortfall counts as failed candidates; generation seconds of the "
        "draws needed count); with --energy-filter, a 'filtered' row: the best N of the pool by "
        "the proxy E_hull of the UNRELAXED cell (one CHGNet single point each). "
        "Hull (a): DFT-anchored MP-20 (CHGNet formation energy); hull (b): "
        "CHGNet energies of the training structures + elemental references.", "",
        *table(results, cal), "",
        "Compositions of each method's whole pool (decoded / metal + anion former / CDVAE "
        "SMACT-valid / ionic screen): " + "; ".join(
            f"{k} {v['decoded']}/{v['cation_anion_pair']}/{v['smact_valid']}/{v['ionic']} of "
            f"{v['n']}, {v.get('atoms_mean', math.nan):.1f} atoms and "
            f"{v.get('elements_mean', math.nan):.1f} elements per decoded cell"
            for k, v in comp_stats.items()) + ".", "",
        f"## Proxy calibration ({cal['n_formulas']} formulas of the set's candidates that are in "
        "MP-20)", "",
        f"Per formula, the lowest proxy E_hull over the set's decorated candidates vs the lowest "
        f"DFT e_above_hull of that formula in the table: MAE {cal['mae']:.3f} eV/atom, bias "
        f"(proxy - DFT) {cal['bias']:+.3f}, agreement on 'E_hull <= 0.1' "
        f"{100 * cal['agreement_threshold']:.0f} %, on 'E_hull <= 0' "
        f"{100 * cal['agreement_sign']:.0f} %.", "",
        "| formula | proxy | DFT | formula | proxy | DFT | formula | proxy | DFT |",
        "|---|---|---|---|---|---|---|---|---|"]
    pairs = [f"{f} | {a:.3f} | {b:.3f}" for f, a, b in cal["pairs"]]
    pairs += [" | | "] * (-len(pairs) % 3)
    lines += ["| " + " | ".join(pairs[i:i + 3]) + " |" for i in range(0, len(pairs), 3)]
    hist = summary["e_hull_histogram"]
    lines += ["", "## The proxy-stable set", "",
              f"`genpipes materials build-stable-set --out DIR --hull .../mp20_hull` with "
              f"{json.dumps({k: v for k, v in vars(scfg).items() if k not in ('palette',)})}; "
              f"palette of {len(scfg.palette)} elements: {' '.join(scfg.palette)}.", "",
              f"- candidates {summary['n_candidates']}, scored {summary['n_scored']}, below "
              f"{scfg.threshold} eV/atom {summary['n_below_threshold']}, kept after "
              f"StructureMatcher dedup {summary['n_kept_after_dedup']}",
              "- kept per prototype: " + ", ".join(f"{k} {v}" for k, v in
                                                   summary["kept_per_prototype"].items()),
              f"- {summary['n_elements']} elements in the kept set: "
              + " ".join(summary["elements"]),
              f"- median proxy E_hull of all candidates {summary['median_e_hull_all']:.3f} "
              "eV/atom; histogram of all candidates:", "",
              "| bin (eV/atom) | " + " | ".join(f"[{a}, {b})" for a, b in
                                             zip(hist["bins"][:-1], hist["bins"][1:])) + " |",
              "|---" * len(hist["bins"]) + "|",
              "| candidates | " + " | ".join(str(c) for c in hist["counts"]) + " |", "",
              "## Throughput", "",
              "Relaxations per minute (rattled test structures, FIRE <= 100 steps, incl. worker "
              "start-up; load average before / after): " + "; ".join(
                  f"{k} {v['per_minute']:.1f} ({v['load_before']:.1f} / {v['load_after']:.1f})"
                  for k, v in thr.items()) + ".",
              f"Total benchmark wall time {(time.perf_counter() - t_all) / 60:.1f} min.", ""]
    md = Path(args.md) if args.md else work / "materials_stability_generated.md"
    md.write_text("\n".join(lines))
    (work / "results.json").write_text(json.dumps(
        {"results": results, "calibration": cal, "throughput": thr, "set_summary": summary,
         "train_seconds": train_s, "n_train": len(train), "n_test": len(test),
         "compositions": comp_stats, "train_cpu_seconds": train_cpu,
         "args": vars(args)}, default=str, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
