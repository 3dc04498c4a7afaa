"""Chapter "Training on many devices": data parallelism with ``torch.distributed``, on a laptop.

The chapter's experiments are functions that run the same code on one
process and on every rank of a process group (:func:`resnet_lab.distributed.launch`
starts the ranks): each reads its share of the batch from
:func:`resnet_lab.distributed.share`, so on one process the share is the
whole batch.

* :func:`gradient_by_hand`: each rank's gradient on its share, summed with
  ``all_reduce`` and divided by the number of ranks.
* :func:`train_steps`: a few SGD steps of a network wrapped in
  ``DistributedDataParallel``, optionally with BatchNorm synchronised.
* :func:`step_seconds`, :func:`allreduce_seconds`: what a step and an
  all-reduce cost here.
* :func:`scaling_runs` and :func:`scaling_verdict`: the linear scaling rule
  with warm-up (Goyal et al. 2017, section 2) on CIFAR-10 at two
  effective batch sizes, trained by :func:`resnet_lab.runs.train_all` (from
  the notebook, or by ``torchrun ... -m resnet_lab.train --chapter distributed``).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .. import distributed, models
from .. import sizes as S
from ..history import RunKey
from ..recipes import PAPER, Recipe
from ..sizes import PlannedRun, input_shape, split_size
from ..verdicts import NOT_SHOWN, SHOWN, UNDECIDED, Claim, Verdict, schedule_notes

__all__ = ["Sizes", "SIZES", "BUILDERS", "tiny_mlp", "gradient_by_hand", "train_steps", "largest_gap", "agreement",
           "parameters", "bytes_table", "step_seconds", "allreduce_seconds", "ring_seconds", "measured_costs",
           "t4_arithmetic", "local_processes", "torchrun", "recipes", "networks", "plan", "scaling_verdict",
           "RULE_HOLDS"]  # fmt: skip

#: The claim of :func:`scaling_verdict`.
RULE_HOLDS = "with the learning rate scaled by k and a warm-up, k times larger batches reach the same test error"


@dataclass(frozen=True, kw_only=True)
class Sizes:
    """The by-hand and BatchNorm demonstrations (``demo_steps`` steps of batches of ``demo_batch``), the
    cost measurement (``timing_steps`` steps per setting), and the scaling runs: the CIFAR
    ResNet-``depth`` trained ``epochs`` epochs at each effective batch of ``batches`` (the first is the
    base, with the paper's rate 0.1), warmed up over ``warmup_epochs``."""

    depth: int = S.fixed()
    batches: tuple[int, ...] = S.fixed()
    warmup_epochs: float = S.fixed()
    demo_batch: int = S.images()
    demo_steps: int = S.steps()
    timing_steps: int = S.steps()
    train: int | None = S.images()
    test: int | None = S.images()
    epochs: int = S.epochs()


SIZES = {
    "smoke": Sizes(depth=8, batches=(64, 128), warmup_epochs=0.5, demo_batch=32, demo_steps=2, timing_steps=2,
                   train=256, test=128, epochs=1),
    "cpu": Sizes(depth=20, batches=(128, 512), warmup_epochs=5, demo_batch=64, demo_steps=3, timing_steps=8,
                 train=5_000, test=1_000, epochs=18),
    "gpu": Sizes(depth=20, batches=(128, 1024), warmup_epochs=5, demo_batch=64, demo_steps=3, timing_steps=8,
                 train=None, test=None, epochs=15),
    "paper": Sizes(depth=20, batches=(128, 1024), warmup_epochs=5, demo_batch=64, demo_steps=3, timing_steps=8,
                   train=None, test=None, epochs=90),
}  # fmt: skip


# --- The networks of the demonstrations -----------------------------------------------------


def tiny_mlp() -> nn.Module:
    """A network without BatchNorm: a 3x32x32 image, flattened, through 64 hidden units to 10 classes."""
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 64), nn.ReLU(), nn.Linear(64, 10))


#: Networks the demonstrations build by name (a rank rebuilds its own copy; names cross processes).
BUILDERS = {"tiny MLP": tiny_mlp, "ResNet-8": lambda: models.cifar_resnet(8), "ResNet-20": models.resnet20,
            "ResNet-50": lambda: models.resnet50(num_classes=10)}  # fmt: skip


def _build(name: str, seed: int) -> nn.Module:
    if name not in BUILDERS:
        raise ValueError(f"unknown network {name!r}; expected one of {', '.join(BUILDERS)}")
    torch.manual_seed(seed)
    return BUILDERS[name]()


