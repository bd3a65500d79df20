"""The training engines: a base for segmentation networks and JAS-GAN's adversarial iteration on top of it.

MONAI's ``GanTrainer`` feeds latents to its generator; JAS-GAN's generator Gls segments the image
and its discriminator T is conditioned on that image, so these ``monai.engines.Trainer`` subclasses
only replace the iteration. Handlers, metrics, checkpoints and logging are MONAI/Ignite's.
:class:`SegmentationTrainer` holds what every trainer here shares (the batch on the device, mixed precision,
the network's optimiser step with gradients averaged over ranks, the output dict and its logged terms);
:class:`JasGanTrainer` and :class:`~bundle.training.multitask.MultiTaskTrainer` add their iteration.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import torch
from monai.engines import Trainer
from monai.engines.utils import IterationEvents, default_metric_cmp_fn, default_prepare_batch
from monai.inferers import Inferer, SimpleInferer
from monai.utils import CommonKeys as Keys
from torch.optim import Optimizer

from bundle.training.distributed import average_gradients, parameters_outside, unwrap
from bundle.training.losses import UncertaintyWeightedLoss, discriminator_loss, feature_matching_loss

AMP_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}
"""Mixed-precision types: bfloat16 (no gradient scaling needed) or float16 (a gradient scaler per optimiser)."""


logger = logging.getLogger(__name__)


class SegmentationTrainer(Trainer):
    """One optimiser step of a segmentation network per batch of image patches I with targets Y = [LA, scar].

    Subclasses implement ``_iteration``: :meth:`_inputs` (the batch on the device, the output dict started),
    forward passes under :meth:`autocast`, :meth:`_network_step` (backward of the network's loss, gradients of the
    optimiser's parameters outside a DDP wrapper averaged over ranks, one step) and :meth:`_report` (the prediction,
    the loss and the trainer's :attr:`logged_terms` into the output, which ``StatsHandler`` and TensorBoard log
    through :func:`logged_values`).

    ``network`` may be a ``DistributedDataParallel`` wrapper (``configs/multi_gpu_train.yaml``). ``amp`` runs the
    forward passes in ``amp_dtype`` under ``torch.autocast`` on the engine's device, with a ``GradScaler`` for
    float16; the losses are computed in float32.
    """

    logged_terms: tuple[str, ...] = ()
    """Scalar loss terms of this trainer's output, logged after ``loss``."""

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: Any,
        network: torch.nn.Module,
        optimizer: Optimizer,
        loss_function: torch.nn.Module,
        epoch_length: int | None = None,
        non_blocking: bool = False,
        prepare_batch: Callable = default_prepare_batch,
        inferer: Inferer | None = None,
        postprocessing: Callable | None = None,
        key_train_metric: dict | None = None,
        additional_metrics: dict | None = None,
        metric_cmp_fn: Callable = default_metric_cmp_fn,
        train_handlers: Sequence | None = None,
        decollate: bool = False,
        optim_set_to_none: bool = True,
        amp: bool = False,
        amp_dtype: str = "bfloat16",
    ) -> None:
        if amp_dtype not in AMP_DTYPES:
            raise ValueError(f"amp_dtype {amp_dtype!r} is not one of {sorted(AMP_DTYPES)}")
        super().__init__(
            device=device, max_epochs=max_epochs, data_loader=train_data_loader, epoch_length=epoch_length,
            non_blocking=non_blocking, prepare_batch=prepare_batch, postprocessing=postprocessing,
            key_metric=key_train_metric, additional_metrics=additional_metrics, metric_cmp_fn=metric_cmp_fn,
            handlers=train_handlers, decollate=decollate,
        )
        self.network = network
        self.optimizer = optimizer
        self.loss_function = loss_function
        self.inferer = SimpleInferer() if inferer is None else inferer
        self.optim_set_to_none = optim_set_to_none
        self.amp = bool(amp)
        self.amp_dtype = AMP_DTYPES[amp_dtype]
        self.scaled = self.amp and self.amp_dtype == torch.float16
        self.g_scaler = torch.amp.GradScaler(torch.device(device).type, enabled=self.scaled)
        self.unsynchronised = parameters_outside(network, optimizer)
        self.register_events(*IterationEvents)

    def autocast(self) -> torch.autocast:
        """The forward passes' mixed-precision context (disabled unless ``amp``)."""
        return torch.autocast(self.state.device.type, dtype=self.amp_dtype, enabled=self.amp)

    def _inputs(self, engine: SegmentationTrainer, batchdata: dict | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(image, target) of the batch on the engine's device; the output dict starts with them."""
        if batchdata is None:
            raise ValueError("must provide batch data for current iteration.")
        image, target = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking)
        image, target = torch.as_tensor(image), torch.as_tensor(target)
        engine.network.train()
        engine.state.output = {Keys.IMAGE: image, Keys.LABEL: target}
        return image, target

    def _network_step(self, engine: SegmentationTrainer, loss: torch.Tensor) -> None:
        """Backward of ``loss`` into the optimiser's parameters only, averaged over ranks, then one step."""
        engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
        # gradients only for what this step updates (the network and the loss weights): T's weight gradients of the
        # adversarial term would be computed and thrown away (about 15 % of an iteration on a CPU)
        params = [p for group in engine.optimizer.param_groups for p in group["params"] if p.requires_grad]
        engine.g_scaler.scale(loss).backward(inputs=params)
        average_gradients(engine.unsynchronised)
        engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
        engine.g_scaler.step(engine.optimizer)
        engine.g_scaler.update()
        engine.fire_event(IterationEvents.MODEL_COMPLETED)

    def _report(self, engine: SegmentationTrainer, pred: torch.Tensor, loss: torch.Tensor,
                terms: dict[str, torch.Tensor]) -> dict:
        """The iteration's output: the batch, ``pred``, ``loss`` and the :attr:`logged_terms` of ``terms``."""
        engine.state.output.update({Keys.PRED: pred.detach(), Keys.LOSS: loss.detach(),
                                    **{name: terms[name].item() for name in engine.logged_terms}})
        return engine.state.output


