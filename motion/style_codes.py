"""Style codes of the stylizer (GenMoStyle, Guo et al. ICLR 2024, Sec. 3.4 inference).

:class:`StyleCodes` is the style-code half of :class:`motion.stylizer.Stylizer`: after training it
keeps the posterior-mean codes of the training windows per label (the style bank), a Gaussian
fitted to all of them (the ex-post density estimate of Ghosh et al. 2020, Sec. 4) and optionally
an EDM diffusion prior over codes; at inference it turns a label, a reference clip or ``None``
into codes, with per-sample generators so a code does not depend on the batch size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from common.errors import DataError
from common.seeds import randn, sample_generators

from .bvh import Clip
from .features import FeatureLayout, clip_to_features
from .stats_head import StatsHead, window_starts, window_statistics


class StyleCodes:
    """Style banks and code selection; mixed into :class:`motion.stylizer.Stylizer`."""

    @torch.no_grad()
    def _style_statistics(self, normed: list[np.ndarray], labels: list[int],
                          fit_prior: bool = True, n_orig: int | None = None) -> None:
        """Style bank, code Gaussian, statistics head and (``style_prior="diffusion"``) the
        diffusion prior from the training windows; the first ``n_orig`` clips are the originals
        (the rest mirror copies, which the statistics head leaves out, as statistics transfer
        does: a mirrored window's rotation statistics are not its style's)."""
        mus: dict[int, list[np.ndarray]] = {}
        w = self.config.window
        rot = self._rot_slice()
        head_codes, head_mean, head_std = [], [], []
        n_orig = len(normed) if n_orig is None else n_orig
        for i, (f, lab) in enumerate(zip(normed, labels)):
            starts = window_starts(len(f), w)
            x = torch.stack([torch.as_tensor(f[a:a + w].T) for a in starts])
            z = self.nets["ae"].encode(x)
            lab_t = torch.full((len(x),), lab) if self.config.supervised else None
            mus.setdefault(lab, []).append(self.nets["style"](z, lab_t)[0].numpy())
            if i >= n_orig:
                continue
            if self.config.stats_target == "window":
                mu, sd = window_statistics(f * self.std + self.mean, w, rot)
            else:                                         # the label's (statistics transfer's)
                target = self.feature_stats.get(self.styles[lab])
                if target is None:
                    continue
                mu, sd = (np.repeat(t[rot][None], len(x), 0) for t in target)
            head_codes.append(mus[lab][-1])
            head_mean.append(mu)
            head_std.append(sd)
        self.stats_head = None if not head_codes else StatsHead(self.config.stats_ridge).fit(
            np.concatenate(head_codes), np.concatenate(head_mean), np.concatenate(head_std))
        self.style_stats, self.style_bank = {}, {}
        for lab, arrs in mus.items():
            a = np.concatenate(arrs)
            self.style_bank[self.styles[lab]] = a.astype(np.float32)
            self.style_stats[self.styles[lab]] = (a.mean(0), a.std(0) + 1e-3)
        allc = np.concatenate(list(self.style_bank.values())).astype(np.float64)
        cov = np.cov(allc, rowvar=False) + 1e-4 * np.eye(allc.shape[1])
        self.code_mean = allc.mean(0).astype(np.float32)
        self.code_chol = np.linalg.cholesky(cov).astype(np.float32)
        if fit_prior and self.config.style_prior == "diffusion":
            from .style_prior import DiffusionStylePrior

            codes = torch.as_tensor(np.concatenate([np.concatenate(v) for v in mus.values()]))
            labs = torch.as_tensor(np.concatenate([[k] * sum(len(a) for a in v)
                                                   for k, v in mus.items()]), dtype=torch.long)
            self.prior = DiffusionStylePrior(self.config.style, len(self.styles)).fit(
                codes.float(), labs, steps=self.config.prior_steps, seed=self.config.seed)


    @torch.no_grad()
    def fit_statistics_head(self, clips: list[Clip | str | Path]) -> StatsHead:
        """Fit the statistics head (and the style bank) on ``clips`` for a fitted or loaded
        model, e.g. one saved before the head existed; the networks stay frozen."""
        self._require_fitted()
        clips = [self._as_clip(c) for c in clips]
        for c in clips:
            self._check_clip(c, "training")
        n_orig = len(clips)
        labels = [self.styles.index(str(c.meta.get("style", "unlabelled"))) for c in clips]
        feats = [clip_to_features(c, self.info)[0] for c in clips]
        if not self.feature_stats:                        # saved before round 7
            self._feature_statistics(feats, labels)
        if self.config.mirror_augment:                    # a mirror copy keeps its clip's label
            from .skeleton import mirror

            feats += [clip_to_features(mirror(c), self.info)[0] for c in clips]
            labels = labels * 2
        normed = [self._normalise(f).astype(np.float32) for f in feats]
        self._style_statistics(normed, labels, fit_prior=False, n_orig=n_orig)
        return self.stats_head

    def _rot_slice(self) -> slice:
        return FeatureLayout(len(self.template.names)).slice("rot6d")

    def predicted_statistics(self, codes: torch.Tensor) -> list[tuple[np.ndarray, np.ndarray]]:
        """Raw feature (mean, std) [D] per code from the statistics head: the rotation channels
        predicted, the others the training set's (``stats_align`` reads only the former)."""
        mean, std = self.stats_head.predict(codes)
        rot, out = self._rot_slice(), []
        for m, s in zip(mean, std):
            fm, fs = self.mean.astype(np.float32).copy(), self.std.astype(np.float32).copy()
            fm[rot], fs[rot] = m, s
            out.append((fm, fs))
        return out

    @torch.no_grad()
    def encode_style(self, reference: Clip | str | Path, n_samples: int = 1,
                     seed: int | None = None) -> torch.Tensor:
        """Style codes [n, S] of a reference clip (posterior mean when ``seed`` is None)."""
        self._require_fitted()
        ref = self._as_clip(reference)
        self._check_clip(ref, "style reference")
        x = torch.as_tensor(self._normalise(clip_to_features(ref, self.info)[0]).T[None])
        z = self.nets["ae"].encode(self._pad(x))
        label = ref.meta.get("style")
        lab = None
        if self.config.supervised and label in self.styles:
            lab = torch.tensor([self.styles.index(label)])
        mu, logvar = self.nets["style"](z, lab)
        if seed is None and n_samples == 1:
            return mu
        eps = randn((n_samples, mu.shape[1]), sample_generators(self._seeds(seed, n_samples)))
        return mu + eps * (0.5 * logvar).exp()

    @torch.no_grad()
    def style_code(self, style: str | Clip | str | Path | None, n_samples: int = 1,
                   seed: int | None = None) -> torch.Tensor:
        """Style codes [n, S] for a label, a reference clip (or its path) or the prior (None)."""
        self._require_fitted()
        s_dim = self.config.style
        gens = sample_generators(self._seeds(seed, n_samples))
        label = style if isinstance(style, str) and style in self.style_stats else None
        # the diffusion prior gives style=None draws; labels only in the unsupervised variant
        # (a supervised model picks a label's codes from its training windows)
        if self.prior is not None and ((style is None and self.config.style_prior == "diffusion")
                                       or (label is not None and not self.config.supervised)):
            idx = None if label is None else self.styles.index(label)
            return self.prior.sample(n_samples, idx, self._seeds(seed, n_samples))
        if style is None:
            eps = randn((n_samples, s_dim), gens)
            if self.config.style_prior == "posterior" and self.code_mean is not None:
                # ex-post density estimate (Ghosh et al. 2020, Sec. 4): a full-covariance
                # Gaussian fitted to the training windows' posterior means
                return (torch.as_tensor(self.code_mean)
                        + eps @ torch.as_tensor(self.code_chol).T)
            return eps
        if isinstance(style, str) and not (style.endswith(".bvh") or style.endswith(".gz")):
            if style not in self.style_stats:
                raise DataError(f"unknown style label {style!r}", field="style",
                                expected=f"one of {sorted(self.style_stats)} or a BVH path")
            return self._label_codes(style, n_samples, gens if seed is not None else None)
        return self.encode_style(style, n_samples, seed)

    def _label_codes(self, style: str, n: int, gens: list[torch.Generator] | None,
                     near: torch.Tensor | None = None, k_near: int = 5) -> torch.Tensor:
        """Codes [n, S] of training windows of ``style``.

        Without ``near``: the code nearest the label's mean (``gens`` None) or a seeded random
        one. With ``near`` (the content clip's own code): the label's code nearest to it, or a
        seeded draw among its ``k_near`` nearest; the code carries some motion-specific
        information, so an exemplar of similar motion keeps the content intact.
        """
        bank = self.style_bank.get(style)
        if bank is None:                                  # checkpoint without a bank
            bank = self.style_stats[style][0][None]
        bank_t = torch.as_tensor(bank, dtype=torch.float32)
        if near is not None:
            order = ((bank_t - near.reshape(1, -1)) ** 2).sum(1).argsort()[:k_near]
            if gens is None:
                return bank_t[order[0]].expand(n, -1).clone()
            return bank_t[[int(order[torch.randint(len(order), (1,), generator=g)])
                           for g in gens]]
        if gens is None:
            k = int(((bank_t - bank_t.mean(0)) ** 2).sum(1).argmin())
            return bank_t[k].expand(n, -1).clone()
        idx = [int(torch.randint(len(bank_t), (1,), generator=g)) for g in gens]
        return bank_t[idx]

    def _seeds(self, seed: int | None, n: int) -> list[int]:
        base = self.config.seed if seed is None else seed
        return [base * 1000 + k for k in range(n)]

