"""Data parallelism (resnet_lab.distributed): shards, SyncBatchNorm, fit on 2 gloo processes, torchrun.

The tests marked slow start fresh processes (``launch``, ``torchrun``): 2 ranks with the ``gloo``
backend on this machine's CPUs, each with a time limit, so a rank that never comes fails the test
instead of hanging it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from functools import partial
from pathlib import Path

import psutil
import pytest
import torch
from torch import nn
from torch.utils.data import DistributedSampler

from resnet_lab import distributed as D
from resnet_lab import models
from resnet_lab.chapters import distributed as chapter
from resnet_lab.data import ImageSet
from resnet_lab.loader import DeviceLoader, for_recipe
from resnet_lab.recipes import Recipe
from resnet_lab.runs import train_all
from resnet_lab.train import epochs_done, fit
from tests.helpers import CIFAR_SUBSET, REPO, needs_cifar_subset, synthetic_set

TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]


def _one_node() -> list[str]:
    """torchrun on this machine alone, its rendezvous on a free port (not the default 29500, which a
    job killed a moment earlier may still hold)."""
    return [*TORCHRUN, "--nproc_per_node=2", "--master_addr=127.0.0.1", f"--master_port={D.free_port()}"]


# --- Shards, in one process -----------------------------------------------------------------


@pytest.mark.parametrize("n, world", [(12, 2), (12, 3), (10, 3), (10, 4), (3, 4), (7, 1)])
def test_every_index_once_per_epoch_across_ranks_and_the_padding_said(n, world):
    for epoch in (0, 1):
        shards = [D.shard_indices(n, world, r, seed=5, epoch=epoch) for r in range(world)]
        assert len({len(s) for s in shards}) == 1  # equal shares: every rank takes as many steps
        seen = Counter(torch.cat(shards).tolist())
        assert set(seen) == set(range(n))  # every image, on some rank
        assert sum(seen.values()) - n == D.padding(n, world)  # and only the padding twice
    assert not torch.equal(D.shard_indices(12, 2, 0, epoch=0), D.shard_indices(12, 2, 0, epoch=1))


@pytest.mark.parametrize("n, world", [(12, 2), (10, 3), (10, 4)])
def test_shards_follow_pytorchs_distributed_sampler(n, world):
    for rank in range(world):
        sampler = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=False)
        assert D.shard_indices(n, world, rank, shuffle=False).tolist() == list(sampler)


def test_shard_indices_refuses_a_rank_outside_the_world():
    with pytest.raises(ValueError, match="rank must be in 0..world-1"):
        D.shard_indices(10, 2, 2)


def _indexed_set(n: int) -> ImageSet:
    """Images that carry their own index in their first two pixels (n < 65,536)."""
    images = torch.zeros(n, 1, 8, 8, dtype=torch.uint8)
    images[:, 0, 0, 0], images[:, 0, 0, 1] = torch.arange(n) % 256, torch.arange(n) // 256
    return ImageSet("indexed", images, torch.arange(n) % 4, ("a", "b", "c", "d"), "test", True, (0.5,), (0.3,), "test")


def _indices(x: torch.Tensor) -> list[int]:
    v = (x * 255).round().long()
    return (v[:, 0, 0, 0] + 256 * v[:, 0, 0, 1]).tolist()


@pytest.mark.parametrize("n, world", [(40, 2), (37, 2), (37, 4)])
def test_each_rank_gets_its_rows_of_the_batch_one_process_would_take(n, world):
    data = _indexed_set(n)
    one = DeviceLoader(data, 8, normalize=False, device="cpu", seed=3)
    ranks = [DeviceLoader(data, 8, normalize=False, device="cpu", seed=3, shard=(r, world)) for r in range(world)]
    assert {len(r) for r in ranks} == {len(one) if n % world == 0 else len(ranks[0])}
    for epoch in (0, 1):
        for loader in (one, *ranks):
            loader.set_epoch(epoch)
        shares = [[_indices(x) for x, _ in r] for r in ranks]
        everything = [i for share in shares for batch in share for i in batch]
        assert set(everything) == set(range(n)) and len(everything) - n == D.padding(n, world)  # once, bar padding
        for r in range(world):
            mine = D.shard_indices(n, world, r, seed=3, epoch=epoch).tolist()
            assert [i for batch in shares[r] for i in batch] == mine
        if n % world == 0:  # no padding: each rank's batch is its rows of the single process's batch
            for b, (x, _) in enumerate(one):
                assert [i for r in range(world) for i in shares[r][b]] == [
                    j for r in range(world) for j in _indices(x)[r::world]]


def test_augmentation_of_a_share_is_the_single_processes_augmentation_of_those_images():
    data = synthetic_set(64, size=16, channels=3)
    one = DeviceLoader(data, 16, augment="crop_flip", device="cpu", seed=1)
    ranks = [DeviceLoader(data, 16, augment="crop_flip", device="cpu", seed=1, shard=(r, 2)) for r in range(2)]
    for (x, y), (x0, y0), (x1, y1) in zip(one, *ranks):
        assert torch.equal(x[0::2], x0) and torch.equal(x[1::2], x1)
        assert torch.equal(y[0::2], y0) and torch.equal(y[1::2], y1)


def test_loader_shards_refuse_a_batch_that_does_not_split_and_a_bad_rank():
    data = synthetic_set(32)
    with pytest.raises(ValueError, match="does not split evenly over 3 ranks"):
        DeviceLoader(data, 16, device="cpu", shard=(0, 3))
    with pytest.raises(ValueError, match="shard must be"):
        DeviceLoader(data, 16, device="cpu", shard=(2, 2))
    test = DeviceLoader(synthetic_set(7, train=False), 2, device="cpu", shard=(1, 3))  # evaluation: uneven is fine
    assert test.padding == 0 and sum(len(y) for _, y in test) == 2


def test_fit_refuses_a_loader_made_for_another_rank():
    recipe = Recipe("tiny", lr=0.05, batch_size=16)
    loader = DeviceLoader(synthetic_set(32), 16, device="cpu", shard=(1, 2))
    with pytest.raises(ValueError, match="rank 0 of 1, but the loader gives the share of rank 1 of 2"):
        fit(models.cifar_resnet(8, in_channels=1, num_classes=4), loader, recipe=recipe, epochs=1, progress=False)


def test_ring_allreduce_bytes():
    params = models.count_parameters(models.resnet20())
    assert params == 269_722  # option A shortcuts: the paper's 0.27M
    assert D.ring_allreduce_bytes(params, 1) == 0
    assert D.ring_allreduce_bytes(params, 2) == params * 4  # half out, half back: the whole gradient once
    assert D.ring_allreduce_bytes(params, 8) == pytest.approx(2 * 7 / 8 * params * 4)
    assert D.ring_allreduce_bytes(10, 4, bytes_per_value=2) == pytest.approx(30)
    with pytest.raises(ValueError):
        D.ring_allreduce_bytes(10, 0)


def test_sync_batchnorm_is_batchnorm_in_one_process_and_keeps_the_state():
    torch.manual_seed(0)
    net = models.cifar_resnet(8)
    net.bn1.frozen_eval = True
    net.bn1.weight.requires_grad_(False)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(8, 3, 32, 32)
    plain = [net.train()(x), net.eval()(x)]
    net.load_state_dict(before)
    synced = D.convert_sync_batchnorm(net, "cpu")
    assert synced is net and isinstance(net.layer1[0].bn2, D.SyncBatchNorm)
    assert net.bn1.frozen_eval is True and not net.bn1.weight.requires_grad
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert torch.allclose(net.train()(x), plain[0], atol=1e-6) and torch.allclose(net.eval()(x), plain[1], atol=1e-6)
    assert isinstance(D.convert_sync_batchnorm(nn.BatchNorm2d(3), "cpu"), D.SyncBatchNorm)


def test_outside_a_process_group_everything_is_one_process():
    assert (D.rank(), D.world_size(), D.is_main(), D.active()) == (0, 1, True, False)
    t = torch.ones(3)
    assert D.sum_across(t) is t and D.broadcast_floats([1.5]) == [1.5]
    assert D.backend_for("cpu") == "gloo" and D.backend_for("cuda") == "nccl"


# --- Two ranks (gloo), each test with a time limit ----------------------------------------------


def _bn_free() -> nn.Module:
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 4))  # fmt: skip
    net.arch = "conv net without BatchNorm"
    return net


def _with_bn() -> nn.Module:
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 4))  # fmt: skip
    net.arch = "conv net with BatchNorm"
    return net


def fit_on_ranks(build, sync_batchnorm: bool, checkpoint: str | None = None, epochs: int = 2) -> dict:
    """Train a fresh net with ``fit`` on this rank's share (the loader of the process group); its state."""
    torch.manual_seed(0)
    net = {"bn-free": _bn_free, "bn": _with_bn}[build]()
    recipe = Recipe("tiny", lr=0.1, momentum=0.9, batch_size=16, augment="crop_flip")
    train = for_recipe(recipe, synthetic_set(64), device="cpu", seed=2)
    test = DeviceLoader(synthetic_set(30, seed=1, train=False), 8, device="cpu", shard=D.share())
    history = fit(net, train, test, recipe=recipe, epochs=epochs, device="cpu", progress=False,
                  sync_batchnorm=sync_batchnorm, checkpoint=checkpoint)  # fmt: skip
    return {"state": {k: v.clone() for k, v in net.state_dict().items()}, "history": history.to_dict()}


