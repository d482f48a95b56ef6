"""Sampler accuracy per network evaluation on a 2-D Gaussian mixture with its exact denoiser.

For every sampler in ``common.samplers`` at budgets of 5, 10, 20, 40 and 80 denoiser calls
(NFE, counted by ``function_evaluations``; the step count is the largest whose NFE fits the
budget), measures

* the RMS distance to the exact probability-flow ODE solution from the same initial noise (ODE
  samplers only; reference: torchdiffeq dopri5 at rtol = atol = 1e-10 in log-sigma time), and
* the sample-moment errors against the mixture: mean (max over dims, in units of the data std),
  covariance (max entry error relative to sqrt(C_ii C_jj)), component weights (max |E[p(k|x)] -
  w_k|), with the noise floor of the same number of exact draws reported beside them.

Euler is the baseline. Run: ``nice -n 10 python benchmarks/core_samplers.py [--n 20000]``;
writes ``benchmarks/results/core_samplers.md``.
"""

from __future__ import annotations

import argparse
import functools
import math
import platform
import time
from pathlib import Path

import torch
from torchdiffeq import odeint

from common import samplers as S
from common.io import atomic_write_text
from common.mixture import GaussianMixture
from common.noise import DiscreteSchedule, linear_betas, sigmas_karras

BUDGETS = (5, 10, 20, 40, 80)
SIGMA_MIN, SIGMA_MAX, RHO = 0.002, 80.0, 7.0
DDPM = DiscreteSchedule(linear_betas(1000))

# name -> (sampler, NFE-accounting name, is an ODE solver)
SAMPLERS = {
    "euler (baseline)": (S.sample_euler, "euler", True),
    "heun": (S.sample_heun, "heun", True),
    "dpmpp_2m": (S.sample_dpmpp_2m, "dpmpp_2m", True),
    "ddim eta=0": (functools.partial(S.sample_ddim, eta=0.0), "ddim", True),
    "heun churn=40": (functools.partial(S.sample_heun, s_churn=40, s_tmin=0.05, s_tmax=50),
                      "heun", False),
    "euler_ancestral": (S.sample_euler_ancestral, "euler_ancestral", False),
    "ddim eta=1": (functools.partial(S.sample_ddim, eta=1.0), "ddim", False),
    "ddpm (1000-step betas)": (S.sample_ddpm, "ddpm", False),
    "pc (Langevin + ancestral)": (S.sample_pc, "pc", False),
}


def mixture() -> GaussianMixture:
    """The tests' mixture: three correlated 2-D components, weights 0.5 / 0.3 / 0.2."""
    return GaussianMixture(
        [0.5, 0.3, 0.2],
        [[-2.0, 0.0], [2.0, 1.0], [0.0, -3.0]],
        [[[1.0, 0.3], [0.3, 0.5]], [[0.4, -0.1], [-0.1, 0.8]], [[0.6, 0.0], [0.0, 0.3]]],
    )


def steps_for(nfe_name: str, budget: int) -> int:
    """The most steps whose denoiser calls fit in ``budget``."""
    steps = 1
    while S.function_evaluations(nfe_name, steps + 1) <= budget:
        steps += 1
    return steps


def sigmas_for(name: str, steps: int) -> torch.Tensor:
    if name.startswith("ddpm"):
        return DDPM.sigmas(steps)
    return sigmas_karras(steps, SIGMA_MIN, SIGMA_MAX, RHO)


