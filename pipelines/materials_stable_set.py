"""``genpipes materials build-stable-set``: the proxy-stable training set (materials.stable_set).

Prototypes decorated by Hautier et al. (2011) substitution probabilities, relaxed with CHGNet and
kept when their DFT-anchored proxy E_hull is below a threshold; written as a CDVAE CSV.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def stable_set_args(p: Any) -> None:
    """Arguments of ``genpipes materials build-stable-set`` (defaults from StableSetConfig)."""
    from materials.stable_set import StableSetConfig

    d = StableSetConfig()
    p.add_argument("--out", required=True, help="output folder (a half-built set resumes)")
    p.add_argument("--hull", required=True,
                   help="MP-20 hull folder or ensemble_above_hull_dataset.parquet")
    p.add_argument("--n", type=int, default=d.n_candidates, help="decorated candidates")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threshold", type=float, default=d.threshold,
                   help="keep proxy E_hull below this (eV/atom)")
    p.add_argument("--min-probability", type=float, default=d.min_probability,
                   help="Hautier substitution probability cut-off")
    p.add_argument("--relax-steps", type=int, default=d.relax_steps)
    p.add_argument("--fmax", type=float, default=d.fmax)
    p.add_argument("--executor", default="local", help="local or dask")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--rescore", action="store_true",
                   help="only re-place the built candidates on the hull (new elemental refs)")


def stable_set_cmd(args: Any) -> int:
    """Build (or ``--rescore``) the proxy-stable set; prints where the CSV is."""
    from common.executor import get_executor
    from materials.stable_set import StableSetConfig, build_stable_set, rescore_stable_set

    if args.rescore:
        kept = rescore_stable_set(args.out, args.hull)
        print(f"rescored: {len(kept)} rows in {Path(args.out) / 'stable_set.csv'}")
        return 0
    cfg = StableSetConfig(n_candidates=args.n, seed=args.seed, threshold=args.threshold,
                          min_probability=args.min_probability, relax_steps=args.relax_steps,
                          fmax=args.fmax)
    with get_executor(args.executor, n_workers=args.workers) as ex:
        kept = build_stable_set(args.out, args.hull, cfg, executor=ex)
    summary = json.loads((Path(args.out) / "summary.json").read_text())
    print(f"kept {summary['n_kept_after_dedup']} candidates (proxy E_hull < {cfg.threshold} "
          f"eV/atom, deduplicated); {len(kept)} rows in {Path(args.out) / 'stable_set.csv'}")
    return 0
