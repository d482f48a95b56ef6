"""Stability benchmark on the proxy-stable set: UniMat (ours) vs PyXtal vs ion substitution.

The set is built by ``genpipes materials build-stable-set`` (``materials.stable_set``): decorated
prototypes whose DFT-anchored **proxy** E_hull (CHGNet) is below 0.1 eV/atom. It is split
train/test; ``CrystalGenerator`` is fitted on the train part; N unconditional candidates are drawn;
at equal candidate counts, PyXtal random symmetric crystals of our candidates' compositions and
ion substitutions of training structures (pymatgen's Hautier substitution probabilities). All are
relaxed with the same CHGNet settings and scored on the same hulls: validity, proxy E_hull
distribution, stable / metastable / S.U.N. counts with denominators, held-out rediscovery,
candidates per CPU-hour; the proxy calibration is printed beside every stability figure.

Usage: ``OMP_NUM_THREADS=1 nice -n 10 python benchmarks/materials_stability.py --set DIR
--hull ../shared/data/materials/mp20_hull --steps 500 --n 50``
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


def pyxtal_like(compositions: list, seed: int) -> list:
    """One PyXtal random symmetric crystal per composition (cell counts), random space group."""
    from materials.baselines import random_symmetric_crystals

    rng = np.random.default_rng(seed)
    return [random_symmetric_crystals(comp, 1, rng)[0] for comp in compositions]


def ion_substitution(train: list, n: int, seed: int, palette: tuple) -> list:
    """``n`` ion substitutions of training structures (Hautier et al. 2011 probabilities).

    Training structures are visited round-robin in a seeded order; each gives its next most
    probable charge-balanced substitution into the palette that is not the identity and whose
    formula no training structure has; the cell is scaled by the Shannon ionic volumes.
    """
    from pymatgen.core import Species

    from materials.stable_prototypes import _ionic_radius, _predictor, charge_balanced

    pred = _predictor(1e-3)
    rng = np.random.default_rng(seed)
    known = {s.composition.reduced_formula for s in train}
    queues: dict[int, list] = {}
    out: list = []
    order = list(rng.permutation(len(train)))
    while len(out) < n and order:
        for i in list(order):
            if len(out) >= n:
                break
            if i not in queues:
                s = train[i].copy()
                try:
                    s.add_oxidation_state_by_guess()
                except Exception:
                    queues[i] = []
                    continue
                ions = sorted({str(x.specie) for x in s})
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    props = pred.list_prediction(ions)
                cands = []
                for p in sorted(props, key=lambda p: -p["probability"]):
                    m = {str(old): str(new) for new, old in p["substitutions"].items()}
                    if sorted(m) != ions or len(set(m.values())) != len(m) or all(
                            a == b for a, b in m.items()):
                        continue
                    if any(Species.from_str(v).symbol not in palette for v in m.values()):
                        continue
                    if charge_balanced(s, m):
                        cands.append(m)
                queues[i] = [(s, m) for m in cands]
            made = None
            while queues[i] and made is None:
                s, m = queues[i].pop(0)
                t = s.copy()
                t.replace_species({Species.from_str(a): Species.from_str(b) for a, b in m.items()})
                old = sum(_ionic_radius(x.specie) ** 3 for x in s)
                new = sum(_ionic_radius(x.specie) ** 3 for x in t)
                t.scale_lattice(s.volume * new / old)
                t.remove_oxidation_states()
                if t.composition.reduced_formula not in known:
                    known.add(t.composition.reduced_formula)
                    made = t
            if made is None:
                order.remove(i)
            else:
                out.append(made)
    return out + [None] * (n - len(out))


def score(cands: list, train: list, test: list, hull, self_hull, relax_cfg) -> dict:
    """Validity, relaxation, proxy E_hull (both hulls), uniqueness, novelty, rediscovery."""
    from materials import metrics as M
    from materials.stable_set import score_structures

    n = len(cands)
    val = M.validity(cands)
    idx = [i for i, s in enumerate(cands) if s is not None and val["struct_valid"][i]]
    t0 = time.perf_counter()
    rows = score_structures([cands[i] for i in idx], hull, relax_cfg) if idx else []
    relax_s = time.perf_counter() - t0
    e = [math.nan] * n
    e_self = [math.nan] * n
    relaxed = [None] * n
    for i, r in zip(idx, rows):
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
    return {"n": n, "valid": val["valid"], "struct_valid": val["struct_valid"],
            "comp_valid": val["comp_valid"], "e_hull": e, "e_hull_self": e_self,
            "unique": uniq, "novel": nov, "relax_seconds": relax_s,
            "rediscovered": sum(not f for f in found), "n_test": len(test),
            "formulas": [s.composition.reduced_formula if s is not None else "" for s in cands]}


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
    row("generation seconds", lambda r: f"{r['gen_seconds']:.0f}")
    row("relaxation seconds", lambda r: f"{r['relax_seconds']:.0f}")
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
    ap.add_argument("--md", default=str(Path(__file__).parent / "results" /
                                        "materials_stability.md"))
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
    from materials.stable_set import StableSetConfig, load_stable_set, read_candidates

    t_all = time.perf_counter()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    setdir = Path(args.set)
    scfg = StableSetConfig(**json.loads((setdir / "config.json").read_text()))
    structs = load_stable_set(setdir)
    import pandas as pd

    kept = pd.read_csv(setdir / "stable_set.csv")
    rng = np.random.default_rng(args.seed)
    perm = rng.permutation(len(structs))
    n_test = int(round(args.test_frac * len(structs)))
    test = [structs[i] for i in perm[:n_test]]
    train = [structs[i] for i in perm[n_test:]]
    refs = ElementalReferences(relax=RelaxConfig(fmax=scfg.element_fmax, steps=scfg.element_steps))
    hull = DFTHull.from_file(args.hull, refs)
    tr_rows = kept.iloc[perm[n_test:]]
    self_hull = SelfConsistentHull(list(zip(tr_rows["formula"],
                                            tr_rows["energy_per_atom_chgnet"])), refs)
    cand = read_candidates(setdir / "candidates.csv")
    cal = proxy_calibration(list(cand["formula"]), list(cand["e_above_hull_proxy"]), hull)
    relax_cfg = RelaxConfig(fmax=scfg.fmax, steps=args.relax_steps)

    # ours: fit (cached in --work), sample N unconditional
    gpath = work / f"generator_s{args.steps}_c{args.channels}_seed{args.seed}.pt"
    train_s = float("nan")
    if gpath.is_file():
        gen = CrystalGenerator.load(gpath)
    else:
        gen = CrystalGenerator(GeneratorConfig(channels=args.channels, emb_dim=64,
                                               batch_size=32, lr=1e-3),
                               trainer=TrainerConfig(max_steps=args.steps, seed=args.seed,
                                                     ema_decay=0.999))
        t0 = time.perf_counter()
        gen.fit(train, checkpoint_dir=work / f"ckpt_s{args.steps}_c{args.channels}",
                seed=args.seed)
        train_s = time.perf_counter() - t0
        gen.save(gpath)
        (work / f"{gpath.stem}.train_seconds").write_text(f"{train_s:.1f}")
    tfile = work / f"{gpath.stem}.train_seconds"
    if tfile.is_file():
        train_s = float(tfile.read_text())
    gen.config.steps = args.sample_steps
    t0 = time.perf_counter()
    ours = gen.sample(args.n, seed=args.seed, return_invalid=True)
    gen_ours = time.perf_counter() - t0

    comps = [s.composition for s in ours if s is not None] or [s.composition for s in train]
    comps = [comps[i % len(comps)] for i in range(args.n)]
    t0 = time.perf_counter()
    pyx = pyxtal_like(comps, args.seed)
    gen_pyx = time.perf_counter() - t0
    t0 = time.perf_counter()
    sub = ion_substitution(train, args.n, args.seed, tuple(scfg.palette))
    gen_sub = time.perf_counter() - t0

    results = {}
    for name, cands, gs in (("UniMat (ours)", ours, gen_ours), ("PyXtal random", pyx, gen_pyx),
                            ("ion substitution", sub, gen_sub)):
        r = score(cands, train, test, hull, self_hull, relax_cfg)
        r["gen_seconds"] = gs
        results[name] = r
        print(name, {k: v for k, v in r.items() if not isinstance(v, list)}, flush=True)

    # throughput: relaxations per minute on 1 and 2 processes (rattled test structures)
    from common.executor import get_executor
    from materials.stability import relax_many

    bench = []
    for s in test[:8] or train[:8]:
        t = s.copy()
        t.perturb(0.1, min_distance=0.05)
        t.scale_lattice(t.volume * 1.08)
        bench.append(t)
    thr = {}
    for w in (1, 2):
        with get_executor("local", n_workers=w, progress=False) as ex:
            a = time.perf_counter()
            relax_many(bench, RelaxConfig(fmax=scfg.fmax, steps=100), ex)
            thr[w] = 60 * len(bench) / (time.perf_counter() - a)

    summary = json.loads((setdir / "summary.json").read_text())
    lines = [
        "# Materials stability benchmark: proxy-stable set (ours vs PyXtal vs ion substitution)",
        "", "<!-- VERDICT: written by hand after the run -->", "",
        "## Comparison at equal candidate counts", "",
        f"Budget: shared, loaded 2-core CPU (load ~10), every method in 1 process. Set: "
        f"{len(structs)} proxy-stable structures -> {len(train)} train / {len(test)} test "
        f"(seed {args.seed}). UniMat: {args.steps} training steps (channels {args.channels}, "
        f"batch 32, lr 1e-3, EMA 0.999; {train_s / 60:.1f} min wall, not in the per-CPU-hour "
        f"figure), Heun {args.sample_steps} steps, unconditional two-stage. Baselines: PyXtal "
        "random symmetric crystals of our candidates' compositions (random space group, up to "
        "40 tries), ion substitution of training structures (Hautier probabilities >= 1e-3, "
        "same element palette as the set, formulas new to the training set). Relaxation: "
        f"CHGNet FIRE with cell relaxation, fmax {scfg.fmax}, <= {args.relax_steps} steps, for "
        "every structurally valid candidate of every method. Counts are over all N generated "
        "candidates. Hull (a): DFT-anchored MP-20 (CHGNet formation energy); hull (b): "
        "CHGNet energies of the training structures + elemental references.", "",
        *table(results, cal), "",
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
              f"Relaxations per minute (8 rattled test structures, FIRE <= 100 steps, incl. "
              f"worker start-up, loaded machine): 1 process {thr[1]:.1f}, 2 processes "
              f"{thr[2]:.1f}. Total benchmark wall time "
              f"{(time.perf_counter() - t_all) / 60:.1f} min.", ""]
    Path(args.md).write_text("\n".join(lines))
    (work / "results.json").write_text(json.dumps(
        {"results": results, "calibration": cal, "throughput": thr, "set_summary": summary,
         "train_seconds": train_s, "n_train": len(train), "n_test": len(test),
         "args": vars(args)}, default=str, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