def gradient_by_hand(images: torch.Tensor, labels: torch.Tensor,
                     seed: int = 0) -> torch.Tensor:
    """The tiny MLP's gradient (flattened) of the mean loss, by hand.

    This rank's share of the batch (every world-th image from its rank),
    then an all-reduce (a sum over the ranks) and a division by the number
    of ranks. In one process: the gradient on the whole batch.
    """
    model = _build("tiny MLP", seed)
    rank, world = distributed.share()
    x, y = images[rank::world], labels[rank::world]
    loss = F.cross_entropy(model(x), y)  # the mean over this share
    grads = torch.autograd.grad(loss, list(model.parameters()))
    grad = torch.cat([g.flatten() for g in grads])
    if world > 1:
        dist.all_reduce(grad)  # every rank: the sum of all gradients
        grad /= world  # the mean of equal shares' means
    return grad


def train_steps(network: str, images: torch.Tensor, labels: torch.Tensor,
                *, steps: int, batch: int, lr: float = 0.05,
                sync_batchnorm: bool = False, seed: int = 0,
                dtype: torch.dtype = torch.float32) -> dict:
    """``steps`` SGD steps of a fresh ``network`` (a key of
    :data:`BUILDERS`) on batches of ``batch`` consecutive images, each
    rank on its share of every batch; returns the trained state.

    ``sync_batchnorm``: BatchNorm over the combined batch.
    ``dtype=torch.float64``: double precision, where rounding no longer
    hides small differences.
    """
    model = _build(network, seed).to(dtype)
    if sync_batchnorm:
        model = distributed.convert_sync_batchnorm(model, "cpu")
    net = distributed.wrap(model, torch.device("cpu"))  # DDP on 2+ ranks
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    rank, world = distributed.share()
    if batch % world:
        raise ValueError(f"a batch of {batch} does not split into "
                         f"{world} equal shares; pick a multiple")
    net.train()
    for s in range(steps):
        x = images[s * batch : (s + 1) * batch].to(dtype)
        y = labels[s * batch : (s + 1) * batch]
        loss = F.cross_entropy(net(x[rank::world]), y[rank::world])
        optimizer.zero_grad()
        loss.backward()  # DDP averages the gradients over the ranks here
        optimizer.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def largest_gap(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], kind: str = "all") -> float:
    """The largest absolute difference between two states' floating-point tensors (``kind``: ``all``,
    ``weights`` (parameters of conv, linear and BN layers) or ``statistics`` (BN running means/variances))."""
    if a.keys() != b.keys():
        raise ValueError("the two states have different tensors; compare states of the same network")
    keys = [k for k in a if a[k].is_floating_point()]
    if kind == "statistics":
        keys = [k for k in keys if "running_" in k]
    elif kind == "weights":
        keys = [k for k in keys if "running_" not in k]
    return max(((a[k] - b[k]).abs().max().item() for k in keys), default=0.0)


def agreement(name: str, gap: float, tolerance: float) -> Verdict:
    """The claim that two ways of training agree: shown where the largest difference of any value of their
    states (``gap``) is at most ``tolerance``, not shown otherwise."""
    rule = f"shown if the largest difference of any weight or statistic is at most {tolerance:.0e}, else not shown."
    status = SHOWN if gap <= tolerance else NOT_SHOWN
    return Verdict([Claim(name, status, rule, {"largest difference": gap, "tolerance": tolerance})])


# --- What it costs ----------------------------------------------------------------------------


def parameters(network: str) -> int:
    """The parameters (and so gradient values) of a network of :data:`BUILDERS`."""
    return sum(p.numel() for p in BUILDERS[network]().parameters())


def bytes_table(networks: tuple[str, ...] = ("ResNet-20", "ResNet-50"),
                worlds: tuple[int, ...] = (2, 4, 8)) -> list[dict]:  # fmt: skip
    """Arithmetic: each network's parameters and MACs per CIFAR image (from the tracer), and the MB each
    rank sends per step in a ring all-reduce of its fp32 gradient among 2, 4 and 8 ranks."""
    from .. import throughput

    rows = []
    for n in networks:
        p = parameters(n)
        macs = throughput.features(BUILDERS[n](), input_shape("cifar10")).macs
        rows.append({"network": n, "params (M)": p / 1e6, "MACs/image (M)": macs / 1e6,
                     **{f"{w} ranks (MB)": distributed.ring_allreduce_bytes(p, w) / 1e6 for w in worlds}})
    return rows


