"""Markdown tables of ``benchmarks/timeseries_m4.py eval`` from its results cache (not a script).

Budget curve (every method at every budget, mean ± std over seeds), sampler study (CRPS and
forecast CPU seconds per sampler on one predictor, with the ratio to the reference's seconds) and
the speed-at-equal-CRPS row: the cheapest guided sampler whose CRPS is within the seed spread of
guided DDPM-100.
"""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np

from benchmarks.timeseries_common import PAPER, REFERENCE, fmt
from common.io import atomic_write_text


def _label(sampler: str, k: int | str, scale: str | None = None) -> str:
    name = {"ddpm": "DDPM", "ddim": "DDIM", "dpmpp_2m": "DPM-Solver++(2M)"}[sampler] + f"-{k}"
    return name + ("" if scale is None else f", scale {scale.removeprefix('s')}")


def _parse(key: str) -> tuple[str, str, int, str | None, int]:
    """``(predictor, sampler, steps, scale tag or None, n)`` of a ``tsdiff/...`` key."""
    parts = key.split("/")
    scale = parts[5] if len(parts) == 7 else None
    return f"{parts[1]}/{parts[2]}", parts[3], int(parts[4]), scale, int(parts[-1])


def budget_rows(rows: dict[str, dict], n: int, total: int) -> list[str]:
    """One row per (method, budget): CRPS mean ± std over seeds (each seed's value listed)."""
    out = ["| method | training steps x batch 64 | seeds | CRPS, "
           f"{n} eval. series | per seed | CPU s / train step | CPU s / forecast series | "
           f"CRPS all {total} series | CRPS (paper, all series) |",
           "|---|---|---|---|---|---|---|---|---|"]
    out.append(f"| seasonal naive (GluonTS, season 24) | - | - | "
               f"{rows.get(f'naive/{n}', {}).get('crps', float('nan')):.4f} | - | - | - | "
               f"{rows.get(f'naive/{total}', {}).get('crps', float('nan')):.4f} | "
               f"{PAPER[('m4_hourly', 'seasonal naive')]} |")
    groups: dict[tuple, list[tuple[int, dict]]] = defaultdict(list)
    for key, r in rows.items():
        parts = key.split("/")
        if parts[0] == "deepar" and int(parts[-1]) == n:
            groups[("DeepAR (GluonTS defaults)", int(parts[2]))].append((int(parts[1]), r))
        elif parts[0] == "tsdiff" and int(parts[-1]) == n:
            seed = int(parts[1].removeprefix("seed"))
            _, sampler, k, scale, _ = _parse(key)
            method = f"TSDiff-Q {_label(sampler, k, scale)}"
            groups[(method, r["steps"])].append((seed, r))
    order = sorted(groups, key=lambda g: (not g[0].startswith("DeepAR"), g[0], g[1]))
    for method, steps in order:
        res = sorted(groups[(method, steps)], key=lambda t: t[0])
        crps = [r["crps"] for _, r in res]
        all_ = [r["crps_all"] for _, r in res if "crps_all" in r]
        paper = PAPER[("m4_hourly", "DeepAR" if "DeepAR" in method else "TSDiff-Q")]
        out.append(
            f"| {method} | {steps} | {', '.join(str(s) for s, _ in res)} | {fmt(crps)} | "
            f"{' / '.join(f'{c:.4f}' for c in crps)} | "
            f"{np.mean([r['s_step'] for _, r in res]):.3f} | "
            f"{np.mean([r['s_series'] for _, r in res]):.2f} | "
            f"{fmt(all_) if all_ else '-'} | {paper} (12.8k steps) |")
    return out