class JasGanTrainer(SegmentationTrainer):
    """Adversarially regularised training of the cascade Gls with the joint discriminator T (Eq. 3, 5, 6).

    Per iteration, on a batch of image patches I with targets Y = [LA, scar]:

    1. Gls(I) gives [LA, scar] logits; their sigmoid is the prediction Yhat.
    2. T step (skipped when ``discriminator`` is None): minimise the per-pixel binary cross-entropy of
       T(Y, I) -> real and T(Yhat.detach(), I) -> fake, i.e. maximise Ld (Eq. 3).
    3. Gls step: minimise Ls (Eq. 5, uncertainty-weighted) + ``adv_weight`` * Lg, with Lg the feature
       matching between T's features of (Y, I) and (Yhat, I) (Eq. 6, lambda3 = ``adv_weight``).

    ``loss_function`` must be a :class:`~bundle.training.losses.UncertaintyWeightedLoss` (its log-variances
    belong in ``optimizer``). Logged: ``loss``, ``seg_loss`` (Ls), ``ce_la``, ``dice_scar``, ``adv_loss`` (Lg),
    ``d_loss`` and the loss weights ``lambda1``, ``lambda2``.

    With DDP the gradients of the optimiser's other parameters (the loss log-variances) are averaged over the
    ranks, and T's generator-step pass runs unwrapped (its gradients are not computed, so DDP must not wait for
    them). With float16 ``amp`` T has its own ``GradScaler``.
    """

    logged_terms = ("seg_loss", "ce_la", "dice_scar", "adv_loss", "d_loss", "lambda1", "lambda2")

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: Any,
        network: torch.nn.Module,
        optimizer: Optimizer,
        loss_function: UncertaintyWeightedLoss | torch.nn.Module,
        discriminator: torch.nn.Module | None = None,
        d_optimizer: Optimizer | None = None,
        adv_weight: float = 0.1,
        **kwargs: Any,
    ) -> None:
        if (discriminator is None) != (d_optimizer is None):
            raise ValueError("give both discriminator and d_optimizer, or neither (no adversarial term)")
        super().__init__(device, max_epochs, train_data_loader, network, optimizer, loss_function, **kwargs)
        self.discriminator = discriminator
        self.d_optimizer = d_optimizer
        self.adv_weight = float(adv_weight)
        self.d_scaler = torch.amp.GradScaler(torch.device(device).type, enabled=self.scaled and discriminator is not None)

    def _iteration(self, engine: JasGanTrainer, batchdata: dict) -> dict:
        image, target = engine._inputs(engine, batchdata)
        with engine.autocast():
            pred = engine.inferer(image, engine.network)
        pred = pred.float()
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        prob = torch.sigmoid(pred)

        d_loss = torch.zeros((), device=image.device)
        adv = torch.zeros((), device=image.device)
        if engine.discriminator is not None:
            engine.discriminator.train()
            real_in = torch.cat([image, target], dim=1)
            engine.d_optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
            with engine.autocast():
                real_logits, real_features = engine.discriminator(real_in)
                fake_logits, _ = engine.discriminator(torch.cat([image, prob.detach()], dim=1))
            d_loss = discriminator_loss(real_logits.float(), fake_logits.float())
            engine.d_scaler.scale(d_loss).backward()
            engine.d_scaler.step(engine.d_optimizer)
            engine.d_scaler.update()
            # Feature matching against the real features of this step (taken before T's update: one
            # forward less per iteration); the fake pass uses the updated T and carries Gls's gradient only,
            # so it runs on T itself, outside any DDP wrapper (which would wait for T's gradients).
            with engine.autocast():
                _, fake_features = unwrap(engine.discriminator)(torch.cat([image, prob], dim=1))
            adv = feature_matching_loss([f.detach().float() for f in real_features], [f.float() for f in fake_features])

        ce, dice = engine.loss_function.parts(pred, target)
        seg = engine.loss_function.weigh(ce, dice)
        loss = seg + engine.adv_weight * adv
        engine._network_step(engine, loss)
        lambdas = engine.loss_function.weights
        return engine._report(engine, pred, loss, {"seg_loss": seg, "ce_la": ce, "dice_scar": dice, "adv_loss": adv,
                                                   "d_loss": d_loss, "lambda1": lambdas[0], "lambda2": lambdas[1]})


NOT_LOGGED = (Keys.IMAGE, Keys.LABEL, Keys.PRED)
"""Output entries that are tensors of the batch, not values to log."""


def logged_values(output: dict) -> dict[str, float]:
    """The scalar training values of an iteration's output (``loss``, then the trainer's
    :attr:`~SegmentationTrainer.logged_terms`), for ``StatsHandler(output_transform=...)``."""
    return {key: float(value) for key, value in output.items() if key not in NOT_LOGGED}


def mixed_precision(amp: bool, device: torch.device | str) -> bool:
    """Whether to train and validate in mixed precision: ``amp`` on a CUDA device; on a CPU a requested ``amp``
    is ignored with a warning (CPU autocast is slower than float32 for these convolutions)."""
    if amp and torch.device(device).type != "cuda":
        logger.warning("amp: true is ignored on %s: mixed precision needs a CUDA GPU; training in float32", device)
        return False
    return bool(amp)