def step_seconds(network: str, batch: int, steps: int, seed: int = 0) -> float:
    """Median seconds per training step of ``network`` on a combined batch of ``batch`` random images, each
    rank on its share (after 2 unmeasured steps)."""
    model = _build(network, seed).to(memory_format=torch.channels_last)
    net = distributed.wrap(model, torch.device("cpu"))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    _, world = distributed.share()
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch // world, 3, 32, 32, generator=g).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch // world,), generator=g)
    times = []
    for i in range(steps + 2):
        distributed.barrier()
        t0 = time.perf_counter()
        loss = F.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def allreduce_seconds(values: int, repeats: int = 5) -> float:
    """Median seconds of one all-reduce of ``values`` float32 numbers across the ranks (0 in one process)."""
    if not distributed.active():
        return 0.0
    t = torch.ones(values)
    times = []
    for _ in range(repeats + 1):
        dist.barrier()
        t0 = time.perf_counter()
        dist.all_reduce(t)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def ring_seconds(params: int, world: int, gb_per_s: float, latency_s: float = 0.0) -> float:
    """Arithmetic, not a measurement: seconds of a ring all-reduce of ``params`` fp32 values among ``world``
    ranks over links of ``gb_per_s`` GB/s each way, plus ``2 (world - 1)`` times ``latency_s``."""
    return distributed.ring_allreduce_bytes(params, world) / (gb_per_s * 1e9) + 2 * (world - 1) * latency_s


def measured_costs(networks: tuple[str, ...], batch: int, steps: int) -> list[dict]:
    """Measured here: each network's median seconds per training step at a combined batch of ``batch``, in
    this process and on 2 ranks (:func:`resnet_lab.distributed.launch`, the machine's threads shared
    out), and the median seconds of one all-reduce of its gradient on 2 ranks."""
    from functools import partial

    rows = []
    for name in networks:
        one = step_seconds(name, batch, steps)
        two = max(distributed.launch(partial(step_seconds, name, batch, steps), 2))
        reduce = max(distributed.launch(partial(allreduce_seconds, parameters(name)), 2))
        rows.append({"network": name, "1 process (s)": one, "2 ranks (s)": two, "ratio": two / one,
                     "all-reduce (s)": reduce, "its share": reduce / two})  # fmt: skip
    return rows


def t4_arithmetic(network: str, batch: int, worlds: tuple[int, ...] = (1, 2, 4, 8),
                  gb_per_s: float = 10.0) -> list[dict]:  # fmt: skip
    """Arithmetic, not a measurement: a step of ``network`` at a combined batch of ``batch`` on ``N`` T4s.

    Compute: ``batch / N`` images at the T4 time per training image that :mod:`resnet_lab.throughput`
    plans (mixed precision); communication: a ring all-reduce of the fp32 gradient at ``gb_per_s``
    GB/s per link (:func:`ring_seconds`, no latency), added without overlap (DDP overlaps part of it
    with the backward pass, so the step here is an upper bound by that much)."""
    from .. import throughput

    per_image = throughput.train_seconds(throughput.features(BUILDERS[network](), input_shape("cifar10")))
    rows = []
    for n in worlds:
        compute, reduce = batch / n * per_image, ring_seconds(parameters(network), n, gb_per_s)
        rows.append({"GPUs": n, "compute (ms)": 1e3 * compute, "all-reduce (ms)": 1e3 * reduce,
                     "step (ms)": 1e3 * (compute + reduce)})  # fmt: skip
    one = rows[0]["step (ms)"] if worlds[0] == 1 else None
    for row in rows:
        row["speed-up"] = one / row["step (ms)"] if one else None
    return rows


# --- Launching the command line -------------------------------------------------------------


def local_processes() -> int:
    """Processes to start on this machine: one per GPU where there are two or more, one on a single GPU,
    and two (``gloo``) on a machine without GPUs."""
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return gpus if gpus >= 2 else 1 if gpus == 1 else 2


