"""Checkpoints restore model, optimiser, scheduler, step and every RNG."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from facelift.training.checkpoint import checkpoint_name, latest_checkpoint, load_checkpoint, save_checkpoint
from facelift.training.optim import build_adamw, warmup_cosine


def _setup(seed: int):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 1))
    opt = build_adamw(model, lr=1e-2)
    sched = warmup_cosine(opt, 2, 10)
    return model, opt, sched


def _train_step(model, opt, sched):
    loss = model(torch.randn(5, 4)).pow(2).mean()
    loss.backward()
    opt.step()
    sched.step()
    opt.zero_grad(set_to_none=True)


def test_round_trip_restores_everything(tmp_path):
    model, opt, sched = _setup(0)
    for _ in range(3):
        _train_step(model, opt, sched)
    path = save_checkpoint(tmp_path / checkpoint_name(3), model=model, optimizer=opt, scheduler=sched, step=3, extra={"note": "x"})
    _train_step(model, opt, sched)  # draws its inputs from the torch RNG
    after_one_more = [p.detach().clone() for p in model.parameters()]
    expected_draws = (torch.rand(3), random.random(), np.random.rand())

    model2, opt2, sched2 = _setup(1)  # different init and RNG
    random.seed(5)
    np.random.seed(5)
    payload = load_checkpoint(path, model=model2, optimizer=opt2, scheduler=sched2)
    assert payload["step"] == 3 and payload["extra"] == {"note": "x"}
    assert sched2.last_epoch == 3
    _train_step(model2, opt2, sched2)
    assert all(torch.equal(a, b) for a, b in zip(after_one_more, model2.parameters()))
    draws = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(draws[0], expected_draws[0]) and draws[1:] == expected_draws[1:]


def test_latest_checkpoint_and_atomicity(tmp_path):
    assert latest_checkpoint(tmp_path / "missing") is None
    assert latest_checkpoint(tmp_path) is None
    model, opt, sched = _setup(0)
    for step in (2, 10, 9):
        save_checkpoint(tmp_path / checkpoint_name(step), model=model, optimizer=opt, scheduler=sched, step=step)
    (tmp_path / "step_notanumber.pt").write_text("x")
    assert latest_checkpoint(tmp_path).name == "step_00000010.pt"
    assert not list(tmp_path.glob(".*"))  # no temporary files left


def test_load_rejects_foreign_files(tmp_path):
    torch.save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a facelift training checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "none.pt")