def _gap(a: dict, b: dict) -> float:
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point())


@pytest.mark.slow  # 2 fresh processes per launch
@pytest.mark.parametrize("build, sync, tol", [("bn-free", False, 1e-6), ("bn", True, 1e-5)])
def test_two_ranks_with_fit_equal_one_process_on_the_combined_batch(build, sync, tol):
    one = fit_on_ranks(build, sync)
    two = D.launch(partial(fit_on_ranks, build, sync), 2, timeout_s=120)
    assert _gap(two[0]["state"], two[1]["state"]) == 0  # the ranks agree exactly (weights and BN statistics)
    assert _gap(one["state"], two[0]["state"]) < tol
    for a, b in zip(one["history"]["records"], two[0]["history"]["records"]):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-5)
        assert a["test_error"] == pytest.approx(b["test_error"], abs=1e-9)  # counts gathered from both ranks
    assert two[0]["history"]["info"]["processes"] == 2 and one["history"]["info"]["processes"] == 1


@pytest.mark.slow
def test_per_rank_batchnorm_differs_from_one_process_and_sync_batchnorm_agrees_in_float64():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(96, 3, 32, 32, generator=g, dtype=torch.float64), torch.randint(0, 10, (96,), generator=g)
    run = partial(chapter.train_steps, "ResNet-8", x, y, steps=3, batch=32, dtype=torch.float64)
    one = run()
    per_rank, synced = (D.launch(partial(run, sync_batchnorm=s), 2, timeout_s=120)[0] for s in (False, True))
    assert chapter.largest_gap(one, synced) < 1e-12  # the same arithmetic, up to float64 rounding
    assert chapter.largest_gap(one, per_rank, "weights") > 1e-5  # each rank normalised by its own half


