"""GS-LRM trainer: a short run, bit-exact resume, fine-tuning from weights, 2-process DDP, and the CLI."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from _ddp_helpers import capture_builds, free_port, join_job, write_replica_hash

from facelift.cli.main import main
from facelift.models.gslrm import GSLRM
from facelift.training.checkpoint import latest_checkpoint
from facelift.training.gslrm_trainer import GSLRM_PRESETS, GSLRMTrainConfig, train


def _config(out_dir: Path, **overrides) -> GSLRMTrainConfig:
    base = replace(
        GSLRM_PRESETS["tiny"], out_dir=out_dir, total_steps=4, warmup_steps=1, ckpt_every=2, image_every=2,
        log_every=1, device="cpu", progress=False, tensorboard=False, num_random=2,
    )  # fmt: skip
    return replace(base, **overrides)


def _params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_short_run_writes_checkpoint_logs_and_weights(tmp_path):
    result = train(_config(tmp_path, total_steps=3))
    assert result.step == 3 and result.resumed_from is None and result.skipped_steps == 0
    assert latest_checkpoint(tmp_path / "checkpoints").name == "step_00000003.pt"
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 3 and all(0 < x < 2 for x in losses)
    assert sorted(p.name for p in (tmp_path / "images").glob("*.png")) == ["step_00000001.png", "step_00000002.png"]
    model = GSLRM.from_pretrained(result.pretrained_dir)
    assert model.config == GSLRM_PRESETS["tiny"].model
    # A finished run resumes at the end and does nothing more.
    again = train(_config(tmp_path, total_steps=3))
    assert again.step == 3 and again.resumed_from is not None


def test_kill_and_resume_is_bit_exact(tmp_path):
    straight = train(_config(tmp_path / "straight"))
    assert straight.step == 4
    stopped = train(_config(tmp_path / "resumed"), stop_after=2)
    assert stopped.step == 2 and stopped.pretrained_dir is None
    resumed = train(_config(tmp_path / "resumed"))
    assert resumed.step == 4 and resumed.resumed_from.name == "step_00000002.pt"
    a = _params(GSLRM.from_pretrained(straight.pretrained_dir))
    b = _params(GSLRM.from_pretrained(resumed.pretrained_dir))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.final_loss == straight.final_loss


def test_render_on_device_feeds_the_same_samples(tmp_path, monkeypatch):
    """With ``render_on_device`` the loop points the on-the-fly dataset at the training device (here the
    CPU, the only one a test can rely on; the dataset starts on an unusable device to prove the loop set
    it), and the run sees the very samples the ordinary path renders: the same weights come out."""
    from facelift.training import loop

    a = train(_config(tmp_path / "a", total_steps=2))
    original_init, original_get = loop.IndexedSubjects.__init__, loop.IndexedSubjects.__getitem__
    seen = []

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.render_device = torch.device("meta")

    def get(self, k):
        seen.append(self.render_device)
        return original_get(self, k)

    monkeypatch.setattr(loop.IndexedSubjects, "__init__", init)
    monkeypatch.setattr(loop.IndexedSubjects, "__getitem__", get)
    b = train(_config(tmp_path / "b", total_steps=2, render_on_device=True))
    assert seen and all(d == torch.device("cpu") for d in seen)
    pa, pb = _params(GSLRM.from_pretrained(a.pretrained_dir)), _params(GSLRM.from_pretrained(b.pretrained_dir))
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    with pytest.raises(ValueError, match="workers == 0"):
        _config(tmp_path / "c", render_on_device=True, workers=2)


def test_init_from_pretrained_with_fresh_optimizer(tmp_path):
    first = train(_config(tmp_path / "pre", total_steps=1))
    start = _params(GSLRM.from_pretrained(first.pretrained_dir))
    second = train(_config(tmp_path / "ft", total_steps=1, data="heads", init_from=first.pretrained_dir, lr=1e-12))
    tuned = _params(GSLRM.from_pretrained(second.pretrained_dir))
    # lr ~ 0: the fine-tuned weights are (numerically almost) the starting ones, not a fresh init.
    assert all(torch.allclose(start[k], tuned[k], atol=1e-6) for k in start)
    wrong = replace(GSLRM_PRESETS["tiny"].model, depth=1)
    with pytest.raises(ValueError, match="different architecture"):
        train(_config(tmp_path / "bad", model=wrong, init_from=first.pretrained_dir))


def test_nan_loss_step_is_skipped(tmp_path, monkeypatch):
    import facelift.training.gslrm_trainer as trainer

    real = trainer.reconstruction_loss

    def nan_loss(*args, **kwargs):
        out = real(*args, **kwargs)
        return type(out)(out.total * float("nan"), out.mse, out.perceptual)

    monkeypatch.setattr(trainer, "reconstruction_loss", nan_loss)
    cfg = _config(tmp_path, total_steps=1)
    torch.manual_seed(0)
    result = train(cfg)
    assert result.skipped_steps == 1
    fresh = GSLRM(cfg.model)
    fresh.init_weights(torch.Generator().manual_seed(cfg.seed))
    trained = GSLRM.from_pretrained(result.pretrained_dir)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), trained.state_dict().values()))


def _ddp_replica_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    import facelift.training.gslrm_trainer as trainer

    join_job(rank, world, port)
    captured = capture_builds(trainer, "_build_model")
    train(_config(Path(out_dir) / "run", total_steps=2, batch_size=1))
    write_replica_hash(captured["model"], out_dir, rank)


def test_ddp_two_processes_keep_replicas_identical(tmp_path):
    mp = pytest.importorskip("torch.multiprocessing")
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    mp.spawn(_ddp_replica_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    hashes = [(tmp_path / f"rank{r}.sha").read_text() for r in range(2)]
    assert hashes[0] == hashes[1]
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines() if "loss" in line]
    assert [r["step"] for r in records] == [1, 2]


def test_cli_help_lists_presets():
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), pytest.raises(SystemExit) as exit_:
        main(["train", "gslrm", "--help"])
    assert exit_.value.code == 0
    text = buf.getvalue()
    for preset in ("default", "objects-pretrain", "heads-finetune", "heads-only"):
        assert preset in text


def test_cli_tiny_run(tmp_path, capsys):
    code = main([
        "train", "gslrm", "tiny", "--out-dir", str(tmp_path), "--total-steps", "1", "--device", "cpu",
        "--warmup-steps", "0", "--no-progress", "--no-tensorboard", "--num-random", "2", "--model.width", "16",
    ])  # fmt: skip
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["step"] == 1 and Path(summary["pretrained"]).is_dir()
    assert GSLRM.from_pretrained(summary["pretrained"]).config.width == 16


def test_time_box_ends_the_run_with_the_schedule_decayed(tmp_path, monkeypatch):
    """``max_minutes``: with a fake clock at 1 s per step and a 60 s budget, the run ends at step 60 of 10,000
    with ``final`` written and the cosine re-fitted to end there; resuming it changes nothing."""
    from facelift.training import loop

    ticks = iter(range(10**6))
    monkeypatch.setattr(loop, "_clock", lambda: float(next(ticks)))
    config = _config(tmp_path, total_steps=10_000, warmup_steps=5, ckpt_every=1000, image_every=0, log_every=1, max_minutes=1.0)
    result = train(config)
    assert result.step == result.horizon == 60 and result.pretrained_dir is not None
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines() if '"lr"' in line]
    lrs = {r["step"]: r["lr"] for r in records}
    assert lrs[60] < 0.01 * config.lr < lrs[30]
    after_warmup = [lrs[s] for s in range(6, 61)]  # re-fitting the schedule never sends a step off it
    assert all(a >= b for a, b in zip(after_warmup, after_warmup[1:], strict=False))
    again = train(config)
    assert again.step == 60 and again.horizon == 60 and again.resumed_from.name == "step_00000060.pt"


def test_resumed_time_box_keeps_its_horizon(tmp_path, monkeypatch):
    """An interrupted time-boxed run resumes on the schedule it left: its fresh budget would reach step 90, but the
    recorded horizon (60) stays the end; a shorter fresh budget still ends it sooner."""
    from facelift.training import loop

    ticks = iter(range(10**6))
    monkeypatch.setattr(loop, "_clock", lambda: float(next(ticks)))
    config = _config(tmp_path, total_steps=10_000, warmup_steps=5, ckpt_every=1000, image_every=0, log_every=1, max_minutes=1.0)
    first = train(config, stop_after=30)
    assert first.step == 30 and first.horizon == 60 and first.pretrained_dir is None
    again = train(config)
    assert again.resumed_from.name == "step_00000030.pt" and again.step == again.horizon == 60
    lrs = {}
    for line in (tmp_path / "log.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "lr" in record:
            lrs[record["step"]] = record["lr"]  # the resumed run's entries overwrite nothing before step 31
    assert lrs[60] < 0.01 * config.lr
    after_warmup = [lrs[s] for s in range(6, 61)]  # no jump back up where the run resumed
    assert all(a >= b for a, b in zip(after_warmup, after_warmup[1:], strict=False))

    short = tmp_path / "short"
    config_short = _config(short, total_steps=10_000, warmup_steps=5, ckpt_every=1000, image_every=0, log_every=1, max_minutes=1.0)
    assert train(config_short, stop_after=30).horizon == 60
    config_short = _config(short, total_steps=10_000, warmup_steps=5, ckpt_every=1000, image_every=0, log_every=1, max_minutes=0.25)
    assert train(config_short).step == 45  # 15 s of budget at 1 s per step


@pytest.mark.parametrize("minutes", [0, -1.0, float("nan")])
def test_time_box_must_be_positive(tmp_path, minutes):
    with pytest.raises(ValueError, match="max_minutes"):
        _config(tmp_path, max_minutes=minutes)


def test_on_the_fly_supersampling_matches_the_stream(tmp_path):
    """``supersample`` reaches the on-the-fly renders: sample 0 at 2x2 is the stream's 2x2 render of that subject."""
    from facelift.synthetic.dataset import SyntheticStream
    from facelift.training.loop import IndexedSubjects

    common = {"mode": "diffusion", "resolution": 16, "background": "white", "seed": 3}
    fine, coarse = IndexedSubjects("heads", None, supersample=2, **common), IndexedSubjects("heads", None, **common)
    item = fine[0]
    subject = fine._subject(0)[1]
    stream = SyntheticStream("heads", resolution=16, mode="diffusion", background="white", supersample=2, subjects=[subject], epochs=1)
    torch.testing.assert_close(item["images"], next(iter(stream))["images"])
    assert not torch.equal(item["images"], coarse[0]["images"])
    with pytest.raises(ValueError, match="supersample"):
        _config(tmp_path, supersample=5)


def test_on_the_fly_samples_do_not_depend_on_the_worker_count():
    """Every DataLoader worker renders the samples it is given (a stream sharded by worker once made worker 1 of 2
    render nothing, which ended the loader after the first batch), and the samples are those of one process."""
    from facelift.training.loop import IndexedSubjects, StepBatches

    data = IndexedSubjects("heads", None, mode="diffusion", resolution=16, background="white", seed=1)
    batches = {}
    for workers in (0, 2):
        loader = torch.utils.data.DataLoader(data, batch_sampler=StepBatches(0, 3, 2, 0, 1), num_workers=workers)
        batches[workers] = [b["images"] for b in loader]
    assert len(batches[2]) == len(batches[0]) == 3
    assert all(torch.equal(a, b) for a, b in zip(batches[0], batches[2], strict=True))