def torchrun(args: list[str], nproc: int, timeout_s: float | None = None) -> None:
    """Run ``torchrun --standalone --nproc_per_node=nproc -m resnet_lab.train *args`` here (``--standalone``:
    this machine alone, its rendezvous on a free port), printing what rank 0 prints as it comes; a clear
    error with the end of its error output if it fails."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m",
           "resnet_lab.train", *args]  # fmt: skip
    print("$ torchrun", *cmd[3:])
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        for line in proc.stdout:
            print(line, end="", flush=True)
        err = proc.stderr.read()
        proc.wait(timeout_s)
    if proc.returncode:
        raise RuntimeError(f"torchrun exited with code {proc.returncode}; the end of its error output:\n"
                           f"{err[-3000:]}")  # fmt: skip


# --- The linear scaling rule ----------------------------------------------------------------


def recipes(sizes: Sizes) -> dict[int, Recipe]:
    """Each effective batch's recipe: the paper's, with the rate scaled
    linearly with the batch (0.1 at the base batch ``batches[0]``) and
    ``warmup_epochs`` of warm-up."""
    out = {}
    for b in sizes.batches:
        lr = PAPER.lr * b / sizes.batches[0]  # the linear scaling rule
        name = (f"the paper's, batch {b}, rate {lr:g}, "
                f"warm-up {sizes.warmup_epochs:g} epochs")
        out[b] = PAPER.replace(name=name, batch_size=b, lr=lr,
                               warmup_epochs=sizes.warmup_epochs)
    return out


def networks(sizes: Sizes, batch: int) -> dict[RunKey, nn.Module]:
    """The network trained at effective batch ``batch``: the CIFAR
    ResNet-``depth``, keyed by the batch."""
    key = RunKey(f"ResNet-{sizes.depth}, batch {batch}")
    return {key: models.cifar_resnet(sizes.depth)}


def plan(sizes: Sizes) -> list[PlannedRun]:
    """One run per effective batch (same images, same epochs), tested every epoch; the demonstrations are
    a few steps of small networks (left out: seconds)."""
    train, test = split_size(sizes.train, "cifar10", True), split_size(sizes.test, "cifar10", False)
    return [PlannedRun(str(key), net, input_shape("cifar10"), train * sizes.epochs, test * sizes.epochs)
            for b in sizes.batches for key, net in networks(sizes, b).items()]  # fmt: skip


def scaling_verdict(runs: dict, margin: float = 2.0, z: float = 2.0) -> Verdict:
    """The claim :data:`RULE_HOLDS`, as an equivalence: the run at the largest effective batch (rate scaled
    by k, warm-up) ends within ``margin`` points of the base batch's test error.

    The difference of the two final test errors gets a band of ``z`` standard errors of a difference of
    two independent proportions on the test images: the sampling noise of the test set, and a
    conservative one (both runs are scored on the same images, whose errors are correlated, so the
    paired standard error would be smaller). One seed each: the seed-to-seed spread is not measured and
    not in the band. Shown where the whole band lies within +-``margin`` points; not shown where it lies
    wholly outside; undecided otherwise (the test set is too small to tell, or the difference is near
    the margin). The 2-point margin is the book's choice.
    """
    keyed = {RunKey.of(k): h for k, h in runs.items()}
    by_batch = {h.info.batch_size: h for h in keyed.values()}
    if len(by_batch) < 2:
        raise ValueError(f"need runs at two effective batch sizes, got {sorted(by_batch)}")
    small, large = by_batch[min(by_batch)], by_batch[max(by_batch)]
    e_s, e_l = small.final.test_error, large.final.test_error
    n_s, n_l = small.info.test_images, large.info.test_images
    if e_s is None or e_l is None or not n_s or not n_l:
        raise ValueError("both runs need a final test error and their test images (train_all records them)")
    se = 100 * math.sqrt(e_s * (1 - e_s) / n_s + e_l * (1 - e_l) / n_l)
    diff = 100 * (e_l - e_s)
    k = large.info.batch_size // small.info.batch_size
    rule = (f"equivalence within {margin:g} points: shown if |difference| + {z:g} standard errors <= {margin:g}, "
            f"not shown if |difference| - {z:g} standard errors > {margin:g}, else undecided; standard error of a "
            "difference of two independent proportions (test-set sampling only, one seed each; conservative, "
            "as both runs are scored on the same images).")
    status = SHOWN if abs(diff) + z * se <= margin else NOT_SHOWN if abs(diff) - z * se > margin else UNDECIDED
    evidence = {"batches": [small.info.batch_size, large.info.batch_size],
                "learning rates": [small.info.lr, large.info.lr],
                "test errors (%)": [round(100 * e_s, 2), round(100 * e_l, 2)],
                "difference (points)": diff, "standard error (points)": se, "test images": [n_s, n_l]}
    claim = Claim(f"batch x{k}, rate x{k}, warm-up: same test error", status, rule, evidence)
    text = (f"Batch {large.info.batch_size} at rate {large.info.lr:g} ended at {100 * e_l:.1f}% test error, "
            f"batch {small.info.batch_size} at rate {small.info.lr:g} at {100 * e_s:.1f}%: a difference of "
            f"{diff:+.1f} points, band of {z:g} standard errors [{diff - z * se:+.1f}, {diff + z * se:+.1f}] "
            f"against a margin of +-{margin:g}.") + schedule_notes(runs)
    return Verdict([claim], text)