@pytest.mark.slow
def test_gradient_by_hand_is_the_gradient_of_the_combined_batch():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(64, 3, 32, 32, generator=g), torch.randint(0, 10, (64,), generator=g)
    one = chapter.gradient_by_hand(x, y)
    two = D.launch(chapter.gradient_by_hand, 2, (x, y), timeout_s=120)
    assert torch.equal(two[0], two[1]) and torch.allclose(one, two[0], atol=1e-7)


def train_all_on_ranks(folder: str) -> dict:
    """train_all in a run folder, recording who wrote checkpoints and who spoke."""
    from resnet_lab import train as T

    writes, said = [], []
    real = T.save_checkpoint

    def counted(*args, **kwargs):
        writes.append(D.rank())
        return real(*args, **kwargs)

    T.save_checkpoint = counted
    torch.manual_seed(0)
    nets = {"net": models.cifar_resnet(8, in_channels=1, num_classes=4)}
    recipe = Recipe("tiny", lr=0.05, batch_size=16)
    train_all(recipe, nets, synthetic_set(64), synthetic_set(16, seed=1, train=False), 2, device="cpu", runs=folder,
              probe_steps=2, say=said.append)  # fmt: skip
    return {"writes": writes, "said": said}


@pytest.mark.slow
def test_only_rank_0_writes_checkpoints_and_speaks(tmp_path):
    zero, one = D.launch(train_all_on_ranks, 2, (str(tmp_path),), timeout_s=120)
    assert zero["writes"] == [0, 0] and one["writes"] == []  # one checkpoint per epoch, from rank 0
    assert len(zero["said"]) == 2 and one["said"] == []  # the plan and the result line
    [ckpt] = tmp_path.glob("*.pt")
    assert epochs_done(ckpt) == 2


