"""Lightning training of GenMoStyle (Guo et al. ICLR 2024, Sec. 3.2-3.3): AE, then the stylizer.

Stage 1 (:class:`AutoencoderModule`): L1 reconstruction of normalised features through the motion
autoencoder, plus the global-motion predictor (root velocity from the local motion).

Stage 2 (:class:`StylizerModule`), on the frozen autoencoder's latents of windows from
:class:`WindowPairs`: ``M1, M2`` (one clip), ``S`` (the swap partner: in the supervised variant a
window of a different clip with the same style label, so it shares the style but not the content;
otherwise ``M2``) and ``N`` (a window of a random other clip):

* reconstruction  ``G(c(M1), s(M1)) = M1``;
* swap (homo-style) ``G(c(M1), s(S)) = M1``;
* cycle  ``G(c(G(c(M1), s(N))), s(G(c(N), s(M1)))) = M1``;
* ``KL(q(s|M1) || N(0, I))``, the symmetric KL between ``q(s|M1)`` and ``q(s|M2)`` and,
  optionally (``w_kl_label``), between ``q(s|M1)`` and ``q(s|S)``;
* optionally (``w_style_cls``, supervised) an auxiliary latent style classifier (StarGAN's
  classification loss): trained on real latents, it must recognise M1's style in
  ``G(c(N), s(M1))`` and N's in ``G(c(M1), s(N))``;
* optionally (``w_style_rec``) StarGAN v2's style reconstruction: re-encoding either output
  must give back the injected style code (through frozen encoder weights);
* optionally (``w_rot6d``) a rotation-validity term on the same outputs: their decoded 6-D
  rotations must stay orthonormal (unsupervised hetero-style latents otherwise decode to
  near-parallel columns, i.e. arbitrary rotations after Gram-Schmidt);
* optionally (``w_feat_stats``, supervised) a feature-statistics term on the same two outputs:
  the decoded features' per-channel temporal mean and standard deviation must match the given
  style's (averaged over that label's training clips), the statistics AdaIN transfers (Huang &
  Belongie 2017, Eq. 8) and the Gram-free style loss of Li et al. 2017 ("Demystifying Neural
  Style Transfer", Eq. 8, BN statistics).

* optionally (``w_style_adv``, needs content labels) a content adversary on the style code: a
  critic learns the clip's content (action) label from the posterior mean; the style encoder is
  trained to make its prediction uniform, so the code carries style, not action (the paper's
  disentanglement; Ganin & Lempitsky 2015 in the frozen-critic form used for ``w_content_adv``);
* optionally (``w_out_cls``, supervised) a style-classification loss on the decoded hetero-style
  outputs through a feature-space style classifier trained beforehand on the training clips
  only and frozen (not the evaluation classifier);
* optionally (``w_rot_stats``, supervised) the same statistics on the 6-D rotation channels
  only, weighted on their own (a rotation-space feature-statistics term);
* optionally (``w_fk``) forward-kinematics consistency of the same outputs: FK of the decoded
  rotations must give the decoded joint positions (``motion.fk_consistency``), since a clip is
  written from its rotations.
* optionally (``align_in_loop``, supervised) the decoded-output terms above read the outputs
  after the inference-time ``stats_align`` (AdaIN over time of the 6-D rotation channels to the
  target label's statistics, blended with this weight), so the generator learns the residual on
  top of the aligned statistics instead of the statistics themselves.

Each reconstruction is an L1 in latent space plus an L1 on the decoded features. The supervised
variant feeds the style label to the style encoder (dropped with probability ``label_dropout``
so that an unlabelled reference clip still encodes).
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch

from .fk_consistency import fk_consistency
from .model import (
    CodeClassifier,
    ContentEncoder,
    Generator,
    GlobalMotionPredictor,
    LatentStyleClassifier,
    MotionAutoencoder,
    StyleEncoder,
    kl_normal,
)
from .windows import WindowPairs  # noqa: F401  (re-exported: fitting and tests)


class AutoencoderModule(pl.LightningModule):
    """Stage 1: motion autoencoder + global-motion predictor on normalised features."""

    def __init__(self, ae: MotionAutoencoder, gmp: GlobalMotionPredictor, lr: float = 2e-4,
                 latent_reg: float = 1e-3) -> None:
        super().__init__()
        self.ae, self.gmp, self.lr, self.latent_reg = ae, gmp, lr, latent_reg

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        x = torch.cat([batch["x1"], batch["x2"]])
        z = self.ae.encode(x)
        rec = (self.ae.decode(z) - x).abs().mean()
        root = (self.gmp(x[:, 3:]) - x[:, :3]).abs().mean()
        loss = rec + root + self.latent_reg * z.abs().mean()
        self.log_dict({"ae_rec": rec, "root": root}, prog_bar=True, batch_size=len(x))
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=1e-4)


class StylizerModule(pl.LightningModule):
    """Stage 2: content/style encoders and the AdaIN generator on frozen AE latents."""

    def __init__(self, ae: MotionAutoencoder, content: ContentEncoder, style: StyleEncoder,
                 generator: Generator, *, supervised: bool = True, lr: float = 2e-4,
                 w_rec: float = 1.0, w_swap: float = 1.0, w_cycle: float = 0.5,
                 w_kl: float = 1e-2, w_kl_pair: float = 1e-2, w_kl_label: float = 0.0,
                 w_feat: float = 1.0, label_dropout: float = 0.2, w_style_cls: float = 0.0,
                 w_content_adv: float = 0.0, n_styles: int = 0, w_feat_stats: float = 0.0,
                 style_stats: torch.Tensor | None = None, w_style_rec: float = 0.0,
                 w_rot6d: float = 0.0, rot6d: tuple[int, int] | None = None,
                 rot6d_norm: torch.Tensor | None = None, w_style_adv: float = 0.0,
                 n_contents: int = 0, w_out_cls: float = 0.0, out_classifier: Any = None,
                 w_fk: float = 0.0, fk: dict[str, Any] | None = None,
                 w_rot_stats: float = 0.0, align_in_loop: float = 0.0) -> None:
        super().__init__()
        self.ae = ae.requires_grad_(False)
        self.content, self.style, self.generator = content, style, generator
        self.critic = None
        if supervised and w_style_cls > 0 and n_styles > 1:
            hidden = generator.inp.out_channels
            self.critic = LatentStyleClassifier(generator.out.out_channels, hidden, n_styles)
        self.content_critic = None
        if supervised and w_content_adv > 0 and n_styles > 1:
            ch = generator.inp.in_channels
            self.content_critic = LatentStyleClassifier(ch, generator.inp.out_channels, n_styles)
        self.style_critic = None
        if w_style_adv > 0 and n_contents > 1:
            s_dim = style.head[-1].out_features // 2
            self.style_critic = CodeClassifier(s_dim, 2 * max(s_dim, 32), n_contents)
        # frozen feature-space style classifier (a motion.metrics.ClipClassifier's network and
        # normalisation); kept in Lightning checkpoints, not in the saved Stylizer
        self.out_cls = None
        if w_out_cls and supervised and out_classifier is None:
            raise ValueError("w_out_cls needs out_classifier (a trained ClipClassifier)")
        if w_out_cls and supervised:
            self.out_cls = out_classifier.model.eval().requires_grad_(False)
            self.register_buffer("out_cls_norm", torch.as_tensor(
                np.stack([out_classifier.mean, out_classifier.std]), dtype=torch.float32))
        if w_fk and fk is None:
            raise ValueError("w_fk needs fk: rot6d/ric bounds, norm [2, D], offsets, parents")
        self.fk = fk if w_fk else None
        self.supervised, self.lr, self.label_dropout = supervised, lr, label_dropout
        if (w_feat_stats or w_rot_stats) and supervised and style_stats is None:
            raise ValueError("w_feat_stats / w_rot_stats need style_stats [n_styles, 2, D]")
        if (w_rot_stats or align_in_loop) and rot6d is None:
            raise ValueError("w_rot_stats / align_in_loop need rot6d (channel bounds)")
        if align_in_loop and (style_stats is None or not supervised):
            raise ValueError("align_in_loop needs style_stats and the supervised variant")
        self.align_in_loop = float(align_in_loop)
        self.rot_bounds = rot6d
        # per-label (mean, std) of the normalised features [K, 2, D]; not a trained parameter
        use = (style_stats is not None and supervised
               and bool(w_feat_stats or w_rot_stats or align_in_loop))
        self.register_buffer("style_stats", torch.as_tensor(style_stats, dtype=torch.float32)
                             if use else None)
        self.w = dict(rec=w_rec, swap=w_swap, cycle=w_cycle, kl=w_kl, kl_pair=w_kl_pair,
                      kl_label=w_kl_label, feat=w_feat, style_cls=w_style_cls, critic=1.0,
                      content_adv=w_content_adv, content_critic=1.0,
                      feat_stats=w_feat_stats, style_rec=w_style_rec, rot6d=w_rot6d,
                      style_adv=w_style_adv, style_critic=1.0, out_cls=w_out_cls, fk=w_fk,
                      rot_stats=w_rot_stats)
        if w_rot6d and (rot6d is None or rot6d_norm is None):
            raise ValueError("w_rot6d needs rot6d (channel bounds) and rot6d_norm [2, C]")
        # (mean, std) of the 6-D rotation channels, to read decoded outputs in radians' units
        self.rot6d = rot6d if w_rot6d else None
        self.register_buffer("rot6d_norm", torch.as_tensor(rot6d_norm, dtype=torch.float32)
                             if w_rot6d else None)

    def _sample(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return mu + torch.randn_like(mu) * (0.5 * logvar).exp()

    def _rec(self, z_hat: torch.Tensor, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        loss = (z_hat - z).abs().mean()
        if self.w["feat"]:
            loss = loss + self.w["feat"] * (self.ae.decode(z_hat) - x).abs().mean()
        return loss

    def _labels(self, lab: torch.Tensor) -> torch.Tensor | None:
        if not self.supervised:
            return None
        lab = lab.clone()
        drop = torch.rand(lab.shape, device=lab.device) < self.label_dropout
        lab[drop] = self.style.n_styles
        return lab

    def _style_terms(self, z1: torch.Tensor, lab1: torch.Tensor, m_to_n: torch.Tensor,
                     lab_n: torch.Tensor, n_to_m: torch.Tensor) -> dict[str, torch.Tensor]:
        """Auxiliary classifier (StarGAN, Choi et al. 2018, Eq. 2-3) on latents.

        The critic learns the labels of real latents; the hetero-style outputs must be
        classified as the style they were given (through frozen critic weights).
        """
        ce = torch.nn.functional.cross_entropy
        frozen = {k: v.detach() for k, v in self.critic.named_parameters()}
        fake = torch.cat([n_to_m, m_to_n])
        logits = torch.func.functional_call(self.critic, frozen, (fake,))
        return {"critic": ce(self.critic(z1.detach()), lab1),
                "style_cls": ce(logits, torch.cat([lab1, lab_n]))}

    def _decoded(self, z_hat: torch.Tensor | None, y: torch.Tensor | None) -> torch.Tensor:
        """Decoded features of ``z_hat``, or ``y`` when the caller decoded them already."""
        return self.ae.decode(z_hat) if y is None else y

    def _stats_term(self, z_hat: torch.Tensor | None, lab: torch.Tensor,
                    channels: tuple[int, int] | None = None,
                    y: torch.Tensor | None = None) -> torch.Tensor:
        """L1 between the decoded output's channel mean/std over time and label ``lab``'s
        (Li et al. 2017, Eq. 8) over ``channels`` (default: all but the foot contacts)."""
        a, b = channels or (0, self.style_stats.shape[-1] - 4)
        y = self._decoded(z_hat, y)[:, a:b]
        target = self.style_stats[lab][..., a:b]                       # [B, 2, b - a]
        mu, sd = y.mean(-1), (y.var(-1, unbiased=False) + 1e-6).sqrt()
        return (mu - target[:, 0]).abs().mean() + (sd - target[:, 1]).abs().mean()

    def _style_rec_term(self, fakes: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Style reconstruction (StarGAN v2, Choi et al. 2020, Eq. 2): the style encoder's
        posterior mean of an output, label withheld, must be the code that was injected.

        The encoder's weights are frozen in this term and the injected code is detached, so only
        the generator (and the content encoder) learn from it: they must put the code into the
        output, the encoder cannot satisfy the term by collapsing its codes.
        """
        frozen = {k: v.detach() for k, v in self.style.named_parameters()}
        mu = torch.func.functional_call(self.style, frozen, (fakes, None))[0]
        return (mu - codes.detach()).abs().mean()

    def _rot6d_term(self, z_hat: torch.Tensor | None, y: torch.Tensor | None = None
                    ) -> torch.Tensor:
        """Distance of the decoded 6-D rotations from the rotation manifold (Zhou et al. 2019,
        Sec. 4: the two columns of a rotation matrix are orthonormal): mean over joints and
        frames of ``| |a| - 1 | + | |b| - 1 | + |a . b|``."""
        a, b = self.rot6d
        y = self._decoded(z_hat, y)[:, a:b]
        y = y * self.rot6d_norm[1][:, None] + self.rot6d_norm[0][:, None]
        r = y.reshape(y.shape[0], -1, 3, 2, y.shape[-1])               # [B, J, 3, 2, T]
        c1, c2 = r[:, :, :, 0], r[:, :, :, 1]
        return ((c1.norm(dim=2) - 1).abs() + (c2.norm(dim=2) - 1).abs()
                + (c1 * c2).sum(2).abs()).mean()

    def _out_cls_term(self, fakes: torch.Tensor | None, labels: torch.Tensor,
                      y: torch.Tensor | None = None) -> torch.Tensor:
        """Cross-entropy of the frozen feature-space style classifier on decoded outputs (the
        classifier reads features normalised its own way; ``Dropout`` off)."""
        self.out_cls.eval()
        mean, std = self.out_cls_norm
        y = (self._decoded(fakes, y) - mean[:, None]) / std[:, None]
        return torch.nn.functional.cross_entropy(self.out_cls(y), labels)

    def _fk_term(self, fakes: torch.Tensor | None, y: torch.Tensor | None = None
                 ) -> torch.Tensor:
        """FK consistency of the decoded outputs (``motion.fk_consistency``)."""
        f, y = self.fk, self._decoded(fakes, y)
        return fk_consistency(y, f["rot6d"], f["ric"], f["norm"].to(y), f["offsets"].to(y),
                              f["parents"])

    def _align(self, y: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """AdaIN over time (Huang & Belongie 2017, Eq. 8) of the 6-D rotation channels of decoded
        features ``y`` [B, D, T] to the labels' statistics, blended with ``align_in_loop``: the
        inference-time ``stats_align`` (``motion.baselines.align_statistics``) in torch."""
        a, b = self.rot_bounds
        f = y[:, a:b]
        mu, sd = f.mean(-1, keepdim=True), (f.var(-1, unbiased=False, keepdim=True) + 1e-6).sqrt()
        target = self.style_stats[labels][..., a:b, None]               # [B, 2, C, 1]
        moved = (f - mu) / sd * target[:, 1] + target[:, 0]
        f = (1 - self.align_in_loop) * f + self.align_in_loop * moved
        return torch.cat([y[:, :a], f, y[:, b:]], 1)

    def _decoded_output_terms(self, n_to_m: torch.Tensor, m_to_n: torch.Tensor,
                              lab: torch.Tensor, lab_n: torch.Tensor) -> dict[str, torch.Tensor]:
        """The terms on the decoded hetero-style outputs, which are decoded once for all (and
        aligned as at inference with ``align_in_loop``)."""
        stats = self.style_stats is not None
        if not (self.rot6d is not None or self.out_cls is not None or self.fk is not None
                or (stats and (self.w["feat_stats"] or self.w["rot_stats"]))):
            return {}
        y = self.ae.decode(torch.cat([n_to_m, m_to_n]))
        if self.align_in_loop:
            y = self._align(y, torch.cat([lab, lab_n]))
        y_nm, y_mn = y[:len(n_to_m)], y[len(n_to_m):]
        out = {}
        if self.rot6d is not None:
            out["rot6d"] = self._rot6d_term(None, y)
        if self.out_cls is not None:
            out["out_cls"] = self._out_cls_term(None, torch.cat([lab, lab_n]), y)
        if self.fk is not None:
            out["fk"] = self._fk_term(None, y)
        if stats and self.w["feat_stats"]:
            out["feat_stats"] = 0.5 * (self._stats_term(None, lab_n, y=y_mn)
                                       + self._stats_term(None, lab, y=y_nm))
        if stats and self.w["rot_stats"]:
            rb = self.rot_bounds
            out["rot_stats"] = 0.5 * (self._stats_term(None, lab_n, rb, y_mn)
                                      + self._stats_term(None, lab, rb, y_nm))
        return out

    def _style_adv_terms(self, mu: torch.Tensor, content: torch.Tensor
                         ) -> dict[str, torch.Tensor]:
        """Content adversary on the style code: the critic learns the content label from the
        detached posterior mean; the style encoder pushes its (frozen) prediction to uniform."""
        frozen = {k: v.detach() for k, v in self.style_critic.named_parameters()}
        logp = torch.func.functional_call(self.style_critic, frozen, (mu,)).log_softmax(-1)
        return {"style_critic": torch.nn.functional.cross_entropy(
                    self.style_critic(mu.detach()), content),
                "style_adv": -logp.mean()}

    def _content_terms(self, c: torch.Tensor, lab: torch.Tensor) -> dict[str, torch.Tensor]:
        """Style-adversarial content code: a critic learns the style from ``c`` (detached); the
        content encoder pushes the critic's prediction (frozen weights) towards uniform."""
        frozen = {k: v.detach() for k, v in self.content_critic.named_parameters()}
        logp = torch.func.functional_call(self.content_critic, frozen, (c,)).log_softmax(-1)
        return {"content_critic": torch.nn.functional.cross_entropy(
                    self.content_critic(c.detach()), lab),
                "content_adv": -logp.mean()}

    def losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """All GenMoStyle terms for one batch (see the module docstring)."""
        x1, x2 = batch["x1"], batch["x2"]
        xs, xn = batch.get("xs", x2), batch.get("xn", x1.roll(1, 0))
        lab_n_raw = batch.get("label_n", batch["label"].roll(1, 0))
        with torch.no_grad():
            self.ae.eval()
            z1, z2, zs, zn = (self.ae.encode(x) for x in (x1, x2, xs, xn))
        lab, lab_n = self._labels(batch["label"]), self._labels(lab_n_raw)
        c1 = self.content(z1)
        mu1, lv1 = self.style(z1, lab)
        mu2, lv2 = self.style(z2, lab)
        mus, lvs = (mu2, lv2) if xs is x2 else self.style(zs, lab)
        s1, ss = self._sample(mu1, lv1), self._sample(mus, lvs)
        out = {"rec": self._rec(self.generator(c1, s1), z1, x1),
               "swap": self._rec(self.generator(c1, ss), z1, x1)}
        if len(x1) > 1 or "xn" in batch:
            mun, lvn = self.style(zn, lab_n)
            s_n = self._sample(mun, lvn)
            m_to_n = self.generator(c1, s_n)                           # M1 in N's style
            n_to_m = self.generator(self.content(zn), s1)              # N in M1's style
            mu_b, lv_b = self.style(n_to_m, lab)
            cyc = self.generator(self.content(m_to_n), self._sample(mu_b, lv_b))
            out["cycle"] = self._rec(cyc, z1, x1)
            if self.critic is not None:
                out.update(self._style_terms(z1, batch["label"], m_to_n, lab_n_raw, n_to_m))
            if self.w["style_rec"]:
                out["style_rec"] = self._style_rec_term(torch.cat([n_to_m, m_to_n]),
                                                        torch.cat([s1, s_n]))
            out.update(self._decoded_output_terms(n_to_m, m_to_n, batch["label"], lab_n_raw))
        if self.content_critic is not None:
            out.update(self._content_terms(c1, batch["label"]))
        if self.style_critic is not None and "content" in batch:
            out.update(self._style_adv_terms(mu1, batch["content"]))
        out["kl"] = kl_normal(mu1, lv1).mean()
        out["kl_pair"] = 0.5 * (kl_normal(mu1, lv1, mu2, lv2)
                                + kl_normal(mu2, lv2, mu1, lv1)).mean()
        if self.w["kl_label"] and xs is not x2:     # same label, different clip and content
            out["kl_label"] = 0.5 * (kl_normal(mu1, lv1, mus, lvs)
                                     + kl_normal(mus, lvs, mu1, lv1)).mean()
        return out

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        parts = self.losses(batch)
        loss = sum(self.w[k] * v for k, v in parts.items())
        self.log_dict({k: v for k, v in parts.items() if k in ("rec", "swap", "kl", "style_cls",
                                                                "feat_stats", "style_rec",
                                                                "rot6d", "style_adv", "out_cls",
                                                                "fk", "rot_stats")},
                      prog_bar=True, batch_size=len(batch["x1"]))
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        params = [p for n, p in self.named_parameters()
                  if not n.startswith("ae.") and p.requires_grad]
        return torch.optim.AdamW(params, lr=self.lr, weight_decay=1e-4)
