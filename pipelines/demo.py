"""``genpipes demo``: every vertical that loads, end to end on its embedded default, small budget.

Each domain runs ``run`` with its ``demo_overrides`` into ``<out>/<domain>``; a failing domain is
reported and the next one runs; a summary table follows and the exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from common.errors import GenpipesError

from .config import build_config
from .registry import MODULES, Vertical, available_verticals
from .runner import TrainingInterrupted, open_run, run_stages


def demo_parser() -> argparse.ArgumentParser:
    """Options of ``genpipes demo``."""
    p = argparse.ArgumentParser(prog="genpipes demo", allow_abbrev=False,
                                description="Run every available vertical on its embedded "
                                            "default with a small budget (offline).")
    p.add_argument("--out", default="runs/demo", metavar="DIR",
                   help="parent folder; each domain runs in DIR/<domain> (default runs/demo)")
    p.add_argument("--only", metavar="A,B", help="comma-separated domains to run")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="extra override applied to every selected domain")
    p.add_argument("--resume", action="store_true", help="continue runs whose config differs")
    p.add_argument("--overwrite", action="store_true", help="move earlier demo runs aside")
    p.add_argument("--debug", action="store_true", help="show full tracebacks of failures")
    return p


def run_demo(vertical: Vertical, out: Path, *, overrides: Sequence[str] = (),
             resume: bool = False, overwrite: bool = False) -> Path:
    """Run ``vertical`` end to end with its demo overrides into ``out``; returns the run dir."""
    cfg = build_config(vertical.config_cls, base=vertical.demo_overrides, overrides=overrides)
    run = open_run(vertical, cfg, out, resume=resume, overwrite=overwrite)
    run_stages(vertical, cfg, run, "run")
    return run.path


def demo_main(argv: Sequence[str]) -> int:
    """``genpipes demo [--out DIR] [--only a,b]``; returns 0 if every selected domain succeeded."""
    args = demo_parser().parse_args(list(argv))
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in MODULES]
        if unknown:
            from common.errors import ConfigError

            raise ConfigError(f"--only: unknown domain(s) {', '.join(unknown)}; "
                              f"valid: {', '.join(MODULES)}")
        found = available_verticals(names)
    else:
        every = available_verticals()
        found = {n: v for n, v in every.items() if n != "toy"}
        if "toy" in every:  # the toy runs last: it is a smoke test, not a domain
            found["toy"] = every["toy"]
    rows: list[tuple[str, str, float, str]] = []
    for name, vertical in found.items():
        if not isinstance(vertical, Vertical):
            status = "failed" if "failed to import" in vertical else "skipped"
            rows.append((name, status, 0.0, vertical))
            continue
        out = Path(args.out) / name
        print(f"\n=== genpipes demo: {name} -> {out} ===", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            run_demo(vertical, out, overrides=args.overrides, resume=args.resume,
                     overwrite=args.overwrite)
            rows.append((name, "ok", time.perf_counter() - start, str(out)))
        except TrainingInterrupted:  # Ctrl-C stops the whole demo
            raise
        except Exception as exc:  # one failing vertical must not stop the others
            if args.debug or not isinstance(exc, GenpipesError):
                traceback.print_exc()
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            rows.append((name, "failed", time.perf_counter() - start, f"{out}: {msg}"))
            print(f"error: {name}: {msg}", file=sys.stderr)
    print(format_summary(rows))
    return 1 if any(r[1] == "failed" for r in rows) else 0


def format_summary(rows: Sequence[tuple[str, str, float, str]]) -> str:
    """A plain-text table: domain, status, seconds, run dir (or reason)."""
    head = ("domain", "status", "seconds", "run dir / reason")
    body = [(n, s, f"{t:.1f}", d) for n, s, t, d in rows]
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(3)]
    lines = ["", "genpipes demo summary"]
    for r in [head, *body]:
        lines.append("  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3])
    return "\n".join(lines)


__all__ = ["demo_main", "run_demo", "format_summary"]