def exact_ode_solution(gm: GaussianMixture, x: torch.Tensor) -> torch.Tensor:
    """PF-ODE from SIGMA_MAX to 1e-6 in log-sigma time, then D(x, 1e-6) (error O(1e-12))."""

    def f(u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return y - gm(y, u.exp() * y.new_ones(y.shape[0]))

    end = 1e-6
    times = torch.tensor([math.log(SIGMA_MAX), math.log(end)], dtype=torch.float64)
    y = odeint(f, x, times, method="dopri5", rtol=1e-10, atol=1e-10)[-1]
    return gm(y, torch.full((len(y),), end, dtype=torch.float64))


def moment_errors(gm: GaussianMixture, out: torch.Tensor) -> tuple[float, float, float]:
    cov = gm.covariance()
    std = torch.diag(cov).sqrt()
    mean_err = float(((out.mean(0) - gm.mean()).abs() / std).max())
    cov_err = float(((torch.cov(out.T) - cov).abs() / torch.outer(std, std)).max())
    w_err = float((gm.responsibilities(out).mean(0) - gm.weights).abs().max())
    return mean_err, cov_err, w_err


def run(n: int, n_ode: int, seed: int) -> str:
    gm = mixture()
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, 2, generator=g, dtype=torch.float64)
    exact = gm.sample(n, torch.Generator().manual_seed(seed + 1))[0]
    floor = moment_errors(gm, exact)
    t0 = time.time()
    reference = exact_ode_solution(gm, noise[:n_ode] * SIGMA_MAX)
    ref_time = time.time() - t0

    ode_rows, mom_rows, nfe_rows = [], [], []
    ode_levels, mom_levels = (1e-1, 3e-2, 1e-2), ((0.10, 0.05), (0.03, 0.02))
    first_ode = {lvl: {} for lvl in ode_levels}
    first_mom = {lvl: {} for lvl in mom_levels}
    for name, (fn, nfe_name, is_ode) in SAMPLERS.items():
        ode_cells, mom_cells, nfe_cells = [], [], []
        for budget in BUDGETS:
            steps = steps_for(nfe_name, budget)
            sig = sigmas_for(name, steps)
            nfe = S.function_evaluations(nfe_name, steps)
            out = fn(gm, noise * sig[0], sig, generator=torch.Generator().manual_seed(seed + 2))
            nfe_cells.append(f"{nfe} ({steps})")
            if is_ode:
                err = float((out[:n_ode] - reference).pow(2).sum(1).mean().sqrt())
                ode_cells.append(f"{err:.2e}")
                for lvl in ode_levels:
                    if err < lvl and name not in first_ode[lvl]:
                        first_ode[lvl][name] = nfe
            m, c, w = moment_errors(gm, out)
            mom_cells.append(f"{m:.3f} / {c:.3f} / {w:.3f}")
            for lvl in mom_levels:
                if c < lvl[0] and w < lvl[1] and name not in first_mom[lvl]:
                    first_mom[lvl][name] = nfe
        nfe_rows.append(f"| {name} | " + " | ".join(nfe_cells) + " |")
        if is_ode:
            ode_rows.append(f"| {name} | " + " | ".join(ode_cells) + " |")
        mom_rows.append(f"| {name} | " + " | ".join(mom_cells) + " |")

    head = "| sampler | " + " | ".join(f"NFE {b}" for b in BUDGETS) + " |"
    rule = "|---" * (len(BUDGETS) + 1) + "|"

    def fmt(first: dict[str, int], names: list[str]) -> str:
        rank = sorted(first.items(), key=lambda kv: kv[1])
        reached = ", ".join(f"{k}: {v}" for k, v in rank) or "none"
        missed = [k for k in names if k not in first]
        return reached + (f"; not within 80 NFE: {', '.join(missed)}" if missed else "")

    ode_names = [k for k, v in SAMPLERS.items() if v[2]]
    summary = [f"- RMS error to the exact ODE solution < {lvl:g} (ODE samplers): "
               f"{fmt(first_ode[lvl], ode_names)}" for lvl in ode_levels]
    summary += [f"- covariance error < {c:.0%} and weight error < {w:g}: "
                f"{fmt(first_mom[(c, w)], list(SAMPLERS))}" for c, w in mom_levels]
    return "\n".join([
        "# Core samplers: accuracy per network evaluation (exact mixture denoiser)",
        "",
        f"Data: 2-D mixture of 3 correlated Gaussians (weights 0.5/0.3/0.2), exact denoiser, "
        f"float64. Karras sigmas (sigma_min={SIGMA_MIN}, sigma_max={SIGMA_MAX}, rho={RHO}) "
        "then 0; DDPM uses strided sigmas of the 1000-step linear-beta schedule. Budget per "
        f"cell: the NFE in the column (steps chosen so NFE <= budget); {n} samples per cell for "
        f"moments, the first {n_ode} of them for the ODE error; one seed ({seed}). "
        f"Machine: {platform.machine()} CPU, torch {torch.__version__}; reference ODE solve "
        f"{ref_time:.1f} s. Regenerate: `nice -n 10 python benchmarks/core_samplers.py`.",
        "",
        "## Fewest evaluations (NFE) to reach a given error",
        "",
        *summary,
        "",
        "## Actual NFE (steps) per budget",
        "", head, rule, *nfe_rows,
        "",
        "## RMS error to the exact PF-ODE solution, same initial noise (ODE samplers)",
        "", head, rule, *ode_rows,
        "",
        "## Moment errors: mean (max |error| / std) / covariance (max rel.) / weights (max abs.)",
        "",
        f"Noise floor of {n} exact draws: {floor[0]:.3f} / {floor[1]:.3f} / {floor[2]:.3f} "
        "(errors at this level are sampling noise, not sampler bias).",
        "", head, rule, *mom_rows,
        "",
        "Notes: ddim eta=0 is Euler and ddim eta=1 is Euler-ancestral in sigma-space (identical "
        "numbers are expected, and the tests assert equality). Stochastic samplers have no "
        "ODE error because they do not follow the ODE.",
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="samples per cell")
    parser.add_argument("--n-ode", type=int, default=2000, help="samples for the ODE error")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "core_samplers.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    table = run(args.n, args.n_ode, args.seed)
    table += f"\nTotal benchmark time: {time.time() - t0:.0f} s on 1 thread.\n"
    atomic_write_text(args.out, table)
    print(table)


if __name__ == "__main__":
    main()
