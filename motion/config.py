"""Plain configuration of the GenMoStyle stylizer (Guo et al. ICLR 2024, Sec. 4 and App. B).

Kept free of torch so that the pipeline's config (``genpipes list``, YAML loading) can use it
without importing the networks. :class:`ModelConfig` holds the sizes, losses and budget;
:class:`StylizerConfig` adds what the pipeline takes from elsewhere (``data.fps``,
``trainer.seed``). The defaults are the paper's setting: 160-frame windows at 30 fps and
~19 M parameters (hidden 384, latent 256, content 256, style 128, depth 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class ModelConfig:
    """Sizes, loss weights and training budget of the stylizer.

    Attributes:
        window: frames per training window (GenMoStyle: 160 at 30 fps).
        hidden, latent, content, style, depth: widths of the networks (``motion.model``).
        supervised: use style labels (label-paired swap, label input of the style encoder).
        cross_clip_swap: supervised swap partner from a different clip of the same label
            (otherwise another window of the same clip).
        style_label: feed the label to the style encoder (the paper's supervised variant).
        w_rec, w_swap, w_cycle: latent + feature L1 reconstruction terms.
        w_kl: KL of q(s | M) to N(0, I); w_kl_pair: symmetric KL between two windows of a
            clip; w_kl_label: symmetric KL between windows of two clips of one label.
        w_style_cls: supervised only: an auxiliary latent style classifier, trained on real
            latents, must recognise the given style in the hetero-style (cycle) outputs.
        w_content_adv: supervised only: a critic learns the style label from the content code;
            the content encoder is trained to make its prediction uniform.
        w_feat_stats: supervised only: the hetero-style outputs' decoded per-channel feature
            mean/std over time must match the target label's (a feature-statistics style
            loss; 0 = the paper's objective; 1.0 was best on Bandai-Namco, 5.0 broke the
            content).
        w_style_rec: StarGAN v2's style reconstruction: the style encoder (frozen in this term)
            must recover the injected code from a hetero-style output (0 = the paper).
        w_rot6d: the hetero-style outputs' decoded 6-D rotations must have orthonormal columns
            (Zhou et al. 2019); keeps unseen content/style pairs on the rotation manifold (0 = the
            paper). On Bandai-Namco (900 stylizer steps) these three defaults together raised
            style accuracy 0.40 -> 0.70 and content accuracy 0.78 -> 0.81 over round 4's.
        w_style_adv: content adversary on the style code (needs ``meta['content']`` labels on
            at least two contents): a critic learns the action from the style code's posterior
            mean, the style encoder makes it uniform (0 = off).
        w_out_cls: supervised only: cross-entropy of a feature-space style classifier, trained
            on the training clips for ``out_cls_steps`` steps before stage 2 and then frozen, on
            the decoded hetero-style outputs (0 = off; not the evaluation classifier). On
            Bandai-Namco (same AE, 900 stylizer steps) 0.5 raised style accuracy 0.70 -> 0.74,
            content accuracy 0.81 -> 0.82 and cut the style FID 2822 -> 1223 (the default). On
            the round-8 AE (fixed mirrors) it turned the arms/shoulders away from the content
            unless ``align_in_loop`` is on (alone: style 0.10 vs 0.75 without the term).
        w_rot_stats: supervised only: the ``w_feat_stats`` term on the 6-D rotation channels
            alone, with its own weight (0 = off).
        w_fk: forward-kinematics consistency of the decoded hetero-style outputs (FK of the
            rotations must give the joint positions; ``motion.fk_consistency``; 0 = off). On
            Bandai-Namco 1.0 alone gave style 0.73 / content 0.82 / FID 1286 (rotation-channel
            FID 2012 -> 1084); with ``w_out_cls`` 0.5 it collapsed (0.31 / 0.63) while mirrored
            chests were on the other rotation branch, and after that fix gave 0.53 / 0.82 / 2361,
            below ``w_out_cls`` alone.
        stats_align: at inference, the stylized clip's 6-D rotation channels are re-coloured
            with the target's per-channel mean/std over time (AdaIN on features, as statistics
            transfer does): a label's averaged over its training clips, a reference clip's own;
            blended with weight ``stats_align`` (0 = off; prior samples are never aligned). On
            Bandai-Namco (OCLS model) 1.0 raised style accuracy 0.74 -> 0.95 at equal content
            accuracy and cut the style FID 1223 -> 464 (statistics transfer: 0.945, 487).
        align_in_loop: supervised only: in training, the decoded-output terms (rotation
            validity, output classifier, FK, statistics) read the hetero-style outputs after the
            ``stats_align`` re-colouring with this weight (torch, per window), so the generator
            learns the residual on top of the aligned statistics (0 = off). On Bandai-Namco
            (AE on the fixed mirror copies, 900 OCLS steps) 1.0 raised style accuracy 0.94 ->
            0.95 with ``stats_align`` (content 0.82 both, style FID 480 -> 491) and 0.10 -> 0.68
            without it (content 0.22 -> 0.79, FID 38028 -> 6730): the default.
        stats_source: where label and reference-clip stylizations take the ``stats_align``
            statistics from: ``borrowed`` (the label's training clips', the reference clip's
            own) or ``predicted`` (the statistics head's prediction from the style code used).
        prior_stats_align: weight of the alignment of prior samples (``style=None``) with the
            statistics the head predicts from each sampled code (0 = off, as before round 8b;
            needs the head, fitted with the style bank; ``motion.stats_head``). On Bandai-Namco
            (round-8 model, diffusion prior) 1.0 took the prior samples' content accuracy 0.55
            -> 0.82 and style FID (all styles) 111800 -> 3961.
        stats_target: what the statistics head regresses the training windows' codes on:
            ``label`` (the window's label statistics, statistics transfer's; default) or
            ``window`` (the window's own rotation mean/std). Mirror copies are left out. On
            Bandai-Namco ``window`` targets gave prior content accuracy 0.28 vs 0.82.
        stats_ridge: ridge penalty of the statistics head (codes -> rotation-channel mean and
            log std).
        injection: where the generator injects the style code: ``blocks`` (GenMoStyle: AdaIN in
            the residual blocks, one linear map each) or ``all`` (AdaIN after every hidden
            convolution, each with its own two-layer style MLP; the default).
        label_code: how a style label picks its code at inference: ``near`` (the label's
            training code nearest the content's own code), ``bank`` (nearest the label's mean,
            or a seeded random training code), ``encode`` (the content encoded with the target
            label; needs ``style_label``).
        style_prior: what ``style=None`` samples: ``diffusion`` (default since round 8b: an
            EDM prior over the training windows' style codes; in the unsupervised variant also
            used for labels), ``gaussian`` (N(0, I), the paper) or ``posterior`` (a
            full-covariance Gaussian fitted to the training codes). On Bandai-Namco (round-8
            model, aligned to predicted statistics) the diffusion prior gave content accuracy
            0.82 / style FID 3961 vs N(0, I) 0.35 / 4780; unaligned 0.55 / 111800 for both.
            Earlier: ``posterior`` won in round 3, ``gaussian`` with round 5's defaults.
        ae_steps, stylizer_steps: the two stages' budgets.
    """

    window: int = 160
    hidden: int = 384
    latent: int = 256
    content: int = 256
    style: int = 128
    depth: int = 2
    supervised: bool = True
    mirror_augment: bool = True
    batch_size: int = 32
    lr: float = 2e-4
    ae_steps: int = 20000
    stylizer_steps: int = 40000
    steps_per_epoch: int = 50
    w_rec: float = 1.0
    w_swap: float = 1.0
    w_cycle: float = 0.5
    w_kl: float = 1e-2
    w_kl_pair: float = 1e-2
    w_kl_label: float = 0.0
    w_style_cls: float = 0.2
    w_content_adv: float = 0.1
    w_feat_stats: float = 1.0
    w_style_rec: float = 1.0
    w_rot6d: float = 1.0
    w_style_adv: float = 0.0
    w_out_cls: float = 0.5
    out_cls_steps: int = 300
    w_fk: float = 0.0
    w_rot_stats: float = 0.0
    stats_align: float = 1.0
    align_in_loop: float = 1.0
    stats_source: str = "borrowed"
    prior_stats_align: float = 1.0
    stats_target: str = "label"
    stats_ridge: float = 1.0
    injection: str = "all"
    cross_clip_swap: bool = True
    style_label: bool = True
    label_code: str = "near"
    label_dropout: float = 0.2
    style_prior: str = "diffusion"
    prior_steps: int = 500           # training steps of the diffusion prior over style codes


@dataclass
class StylizerConfig(ModelConfig):
    """:class:`ModelConfig` plus the clip frame rate and the seed."""

    fps: float = 30.0
    seed: int = 0

    @classmethod
    def tiny(cls, **kw: Any) -> StylizerConfig:
        """A few-second CPU configuration for tests and demos."""
        base = dict(window=64, hidden=48, latent=32, content=32, style=16, depth=1,
                    batch_size=16, lr=1e-3, ae_steps=60, stylizer_steps=60, steps_per_epoch=20,
                    out_cls_steps=30)
        return cls(**{**base, **kw})
