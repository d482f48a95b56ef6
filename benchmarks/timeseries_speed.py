"""Benchmark: TSDiff speed, round 2's implementation (from git) vs the current one vs bf16.

CPU seconds of one training step (batch 64) and one guided denoiser call (100 rows) in the
paper's M4 configuration, interleaved in one process (best of 4 rounds x 3 repetitions), and
end-to-end ``guided_forecast`` seconds per series for two row chunks; writes a markdown table.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/timeseries_speed.py [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

# run as a script, this file's folder comes first on sys.path, where benchmarks/timeseries.py
# would shadow the ``timeseries`` package: put the repository root there instead
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import torch  # noqa: E402

from benchmarks.timeseries_common import REFERENCE, REPO  # noqa: E402
from common.io import atomic_write_text  # noqa: E402


def _round2_denoiser(rev: str):
    """``tsdiff_denoiser`` of the round-2 implementation (channels-last), loaded from git."""
    import importlib.util
    import subprocess
    import types

    pkg = types.ModuleType("ts_round2")
    pkg.__path__ = []
    sys.modules["ts_round2"] = pkg
    tmp = Path(tempfile.mkdtemp())
    for name in ("s4", "module"):
        src = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:timeseries/{name}.py"],
                             check=True, capture_output=True, text=True).stdout
        (tmp / f"{name}.py").write_text(src)
        spec = importlib.util.spec_from_file_location(f"ts_round2.{name}", tmp / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[f"ts_round2.{name}"] = mod
        spec.loader.exec_module(mod)
    return sys.modules["ts_round2.module"].tsdiff_denoiser


def speed(reps: int = 3, rounds: int = 4, rev: str = "966bee9") -> list[str]:
    """CPU seconds of one training step (batch 64) and one guided denoiser call (100 samples) in
    the paper's M4 configuration (context 312 + 48, no lags, hidden 64, 3 blocks): round 2's
    implementation (git ``rev``), the current one, and the current one under bf16 autocast,
    interleaved in one process (best of ``rounds`` x ``reps``)."""
    from common.guidance import reconstruction_guidance
    from timeseries.guidance import quantile_energy, quantile_levels
    from timeseries.module import tsdiff_denoiser

    torch.manual_seed(0)
    current = tsdiff_denoiser(1)
    impls = {f"round 2 (git {rev})": (_round2_denoiser(rev)(1), False),
             "current": (current, False), "current, bf16 autocast": (tsdiff_denoiser(1), True)}
    for den, _ in impls.values():
        den.load_state_dict(current.state_dict())
    x = torch.randn(64, 1, 360)
    obs, mask = torch.randn(100, 1, 360), torch.ones(100, 1, 360)
    sig = torch.full((100,), 3.0)

    def timed(fn) -> float:
        fn()
        best = float("inf")
        for _ in range(reps):
            t0 = time.process_time()
            fn()
            best = min(best, time.process_time() - t0)
        return best

    def step_fn(den, bf16):
        opt = torch.optim.AdamW(den.parameters(), 1e-3)

        def step() -> None:
            with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                loss = den.loss(x).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return step

    def call_fn(den, bf16):
        guided = reconstruction_guidance(den, quantile_energy(obs, mask, quantile_levels(100)),
                                         2.0)

        def call() -> None:
            with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                guided(obs, sig)
        return call

    steps = {k: step_fn(d, b) for k, (d, b) in impls.items()}
    res_step = {k: min(timed(f) for _ in range(rounds)) for k, f in steps.items()}
    for den, _ in impls.values():
        den.requires_grad_(False).eval()
    calls = {k: call_fn(d, b) for k, (d, b) in impls.items()}
    res_call = {k: float("inf") for k in calls}
    for _ in range(rounds):  # interleaved: load changes hit every variant alike
        for k, f in calls.items():
            res_call[k] = min(res_call[k], timed(f))
    from timeseries.guidance import guided_forecast

    obs5, mask5 = torch.randn(5, 1, 360), torch.ones(5, 1, 360)
    mask5[..., -48:] = 0
    e2e = {}
    for chunk in (400, 64):  # round 2's default row chunk, then the current one
        t0 = time.process_time()
        guided_forecast(current, obs5, mask5, 100, "quantile", 2.0, "ddim", 10, chunk=chunk)
        e2e[chunk] = (time.process_time() - t0) / 5
    ref = REFERENCE
    r2 = next(iter(impls))
    rows = ["| implementation | s / training step (batch 64) | s / guided call (100 rows) | "
            "DDPM-100 s / series | DDIM-10 s / series | vs reference (step / DDPM-100) | "
            "vs round 2 (step / call) |", "|---|---|---|---|---|---|---|",
            f"| reference TSDiff (issue 3) | {ref['s_per_step']} | - | "
            f"{ref['s_per_series_ddpm100']} | {ref['s_per_series_ddim10']} | 1x / 1x | - |"]
    for k in impls:
        st, ca = res_step[k], res_call[k]
        vs_ref = (f"{ref['s_per_step'] / st:.1f}x / "
                  f"{ref['s_per_series_ddpm100'] / (100 * ca):.1f}x")
        rows.append(f"| {k} | {st:.3f} | {ca:.3f} | {100 * ca:.1f} | {10 * ca:.1f} | {vs_ref}"
                    f" | {res_step[r2] / st:.2f}x / {res_call[r2] / ca:.2f}x |")
    rows += ["", "| end to end: `guided_forecast`, 5 series x 100 samples, DDIM-10 | "
             "CPU s / series |", "|---|---|",
             f"| rows denoised together: 400 (round 2 default) | {e2e[400]:.2f} |",
             f"| rows denoised together: 64 (current default) | {e2e[64]:.2f} |"]
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rev", default="966bee9", help="git revision of the round-2 implementation")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" /
                                        "timeseries_speed.md"))
    args = p.parse_args()
    torch.set_num_threads(1)
    load0 = os.getloadavg()[0]
    rows = speed(rev=args.rev)
    atomic_write_text(args.out, "\n".join([
        "# TSDiff speed: round 2 vs current", "",
        f"`benchmarks/timeseries_speed.py` ({time.strftime('%Y-%m-%d %H:%M UTC')}, load "
        f"average {load0:.1f} at start, {os.getloadavg()[0]:.1f} at the end), 1 thread, "
        "CPU seconds (`time.process_time()`), best of 4 interleaved rounds x 3 repetitions.",
        "", *rows, ""]))
    print("\n".join(rows), flush=True)


if __name__ == "__main__":
    main()
