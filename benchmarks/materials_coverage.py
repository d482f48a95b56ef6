"""Coverage of saved generators on Perov-5 at N vs N (CDVAE COV-R/COV-P, d_rho, d_elem), one run.

The coverage part of ``benchmarks/materials.py --cov-n N`` without the CSP, proxy and baseline
rows (those take ~25 min): each saved ``CrystalGenerator`` draws N unconditional samples (seed 0,
Heun 20 steps; sample i depends only on the seed and i), scored against the first N structures
of the test split, beside the data ceiling (the first N structures of the training split, val,
scored the same way) in the same run. Writes a markdown table.

Usage: ``nice -n 10 python benchmarks/materials_coverage.py --data ../shared/data/materials
--n 500 --out coverage.md GEN_A.pt GEN_B.pt``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

# this script's folder holds `materials.py`, named like the package: keep it off the import path
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]


def main() -> None:
    """Score each generator and the data ceiling at N vs N; print and write the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("generators", nargs="+", help="saved CrystalGenerator files")
    ap.add_argument("--data", default="../shared/data/materials")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--sample-steps", type=int, default=20, help="Heun steps")
    ap.add_argument("--out", default=None, help="markdown file to write (atomic)")
    args = ap.parse_args()

    import torch

    from common.io import atomic_write_text
    from materials import metrics as M
    from materials.data import load_structures
    from materials.generator import CrystalGenerator
    from materials.representation import UniMatEncoder

    torch.set_num_threads(1)
    data = Path(args.data)
    train, _ = load_structures(data / "perov_5" / "val.csv.gz")
    test, _ = load_structures(data / "perov_5" / "test.csv.gz", limit=args.n)
    scaler = M.load_comp_scaler(data / "cdvae_comp_scaler.json")
    cut = M.COV_CUTOFFS["perovskite"]

    def score(structs: list) -> dict:
        return {**M.coverage(structs, test, cut["struc"], cut["comp"], scaler),
                **M.property_distances(structs, test)}

    rows = [("data ceiling: first N of val (the training split)", 1.0,
             score(train[: args.n]), float("nan"))]
    for path in args.generators:
        gen = CrystalGenerator.load(path)
        gen.config.steps = args.sample_steps
        if gen.encoder.element_counts is None:  # saved before p(k | N) was recorded
            gen.encoder.element_counts = UniMatEncoder.fit(train).element_counts
        t = time.process_time()
        draws = gen.sample(args.n, seed=0, return_invalid=True, progress=False)
        cpu = time.process_time() - t
        valid_mask = M.validity(draws)["valid"]
        valid = [s for s, v in zip(draws, valid_mask) if v]
        rows.append((Path(path).name, float(np.mean(valid_mask)), score(valid), cpu))

    lines = [f"COV at {args.n} draws vs the first {len(test)} Perov-5 test structures "
             f"(CDVAE thresholds; Heun {args.sample_steps} steps, seed 0)", "",
             "| generator | valid | COV-R % | COV-P % | d_rho | d_elem | sampling CPU s |",
             "|---|---|---|---|---|---|---|"]
    for name, v, s, cpu in rows:
        lines.append(f"| {name} | {v:.3f} | {100 * s['cov_recall']:.1f} | "
                     f"{100 * s['cov_precision']:.1f} | {s['wdist_density']:.3f} | "
                     f"{s['wdist_num_elements']:.3f} | {cpu:.0f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        atomic_write_text(args.out, text)


if __name__ == "__main__":
    main()
