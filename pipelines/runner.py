"""Run a vertical's stages in order with done-bookkeeping, per-stage timing and rank awareness.

``run`` skips stages already marked done; an explicitly requested stage always runs (after any
earlier stage that is not done yet) and marks the later stages not done, since their inputs may
have changed. Under multi-process training (Lightning's DDP launcher, torchrun, SLURM) only the
global rank 0 writes bookkeeping; other ranks take part in ``train`` and skip everything else.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from common.errors import ConfigError, GenpipesError, RunDirError

from .config import to_dict
from .registry import STAGES, Vertical
from .rundir import RunDir

_RANK_VARS = ("RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK", "NODE_RANK", "LOCAL_RANK")
DISTRIBUTED_STAGES = ("train",)


class TrainingInterrupted(GenpipesError):
    """A stage stopped on Ctrl-C (SIGINT); rerunning the command resumes it. CLI exit status 130."""


def is_rank_zero() -> bool:
    """True unless a launcher (Lightning, torchrun, SLURM, LSF) says this is a non-zero rank."""
    for var in _RANK_VARS:
        value = os.environ.get(var)
        if value not in (None, "") and value.strip().isdigit() and int(value) != 0:
            return False
    return True


def log(message: str) -> None:
    """Progress line on stderr (stdout stays free for a stage's own output)."""
    print(f"[genpipes] {message}", file=sys.stderr, flush=True)


def open_run(vertical: Vertical, cfg: Any, out: str | Path, *, resume: bool = False,
             overwrite: bool = False) -> RunDir:
    """Create or reopen the run directory for ``cfg`` (non-zero ranks join without checks)."""
    if not is_rank_zero():  # rank 0 creates (or checks) the directory; wait for it, then join
        _wait(lambda: (Path(out) / "config.yaml").is_file(), f"rank 0 to create {out}")
        return RunDir(out, to_dict(cfg), join=True)
    run = RunDir(out, to_dict(cfg), resume=resume, overwrite=overwrite)
    if run.moved_to is not None:
        log(f"moved the previous run aside to {run.moved_to}")
    return run


def plan(stage: str, run: RunDir) -> list[str]:
    """The stages to execute for ``stage`` (a stage name or ``run``), in order."""
    if stage == "run":
        return [s for s in STAGES if not run.is_done(s)]
    if stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}; valid: {', '.join(STAGES)}, run")
    idx = STAGES.index(stage)
    return [s for s in STAGES[:idx] if not run.is_done(s)] + [stage]


def run_stages(vertical: Vertical, cfg: Any, run: RunDir, stage: str = "run") -> dict[str, float]:
    """Execute ``stage`` (or all with ``run``) and record seconds per stage under ``timing``.

    Args:
        vertical: the domain's pipeline.
        cfg: its resolved config.
        run: the open run directory.
        stage: a stage name or ``"run"``.

    Returns:
        Seconds taken by each stage executed in this call.
    """
    todo = [s for s in plan(stage, run) if s in vertical.stages]
    rank0 = is_rank_zero()
    timings: dict[str, float] = {}
    if not todo:
        log(f"{vertical.name}: every stage is done already in {run.path} (nothing to do)")
        return timings
    if rank0:
        upto = STAGES.index(todo[-1])
        skipped = [s for s in STAGES[:upto] if run.is_done(s) and s not in todo]
        if skipped:
            log(f"{vertical.name}: skipping done stages: {', '.join(skipped)}")
    for name in todo:
        if not rank0:
            if name not in DISTRIBUTED_STAGES:
                continue
            _wait_for_earlier(run, name, vertical)
        if rank0:
            log(f"{vertical.name}: {name} ...")
        start = time.perf_counter()
        vertical.stages[name](cfg, run)
        seconds = time.perf_counter() - start
        timings[name] = round(seconds, 3)
        if rank0:
            run.mark_done(name)
            for later in STAGES[STAGES.index(name) + 1:]:
                if run.is_done(later):
                    run.mark_undone(later)
            run.write_metrics({name: round(seconds, 3)}, section="timing")
            log(f"{vertical.name}: {name} done in {seconds:.1f}s")
    return timings


def _wait_for_earlier(run: RunDir, stage: str, vertical: Vertical) -> None:
    """On a non-zero rank, wait until rank 0 has finished the stages before ``stage``."""
    need = [s for s in STAGES[:STAGES.index(stage)] if s in vertical.stages]
    _wait(lambda: all(run.is_done(s) for s in need),
          f"rank 0 to finish {', '.join(need)} in {run.path}")


def _wait(ready: Any, what: str) -> None:
    """Poll ``ready()`` every second, up to ``$GENPIPES_RANK_WAIT_S`` (default 3600) seconds."""
    limit = float(os.environ.get("GENPIPES_RANK_WAIT_S", "3600"))
    start = time.monotonic()
    while not ready():
        if time.monotonic() - start > limit:
            raise RunDirError(f"waited {limit:.0f}s for {what}; run the earlier stages first "
                              "in a single process (e.g. `genpipes <domain> prepare`)")
        time.sleep(1.0)


__all__ = ["TrainingInterrupted", "is_rank_zero", "open_run", "plan", "run_stages", "log"]