def raises_on_rank_1() -> None:
    if D.rank() == 1:
        raise ArithmeticError("rank 1 cannot count")
    torch.distributed.barrier()  # rank 0 waits for a rank that is gone


def dies_on_rank_1() -> None:
    if D.rank() == 1:
        os._exit(3)
    torch.distributed.all_reduce(torch.ones(1))


def hangs_on_rank_1() -> None:
    if D.rank() == 1:
        time.sleep(600)
    torch.distributed.all_reduce(torch.ones(1))


@pytest.mark.slow
@pytest.mark.parametrize("fn, message", [
    (raises_on_rank_1, r"rank 1 of 2 raised an exception(.|\n)*ArithmeticError: rank 1 cannot count"),
    (dies_on_rank_1, r"rank 1 of 2 exited with code 3"),
    (hangs_on_rank_1, r"rank\(s\) \[(0, )?1\] of 2 still running after 15 s"),
])  # fmt: skip
def test_a_rank_that_fails_dies_or_hangs_gives_a_clear_error_not_a_hang(fn, message):
    start = time.monotonic()
    with pytest.raises(D.WorkerError, match=message):
        D.launch(fn, 2, timeout_s=15)
    assert time.monotonic() - start < 60


# --- torchrun and the command line ---------------------------------------------------------------


def _env(**extra: str) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "RESNET_LAB_DATA": str(CIFAR_SUBSET), **extra}


def _cli(folder: Path, summary: Path, epochs: int = 3) -> list[str]:
    return ["-m", "resnet_lab.train", "--model", "resnet20", "--recipe", "paper", "--epochs", str(epochs),
            "--train-images", "1024", "--test-images", "128", "--profile", "smoke", "--runs", str(folder),
            "--summary", str(summary)]  # fmt: skip


def _final_state(folder: Path) -> dict:
    [ckpt] = folder.glob("*.pt")
    return torch.load(ckpt, weights_only=True)["model"]


