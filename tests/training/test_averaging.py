"""Weight averaging of the last joint epochs (bundle/training/averaging.py): the mean of the iterates, batch norm
recomputed, off, resumed."""

from __future__ import annotations

import logging

import pytest
import torch
from ignite.engine import Engine, Events

from bundle.training.averaging import WeightAveraging

EPOCHS, STEPS = 4, 3


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3, padding=1), torch.nn.BatchNorm2d(3), torch.nn.ReLU(),
                               torch.nn.Conv2d(3, 1, 1))


def _loader(n: int = STEPS) -> list[dict]:
    g = torch.Generator().manual_seed(1)
    return [{"image": 2.0 + torch.randn(2, 1, 8, 8, generator=g), "label": torch.rand(2, 1, 8, 8, generator=g)}
            for _ in range(n)]


def _engine(net: torch.nn.Module, iterates: list | None = None) -> Engine:
    """A plain SGD trainer of ``net``; ``iterates`` collects (epoch, weights) after every step."""
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)

    def step(engine, batch):
        net.train()
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(net(batch["image"]), batch["label"])
        loss.backward()
        optimizer.step()
        return loss.item()

    engine = Engine(step)
    if iterates is not None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, lambda e: iterates.append(
            (e.state.epoch, {k: v.detach().clone() for k, v in net.named_parameters()})))
    return engine


def test_the_network_ends_as_the_mean_of_the_iterates_of_the_averaging_epochs():
    net, iterates = _net(), []
    engine = _engine(net, iterates)
    averaging = WeightAveraging(net, _loader(), average_from_epoch=3, bn_batches=2)
    averaging.attach(engine)
    engine.run(_loader(), max_epochs=EPOCHS)
    averaged = [w for epoch, w in iterates if epoch >= 3]
    assert averaging.n_averaged == len(averaged) == 2 * STEPS
    for name, value in net.named_parameters():
        expected = torch.stack([w[name] for w in averaged]).mean(0)
        torch.testing.assert_close(value, expected)
    last = iterates[-1][1]
    assert not all(torch.allclose(value, last[name]) for name, value in net.named_parameters())   # not the last one


def test_batch_norm_statistics_are_recomputed_on_training_batches():
    net = _net()
    engine = _engine(net)
    loader = _loader()
    WeightAveraging(net, loader, average_from_epoch=1, bn_batches=2).attach(engine)
    engine.run(loader, max_epochs=2)
    with torch.no_grad():   # the batch norm's input: the first convolution of the first two batches
        features = torch.cat([net[0](b["image"]) for b in loader[:2]])
    torch.testing.assert_close(net[1].running_mean, features.mean((0, 2, 3)), rtol=1e-4, atol=1e-5)
    assert net[1].momentum == pytest.approx(0.1)   # update_bn puts the momentum back
    assert net.training                            # and the mode


def test_every_takes_every_nth_iteration_only():
    net = _net()
    engine = _engine(net)
    averaging = WeightAveraging(net, _loader(), average_from_epoch=2, every=2, bn_batches=1)
    averaging.attach(engine)
    engine.run(_loader(), max_epochs=EPOCHS)
    # iterations 4..12 (epochs 2-4), the even ones: 4, 6, 8, 10, 12
    assert averaging.n_averaged == 5


def test_off_leaves_the_last_iterate():
    net, iterates = _net(), []
    engine = _engine(net, iterates)
    averaging = WeightAveraging(net, _loader(), average_from_epoch=None)
    averaging.attach(engine)
    engine.run(_loader(), max_epochs=EPOCHS)
    assert not averaging.enabled and averaging.averaged is None and averaging.n_averaged == 0
    for name, value in net.named_parameters():
        torch.testing.assert_close(value, iterates[-1][1][name])


def test_a_start_after_the_last_epoch_warns_and_leaves_the_last_iterate(caplog):
    net, iterates = _net(), []
    engine = _engine(net, iterates)
    averaging = WeightAveraging(net, _loader(), average_from_epoch=EPOCHS + 1)
    averaging.attach(engine)
    with caplog.at_level(logging.WARNING, logger="bundle.training.averaging"):
        engine.run(_loader(), max_epochs=EPOCHS)
    assert "never starts" in caplog.text
    assert averaging.n_averaged == 0
    for name, value in net.named_parameters():
        torch.testing.assert_close(value, iterates[-1][1][name])


def test_a_resumed_run_goes_on_averaging_where_it_stopped():
    whole = _net()
    engine = _engine(whole)
    WeightAveraging(whole, _loader(), average_from_epoch=2, bn_batches=2).attach(engine)
    engine.run(_loader(), max_epochs=EPOCHS)

    first = _net()
    engine = _engine(first)
    averaging = WeightAveraging(first, _loader(), average_from_epoch=2, bn_batches=2)
    averaging.attach(engine)
    engine.add_event_handler(Events.EPOCH_COMPLETED(once=3), lambda e: e.terminate())
    engine.run(_loader(), max_epochs=EPOCHS)
    saved_net = {k: v.clone() for k, v in first.state_dict().items()}
    saved_mean = averaging.state_dict()

    resumed = _net()
    resumed.load_state_dict(saved_net)
    engine = _engine(resumed)
    again = WeightAveraging(resumed, _loader(), average_from_epoch=2, bn_batches=2)
    again.load_state_dict(saved_mean)
    again.attach(engine)
    # as the checkpoint loader restores the engine
    engine.state.iteration, engine.state.epoch, engine.state.max_epochs = 3 * STEPS, 3, EPOCHS
    engine.state.epoch_length = STEPS
    engine.run(_loader(), max_epochs=EPOCHS)
    assert again.n_averaged == 3 * STEPS
    for (name, a), b in zip(whole.named_parameters(), resumed.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("kwargs", [{"average_from_epoch": 0}, {"average_from_epoch": 2, "every": 0},
                                    {"average_from_epoch": 2, "bn_batches": 0}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError, match="must be >= 1"):
        WeightAveraging(_net(), _loader(), **kwargs)
