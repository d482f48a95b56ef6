"""A run directory: resolved config, checkpoints, samples, metrics, plots, report (DESIGN §4)."""

from __future__ import annotations

import datetime as _dt
import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from common.errors import RunDirError
from common.io import atomic_write_json, atomic_write_text


class RunDir:
    """One run's folder; refuses a different config unless ``resume`` or ``overwrite``.

    Layout: ``config.yaml``, ``state.json`` (finished stages), ``checkpoints/``, ``samples/``,
    ``plots/``, ``metrics.json`` and ``report.md``. ``overwrite`` moves an old run aside to
    ``<dir>.old-<timestamp>`` rather than deleting what a user made.
    """

    def __init__(self, path: str | Path, config: dict[str, Any], *, resume: bool = False,
                 overwrite: bool = False, join: bool = False) -> None:
        self.path = Path(path)
        self.config = config
        self.moved_to: Path | None = None
        cfg_file = self.path / "config.yaml"
        if join:  # a non-zero DDP rank attaching to the run that rank 0 created: no checks/writes
            if not cfg_file.is_file():
                raise RunDirError(f"{self.path}: no run directory to join (no config.yaml)")
            return
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"{self.path} is a file; --out expects a run directory")
        if self.path.exists() and any(self.path.iterdir()):
            old = _read_config(cfg_file) if not overwrite else None
            if overwrite:
                stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
                backup = self.path.with_name(f"{self.path.name}.old-{stamp}")
                n = 1
                while backup.exists():  # two --overwrite runs within one second
                    n += 1
                    backup = self.path.with_name(f"{self.path.name}.old-{stamp}-{n}")
                shutil.move(str(self.path), str(backup))
                self.moved_to = backup
            elif old is None:
                raise RunDirError(
                    f"{self.path} exists and is not a genpipes run directory (no config.yaml); "
                    "choose another --out or pass --overwrite to move it aside"
                )
            elif old != config and not resume:
                diff = _diff_keys(old, config)
                raise RunDirError(
                    f"{self.path} holds a run with a different config ({', '.join(diff[:8])}"
                    f"{' ...' if len(diff) > 8 else ''}); pass --resume to continue it with the "
                    "new config, --overwrite to move it aside, or choose another --out"
                )
        for sub in ("checkpoints", "samples", "plots"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)
        atomic_write_text(cfg_file, yaml.safe_dump(config, sort_keys=False))

    # folders -------------------------------------------------------------------------------
    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def samples(self) -> Path:
        return self.path / "samples"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    # stage bookkeeping ---------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        f = self.path / "state.json"
        if not f.exists():
            return {"done": []}
        try:
            state = json.loads(f.read_text())
        except (OSError, ValueError) as exc:
            raise RunDirError(f"{f}: unreadable ({exc}); fix or delete it to redo every stage"
                              ) from None
        if not isinstance(state, dict) or not isinstance(state.get("done"), list):
            raise RunDirError(f"{f}: expected a JSON object with a list 'done'")
        return state

    def is_done(self, stage: str) -> bool:
        return stage in self._state()["done"]

    def mark_done(self, stage: str) -> None:
        state = self._state()
        if stage not in state["done"]:
            state["done"].append(stage)
        atomic_write_json(self.path / "state.json", state)

    def mark_undone(self, stage: str) -> None:
        state = self._state()
        state["done"] = [s for s in state["done"] if s != stage]
        atomic_write_json(self.path / "state.json", state)

    # outputs -------------------------------------------------------------------------------
    def metrics(self) -> dict[str, Any]:
        f = self.path / "metrics.json"
        if not f.exists():
            return {}
        try:
            return json.loads(f.read_text())
        except (OSError, ValueError) as exc:
            raise RunDirError(f"{f}: unreadable metrics ({exc}); fix or delete it") from None

    def write_metrics(self, values: dict[str, Any], section: str | None = None) -> None:
        """Merge ``values`` into ``metrics.json`` (under ``section`` when given), atomically."""
        current = self.metrics()
        if section is None:
            current.update(values)
        else:
            current.setdefault(section, {}).update(values)
        atomic_write_json(self.path / "metrics.json", current)

    def add_report(self, title: str, markdown: str = "", images: list[str | Path] = ()) -> None:
        """Add or replace a report section; images are linked relative to the run directory."""
        sections = self._sections()
        links = []
        for img in images:
            rel = Path(img).resolve().relative_to(self.path.resolve())
            links.append(f"![{rel.stem}]({rel.as_posix()})")
        sections[title] = "\n\n".join(p for p in (markdown.strip(), "\n".join(links)) if p)
        atomic_write_json(self.path / ".report.json", sections)
        body = [f"# Run report: {self.path.name}", ""]
        for name, text in sections.items():
            body += [f"## {name}", "", text, ""]
        atomic_write_text(self.path / "report.md", "\n".join(body))

    def _sections(self) -> dict[str, str]:
        f = self.path / ".report.json"
        return json.loads(f.read_text()) if f.exists() else {}


def _read_config(path: Path) -> Any:
    """The recorded config of a run directory, None if absent; RunDirError if unreadable."""
    if not path.exists():
        return None
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        detail = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RunDirError(f"{path}: unreadable run config ({where}{detail}); pass --overwrite "
                          "to move the run aside") from None


def _diff_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for k in sorted(set(old) | set(new), key=str):
            out += _diff_keys(old.get(k), new.get(k), f"{prefix}{k}.")
        return out
    return [] if old == new else [prefix.rstrip(".")]