@pytest.mark.slow
@needs_cifar_subset
def test_torchrun_killed_after_a_checkpoint_resumes_to_the_uninterrupted_runs_weights(tmp_path):
    cmd = [*_one_node(), *_cli(tmp_path / "a", tmp_path / "a.json")]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 240
    while not any(epochs_done(p) >= 1 for p in (tmp_path / "a").glob("*.pt")):
        assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint before the run ended"
        time.sleep(0.05)
    # A disconnect: the launcher and both ranks die at once, mid-run (torchrun starts each rank in a session
    # of its own, so killing torchrun's process group would leave the ranks running).
    for p in [*psutil.Process(proc.pid).children(recursive=True), psutil.Process(proc.pid)]:
        p.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert not (tmp_path / "a.json").exists()
    for folder in ("a", "b"):  # relaunched, and a run never interrupted
        subprocess.run([*_one_node(), *_cli(tmp_path / folder, tmp_path / f"{folder}.json")],
                       cwd=tmp_path, env=_env(), check=True, timeout=300, capture_output=True)  # fmt: skip
    a, b = (json.loads((tmp_path / f"{f}.json").read_text())["resnet20"] for f in "ab")
    assert a["status"].startswith("resumed from epoch") and b["status"] == "trained" and a["processes"] == 2
    timing = {"images_per_s", "seconds"}
    assert [{k: v for k, v in r.items() if k not in timing} for r in a["records"]] == [
        {k: v for k, v in r.items() if k not in timing} for r in b["records"]]
    wa, wb = _final_state(tmp_path / "a"), _final_state(tmp_path / "b")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.slow
@needs_cifar_subset
def test_torchrun_trains_the_chapter_under_smoke_and_two_launchers_act_as_two_nodes(tmp_path):
    cmd = ["-m", "resnet_lab.train", "--chapter", "distributed", "--profile", "smoke", "--runs", str(tmp_path / "one"),
           "--summary", str(tmp_path / "one.json")]  # fmt: skip
    one = subprocess.run([*_one_node(), *cmd], cwd=tmp_path, env=_env(), timeout=300,
                         capture_output=True, text=True)  # fmt: skip
    assert one.returncode == 0, one.stderr[-3000:]
    assert one.stdout.count("ResNet Lab | profile: smoke") == 1  # rank 0 speaks, rank 1 does not
    runs = json.loads((tmp_path / "one.json").read_text())
    assert sorted(runs) == ["ResNet-8, batch 128", "ResNet-8, batch 64"]
    assert {r["processes"] for r in runs.values()} == {2}
    port = str(D.free_port())
    nodes = [subprocess.Popen([*TORCHRUN, "--nnodes=2", f"--node_rank={rank}", "--nproc_per_node=1",
                               "--master_addr=127.0.0.1", f"--master_port={port}",
                               *_cli(tmp_path / "two", tmp_path / "two.json", epochs=1)],
                              cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for rank in (0, 1)]  # fmt: skip
    outputs = [node.communicate(timeout=300)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    two = json.loads((tmp_path / "two.json").read_text())["resnet20"]
    assert two["processes"] == 2 and two["status"] == "trained" and len(two["records"]) == 1


def test_the_launchers_variables_are_read_in_one_place_with_a_clear_error(monkeypatch):
    from resnet_lab import settings

    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert settings.launcher() is None and D.init("cpu") == torch.device("cpu")  # no group: nothing to join
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert settings.launcher() == {"rank": 1, "world_size": 2, "local_rank": 0}
    monkeypatch.setenv("RANK", "one")
    with pytest.raises(ValueError, match="must be integers"):
        settings.launcher()


def test_the_gpu_branches_pick_a_gpu_per_local_rank_and_pytorchs_sync_batchnorm(monkeypatch):
    """What only runs on GPUs, run here with CUDA's answers stubbed: one GPU per local rank, a clear
    error when there are fewer GPUs than ranks on a node, and PyTorch's own SyncBatchNorm on CUDA."""
    chosen = []
    monkeypatch.setattr(D.dev, "resolve", lambda device="auto": torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert D._device_of_rank("auto") == torch.device("cuda", 1) and chosen == [torch.device("cuda", 1)]
    monkeypatch.setenv("LOCAL_RANK", "2")
    with pytest.raises(RuntimeError, match="needs GPU 2, but this machine has 2 GPU"):
        D._device_of_rank("auto")
    net = D.convert_sync_batchnorm(models.cifar_resnet(8), "cuda")
    assert isinstance(net.bn1, nn.SyncBatchNorm) and not isinstance(net.bn1, D.SyncBatchNorm)