def sampler_rows(rows: dict[str, dict], n: int) -> tuple[list[str], list[str]]:
    """Sampler study on the predictor with the most sampler variants, and speed at equal CRPS."""
    by_pred: dict[str, dict[tuple, dict]] = defaultdict(dict)
    for key, r in rows.items():
        if key.startswith("tsdiff/") and int(key.split("/")[-1]) == n:
            pred, sampler, k, scale, _ = _parse(key)
            by_pred[pred][(sampler, k, scale)] = r
    if not by_pred:
        return [], []
    pred = max(by_pred, key=lambda p: (len(by_pred[p]), p))
    res = by_pred[pred]
    ref = REFERENCE["s_per_series_ddpm100"]
    out = [f"Predictor `{pred}` ({next(iter(res.values()))['steps']} training steps), "
           f"{n} series, 100 samples, guidance scale 2 unless stated.", "",
           "| guided sampler | CRPS | CPU s / forecast series | vs reference DDPM-100 (350 s) "
           "| vs reference DDIM-10 (32 s) |", "|---|---|---|---|---|"]
    for (sampler, k, scale), r in sorted(res.items(), key=lambda t: t[1]["s_series"]):
        out.append(f"| {_label(sampler, k, scale)} | {r['crps']:.4f} | {r['s_series']:.2f} | "
                   f"{ref / r['s_series']:.1f}x | "
                   f"{REFERENCE['s_per_series_ddim10'] / r['s_series']:.1f}x |")
    eq: list[str] = []
    ddpm = res.get(("ddpm", 100, None))
    if ddpm is not None:
        # seed spread: std over training seeds of guided DDPM-100 at this budget if several
        # seeds have it, else of DDIM-10 at this budget (labelled)
        steps = ddpm["steps"]
        spread_of = {}
        for sk in (("ddpm", 100, None), ("ddim", 10, None)):
            vals = [v[sk]["crps"] for p, v in by_pred.items()
                    if sk in v and v[sk]["steps"] == steps]
            if len(vals) > 1:
                spread_of[sk] = (float(np.std(vals)), len(vals))
        src = ("ddpm", 100, None) if ("ddpm", 100, None) in spread_of else ("ddim", 10, None)
        spread, nseeds = spread_of.get(src, (0.0, 1))
        used = (f"{spread:.4f} ({_label(*src)}, {nseeds} training seeds)" if nseeds > 1 else
                "none (1 training seed): CRPS <= DDPM-100's")
        ok = [(r["s_series"], sk, r) for sk, r in res.items()
              if r["crps"] <= ddpm["crps"] + spread]
        s, sk, r = min(ok, key=lambda t: t[0])
        eq = ["| row | sampler | CRPS | seed spread used (std) | CPU s / series | vs reference "
              "DDPM-100 (350 s) |", "|---|---|---|---|---|---|",
              f"| like for like (the paper's sampler) | DDPM-100 | {ddpm['crps']:.4f} | - | "
              f"{ddpm['s_series']:.2f} | {ref / ddpm['s_series']:.1f}x |",
              f"| at equal CRPS (cheapest sampler within the spread) | {_label(*sk)} | "
              f"{r['crps']:.4f} | {used} | "
              f"{s:.2f} | {ref / s:.1f}x |"]
    return out, eq


def val_rows(rows: dict[str, dict]) -> list[str]:
    """Guidance scale / sampler on validation windows (last 48 steps of training series)."""
    out = ["| predictor | guided sampler | validation series | CRPS | CPU s / series |",
           "|---|---|---|---|---|"]
    for key, r in sorted(rows.items()):
        if key.startswith("val-tsdiff/"):
            pred, sampler, k, scale, n = _parse(key.removeprefix("val-"))
            out.append(f"| {pred} | {_label(sampler, k, scale or 's2')} | {n} | "
                       f"{r['crps']:.4f} | {r['s_series']:.2f} |")
    return out if len(out) > 2 else []


def write_m4(path: str, rows: dict[str, dict], n: int, stride: int, total: int) -> None:
    """Rewrite ``path`` with every table the cache allows so far."""
    samp, eq = sampler_rows(rows, n)
    loads = [r["load"] for r in rows.values() if "load" in r]
    text = [
        "# TSDiff-Q on M4 hourly: all series, budget curve, samplers",
        "",
        f"`benchmarks/timeseries_m4.py` (tables rewritten {time.strftime('%Y-%m-%d %H:%M UTC')}"
        f"; load average {min(loads, default=0):.1f}-{max(loads, default=0):.1f} when jobs "
        "ended). Every model is trained on ALL "
        f"{total} M4-hourly training series (context 312 + 48, no lags, batch 64, EMA 0.999); "
        f"CRPS (GluonTS mean weighted quantile loss, 100 samples) on every {stride}-th series "
        f"({n} series: forecast cost), the single final 48-step window; DeepAR and seasonal naive "
        f"also on all {total}. Times are this process's CPU seconds on one thread (shared "
        "2-core machine). Reference TSDiff on this CPU: 1.5 s / step, 350 s / series DDPM-100, "
        "32 s DDIM-10.",
        "", "## CRPS vs training budget", "", *budget_rows(rows, n, total), "",
    ]
    if samp:
        text += ["## CRPS and forecast time vs guided sampler", "", *samp, ""]
    if eq:
        text += ["## Forecast speed at equal CRPS", "", *eq, ""]
    val = val_rows(rows)
    if val:
        text += ["## Guidance scale chosen on validation windows (last 48 steps of the "
                 "training series, not the test windows)", "", *val, ""]
    atomic_write_text(path, "\n".join(text))
