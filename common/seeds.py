"""Per-sample random streams (EDM's per-sample generators): a sample never depends on batch size."""

from __future__ import annotations

from collections.abc import Sequence

import torch

Generator = torch.Generator | Sequence[torch.Generator] | None


def sample_generators(seeds: Sequence[int], device: str | torch.device = "cpu"
                      ) -> list[torch.Generator]:
    """One ``torch.Generator`` per sample, seeded from ``seeds``."""
    gens = []
    for s in seeds:
        g = torch.Generator(device=device)
        g.manual_seed(int(s))
        gens.append(g)
    return gens


def _per_sample(draw, shape, generator, device, dtype) -> torch.Tensor:
    """Draw ``shape`` with ``draw``; a list of generators draws row ``i`` from ``generator[i]``."""
    shape = tuple(shape)
    if generator is None or isinstance(generator, torch.Generator):
        return draw(shape, generator=generator, device=device, dtype=dtype)
    if len(generator) != shape[0]:
        raise ValueError(f"{len(generator)} generators for a batch of {shape[0]}")
    return torch.stack([draw(shape[1:], generator=g, device=device, dtype=dtype)
                        for g in generator])


def randn(
    shape: Sequence[int],
    generator: Generator = None,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Standard normal draws; a list of generators draws row ``i`` from ``generator[i]``."""
    return _per_sample(torch.randn, shape, generator, device, dtype)


def randn_like(x: torch.Tensor, generator: Generator = None) -> torch.Tensor:
    """``randn`` shaped, typed and placed like ``x``."""
    return randn(x.shape, generator, device=x.device, dtype=x.dtype)


def rand(
    shape: Sequence[int],
    generator: Generator = None,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Uniform [0, 1) draws with the same per-sample convention as :func:`randn`."""
    return _per_sample(torch.rand, shape, generator, device, dtype)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when present, else CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
