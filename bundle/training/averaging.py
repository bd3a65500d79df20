"""Weight averaging of Gls over the last joint epochs (SWA, Izmailov et al., UAI 2018; dense averaging as SWAD, Cha
et al., NeurIPS 2021, for domain generalisation).

The joint training ends wherever its last Adam step left Gls, at a learning rate that has decayed only to about 0.6
of its start. Averaging the weights of every iteration from ``average_from_epoch`` on moves the model towards the
centre of the region those steps wander in: a flatter minimum, which SWAD measured to carry over to domains the
training never saw better than the last iterate or the best-validated one. Here the unseen domain is real LGE and
other generators' scans.

:class:`WeightAveraging` keeps the running mean in a :class:`torch.optim.swa_utils.AveragedModel` beside the network
and, at the end of the last epoch (before that epoch's validation, checkpoint and ``model.pt``), loads the mean into
the network and recomputes its batch-norm statistics on training batches (:func:`torch.optim.swa_utils.update_bn`:
the averaged weights' activations have their own moments, which no iterate's running statistics match). The run's
validation then scores the averaged Gls, and the best-model saver keeps it only if it beats the earlier validation.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from itertools import islice

import torch
from ignite.engine import Engine, Events
from torch.optim.swa_utils import AveragedModel, update_bn

logger = logging.getLogger(__name__)


class WeightAveraging:
    """Ignite handler: the mean of ``network``'s weights after every ``every``-th iteration of the epochs
    ``average_from_epoch`` .. the last, loaded into ``network`` at the end of the last epoch, then its batch-norm
    statistics recomputed on ``bn_batches`` batches of ``data_loader`` (their ``image``). ``average_from_epoch``
    None: off (attaching does nothing, the network is left as its last iterate).

    Attach it before the validation handler (it must act before the last epoch's validation). ``state_dict`` and
    ``load_state_dict`` carry the running mean and its count, so a resumed run goes on averaging where it stopped
    (list the handler among the checkpoint's items).
    """

    def __init__(self, network: torch.nn.Module, data_loader: Iterable, average_from_epoch: int | None,
                 every: int = 1, bn_batches: int = 100, device: torch.device | str | None = None):
        self.enabled = average_from_epoch is not None
        if self.enabled and int(average_from_epoch) < 1:
            raise ValueError(f"average_from_epoch must be >= 1 (a joint epoch), got {average_from_epoch}")
        if int(every) < 1 or int(bn_batches) < 1:
            raise ValueError(f"every and bn_batches must be >= 1, got {every} and {bn_batches}")
        self.network = network
        self.data_loader = data_loader
        self.average_from_epoch = int(average_from_epoch) if self.enabled else None
        self.every = int(every)
        self.bn_batches = int(bn_batches)
        self.device = device
        self.averaged = AveragedModel(network, use_buffers=False) if self.enabled else None

    @property
    def n_averaged(self) -> int:
        """How many iterates the mean holds."""
        return 0 if self.averaged is None else int(self.averaged.n_averaged.item())

    def attach(self, engine: Engine) -> None:
        if not self.enabled:
            return
        engine.add_event_handler(Events.STARTED, self.check)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.update)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.finish)

    def check(self, engine: Engine) -> None:
        """Warn when the run ends before the averaging would start."""
        if self.average_from_epoch > engine.state.max_epochs:
            logger.warning("weight averaging from epoch %d never starts: the run has %d epochs",
                           self.average_from_epoch, engine.state.max_epochs)

    def update(self, engine: Engine) -> None:
        """Add the network's present weights to the mean (in the averaging epochs, every ``every`` iterations)."""
        if engine.state.epoch >= self.average_from_epoch and engine.state.iteration % self.every == 0:
            self.averaged.update_parameters(self.network)

    def finish(self, engine: Engine) -> None:
        """At the end of the last epoch: the network takes the mean, then its batch-norm statistics anew."""
        if engine.state.epoch < engine.state.max_epochs or self.n_averaged == 0:
            return
        self.network.load_state_dict(self.averaged.module.state_dict())
        update_bn(self._images(), self.network, device=self.device)
        logger.info("Gls is now the mean of its last %d iterates (from epoch %d), batch norm recomputed on %d batches",
                    self.n_averaged, self.average_from_epoch, self.bn_batches)

    def _images(self) -> Iterator[torch.Tensor]:
        for batch in islice(iter(self.data_loader), self.bn_batches):
            yield batch["image"] if isinstance(batch, dict) else batch[0]

    def state_dict(self) -> dict:
        return self.averaged.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.averaged.load_state_dict(state)
