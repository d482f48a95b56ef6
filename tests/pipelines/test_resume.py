"""An interrupted ``genpipes toy train`` (killed or Ctrl-C) resumes from its last checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pipelines.cli import main

REPO = Path(__file__).resolve().parents[2]
STEPS_PER_EPOCH = 4  # n_train 256 / batch 64
TINY = ["--set", "data.n_train=256", "--set", "train.batch_size=64", "--set", "model.hidden=16",
        "--set", "trainer.enable_progress_bar=false"]


def _global_step(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_interrupted_training_resumes_from_last_checkpoint(tmp_path, sig):
    """SIGKILL is a crash (no clean-up at all); SIGINT is Ctrl-C (exit 130 with a hint)."""
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "pipelines.cli", "toy", "train", "--out", str(out), *TINY,
           "--set", "trainer.max_steps=1000000"]
    # a shell that starts jobs in the background (nohup ... &) ignores SIGINT and children
    # inherit that; give the child the default disposition so Ctrl-C reaches Python
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    last = out / "checkpoints" / "last.ckpt"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if last.exists():
                try:
                    if _global_step(last) >= 2 * STEPS_PER_EPOCH:
                        break
                except Exception:  # noqa: BLE001 (being replaced this instant)
                    pass
            time.sleep(0.2)
        assert proc.poll() is None, f"training ended early: {proc.stderr.read()[-2000:]}"
        assert last.exists(), "no checkpoint within 120 s"
    finally:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    err = proc.stderr.read()
    if sig == signal.SIGINT:
        assert proc.returncode == 130, err[-2000:]
        assert "interrupted" in err and "rerun the same command to resume" in err
    else:
        assert proc.returncode == -signal.SIGKILL
    done = json.loads((out / "state.json").read_text())["done"]
    assert done == ["prepare"]  # train never finished
    saved = _global_step(last)  # atomically written, so readable after the kill
    assert saved >= 2 * STEPS_PER_EPOCH and saved % STEPS_PER_EPOCH == 0  # saved at epoch ends

    # rerun with a smaller budget (a changed config, hence --resume)
    target = saved + 2 * STEPS_PER_EPOCH
    assert main(["toy", "train", "--out", str(out), "--resume", *TINY,
                 "--set", f"trainer.max_steps={target}"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())["train"]
    assert metrics["start_step"] == saved  # continued, not restarted
    assert metrics["global_step"] == target
    assert metrics["resumed_from"] == str(last)
    assert _global_step(last) == target


def test_first_ctrl_c_is_deferred_to_the_batch_boundary_and_a_second_interrupts_at_once():
    from pipelines.fit import DeferredInterrupt

    interrupt = DeferredInterrupt()
    interrupt.on_train_batch_end(None)  # nothing requested: training goes on
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # even if run with SIGINT
    try:                                                                  # ignored (background)
        _deferred_then_immediate(interrupt)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    finally:
        signal.signal(signal.SIGINT, previous)


def _deferred_then_immediate(interrupt) -> None:
    with interrupt.installed():
        os.kill(os.getpid(), signal.SIGINT)  # first Ctrl-C: only a request
        time.sleep(0.05)
        assert interrupt.requested
        with pytest.raises(KeyboardInterrupt):
            interrupt.on_train_batch_end(None)  # raised at the next batch boundary
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)  # a second Ctrl-C raises where it lands
            time.sleep(0.05)
