"""One small exception hierarchy for genpipes: every user-facing error names what was wrong."""

from __future__ import annotations

from pathlib import Path


class GenpipesError(Exception):
    """Base class of every error genpipes raises on purpose."""


class ConfigError(GenpipesError, ValueError):
    """A config key or value is invalid (unknown key, wrong type, impossible value)."""


class DataError(GenpipesError, ValueError):
    """Input data is unusable; names the file (or item), the field and what was expected."""

    def __init__(
        self,
        problem: str,
        *,
        file: str | Path | None = None,
        field: str | None = None,
        expected: str | None = None,
    ) -> None:
        self.file = None if file is None else str(file)
        self.field = field
        self.expected = expected
        self.problem = problem
        parts = []
        if self.file is not None:
            parts.append(self.file)
        if field is not None:
            parts.append(f"field {field!r}")
        where = ": ".join(parts)
        msg = f"{where}: {problem}" if where else problem
        if expected:
            msg += f" (expected {expected})"
        super().__init__(msg)


class CheckpointError(GenpipesError):
    """A checkpoint is missing, corrupt, or belongs to another model."""


class RunDirError(GenpipesError):
    """A run directory conflicts with the requested run (different config, no --resume)."""
