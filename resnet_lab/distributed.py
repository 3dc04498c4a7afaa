"""Data parallelism: one training run on many processes with ``torch.distributed``.

Chapter "Training on many devices" explains each piece. A run on ``N``
processes (*ranks*) keeps one copy of the network per rank; every step,
each rank computes the gradient of its share of the batch, the ranks
average their gradients (an *all-reduce*), and every copy takes the same
step. With equal shares that average is the gradient of the whole batch,
so ``N`` ranks take the steps one process would take on the combined batch
(BatchNorm aside: it normalises by each rank's own share unless its
statistics are synchronised, :class:`SyncBatchNorm`).

What lives here:

* the process group: :func:`init` joins the one ``torchrun`` describes in
  the environment (``nccl`` on GPUs, ``gloo`` on CPUs, chosen by device);
  :func:`rank`, :func:`world_size`, :func:`is_main`, :func:`barrier`;
* shards: :func:`shard_indices`, the contract of PyTorch's
  ``DistributedSampler`` (one seeded permutation on every rank, padded to a
  multiple of ``N``, rank ``r`` takes every ``N``-th index from ``r``); the
  loader (:class:`resnet_lab.loader.DeviceLoader`) slices its batches so;
* sums across ranks: :func:`sum_across`, and its differentiable form inside
  :class:`SyncBatchNorm` (PyTorch's own needs a GPU);
* the cost: :func:`ring_allreduce_bytes`;
* :func:`launch`: ``N`` worker processes on this machine from Python (a
  notebook, a test), with a clear error when a rank fails or hangs.

:func:`resnet_lab.train.fit` and :func:`resnet_lab.runs.train_all` use all
this unchanged inside a process group; ``torchrun --nproc_per_node=N -m
resnet_lab.train ...`` starts one (:mod:`resnet_lab.cli`).
"""

from __future__ import annotations

import datetime
import socket
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from . import device as dev
from . import settings

__all__ = [
    "init", "active", "rank", "world_size", "is_main", "barrier", "share", "backend_for", "sum_across",
    "collective_device", "broadcast_floats", "broadcast_buffers", "shard_indices", "padding", "pad_order",
    "ring_allreduce_bytes", "SyncBatchNorm", "convert_sync_batchnorm", "wrap", "unwrap", "launch", "WorkerError",
    "free_port",
]  # fmt: skip

#: Seconds a rank waits for the others (to join, or inside a collective) before it gives up with an error.
TIMEOUT_S = 300


def active() -> bool:
    """Whether this process is one of two or more ranks of an initialised process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 outside a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """The number of ranks (1 outside a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    """Whether this process is rank 0, the one that prints, draws progress and writes checkpoints."""
    return rank() == 0


def share() -> tuple[int, int]:
    """``(rank, world_size)``: which share of every batch this process trains on."""
    return rank(), world_size()


def barrier() -> None:
    """Wait until every rank gets here (nothing to wait for in one process)."""
    if active():
        dist.barrier()


def backend_for(device: torch.device | str) -> str:
    """``nccl`` for CUDA GPUs (NVIDIA's collectives over NVLink, PCIe or InfiniBand), ``gloo`` otherwise
    (CPUs, over TCP; it also runs on a laptop)."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def init(device: str | torch.device = "auto", timeout_s: float = TIMEOUT_S) -> torch.device:
    """Join the process group described by the environment, if there is one; returns this rank's device.

    ``torchrun`` (or :func:`launch`) sets ``RANK``, ``WORLD_SIZE``,
    ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` for every process it
    starts. Without them this does nothing and returns ``device`` resolved
    as usual. With them, each rank takes GPU ``LOCAL_RANK`` where there are
    GPUs (``nccl``), else the CPU (``gloo``).
    """
    if settings.launcher() is None or (dist.is_available() and dist.is_initialized()):
        return _device_of_rank(device)
    device = _device_of_rank(device)
    dist.init_process_group(backend_for(device), timeout=datetime.timedelta(seconds=timeout_s))
    return device


def _device_of_rank(device: str | torch.device) -> torch.device:
    chosen, started = dev.resolve(device), settings.launcher()
    if chosen.type != "cuda" or started is None:
        return chosen
    local, gpus = started["local_rank"], torch.cuda.device_count()
    if chosen.index is None:
        if local >= gpus:
            raise RuntimeError(f"local rank {local} needs GPU {local}, but this machine has {gpus} GPU(s); start "
                               f"at most {gpus} processes per node (torchrun --nproc_per_node={gpus}), or train on "
                               "the CPUs with device='cpu'")  # fmt: skip
        chosen = torch.device("cuda", local)
    torch.cuda.set_device(chosen)
    return chosen


def sum_across(values: torch.Tensor) -> torch.Tensor:
    """``values`` summed over every rank (a copy; ``values`` itself outside a process group)."""
    if not active():
        return values
    values = values.clone()
    dist.all_reduce(values)
    return values


def collective_device() -> torch.device:
    """Where a tensor for a collective must live: this rank's GPU under ``nccl``, the CPU under ``gloo`` (and
    outside a process group)."""
    if dist.is_available() and dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def broadcast_floats(values: Sequence[float]) -> list[float]:
    """Rank 0's ``values`` on every rank: what makes every rank take the same decision (a plan, a budget)."""
    if not active():
        return list(values)
    t = torch.tensor(list(values), dtype=torch.float64, device=collective_device())
    dist.broadcast(t, src=0)
    return t.tolist()


def broadcast_buffers(model: nn.Module) -> None:
    """Rank 0's buffers (BatchNorm's running statistics) on every rank. With per-rank BatchNorm each rank
    updates its own from its share of the batch; the trainer calls this before testing, so that every
    rank tests the model rank 0 checkpoints (DDP itself syncs them only at a training forward)."""
    if active():
        for b in model.buffers():
            dist.broadcast(b, src=0)


# --- Shards ---------------------------------------------------------------------------------


def padding(n: int, world: int) -> int:
    """Indices repeated so that ``n`` images split into ``world`` equal shards: ``ceil(n / world) * world - n``."""
    return -(-n // world) * world - n


def pad_order(order: torch.Tensor, world: int) -> torch.Tensor:
    """``order`` with its first :func:`padding` indices repeated at its end (cycling, if it is shorter
    than ``world``), so that it splits into ``world`` equal shards."""
    pad = padding(len(order), world)
    return torch.cat([order, order.repeat(-(-pad // len(order)))[:pad]]) if pad else order


def shard_indices(n: int, world: int, rank: int, *, seed: int = 0, epoch: int = 0,
                  shuffle: bool = True) -> torch.Tensor:  # fmt: skip
    """The indices rank ``rank`` of ``world`` trains on in ``epoch``: PyTorch's ``DistributedSampler`` contract.

    Every rank draws the same permutation, pads it with its own first
    indices to a multiple of ``world`` (so every rank gets as many images;
    :func:`padding` says how many are seen twice), and takes every
    ``world``-th index starting at ``rank``. Across ranks every image comes
    once per epoch, the padded ones twice.
    """
    if not (isinstance(world, int) and world >= 1 and isinstance(rank, int) and 0 <= rank < world):
        raise ValueError(f"rank must be in 0..world-1 with world >= 1, got rank={rank!r}, world={world!r}")
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)  # as resnet_lab.loader.DeviceLoader seeds it
    order = torch.randperm(n, generator=g) if shuffle else torch.arange(n)
    return pad_order(order, world)[rank::world]


def ring_allreduce_bytes(params: int, world: int, bytes_per_value: int = 4) -> float:
    """Bytes each rank sends (and receives) in one ring all-reduce of ``params`` values.

    The ring (Patarasuk & Yuan 2009; Baidu's ``allreduce`` for deep
    learning, 2017) cuts the gradient into ``world`` chunks; ``world - 1``
    steps of reduce-scatter, then ``world - 1`` of all-gather, each sending
    one chunk to the next rank: ``2 (world - 1) / world`` of the gradient per
    rank; once the gradient at 2 ranks, approaching twice it as ranks are
    added, never more.
    """
    if world < 1 or params < 0:
        raise ValueError(f"need world >= 1 and params >= 0, got world={world}, params={params}")
    return 2 * (world - 1) / world * params * bytes_per_value


# --- BatchNorm across ranks -----------------------------------------------------------------


class _SumAcrossRanks(torch.autograd.Function):
    """An all-reduce (sum) that gradients flow through: each rank's output depends on every rank's input, so
    the gradient of an input is the sum of every rank's output gradient, itself an all-reduce."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class SyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of the whole batch, across ranks.

    In training mode within a process group, each channel's mean and
    (biased) variance are computed from sums all-reduced over every rank, so
    every rank normalises with the statistics one process would compute on
    the combined batch, and the running statistics get the same update
    (unbiased variance over the combined count). Gradients flow through the
    sums. Otherwise (one process, or eval mode) it is ``BatchNorm``.
    PyTorch's ``nn.SyncBatchNorm`` does the same with fused kernels but only
    on GPUs; :func:`convert_sync_batchnorm` picks it there and this one on CPUs.
    """

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"SyncBatchNorm expects (N, C, ...) input, got shape {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        if not (self.training and active()):
            return _plain_batchnorm(self, x)
        dims = [0, *range(2, x.dim())]  # all but the channels
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = x.new_full((1,), x.numel() / x.shape[1])
        # one all-reduce: each channel's sum, and the values per channel
        sums = _SumAcrossRanks.apply(torch.cat([x.sum(dims), count]))
        n = sums[-1]
        mean = sums[:-1] / n  # the combined batch's mean
        centred = x - mean.view(shape)
        squares = _SumAcrossRanks.apply((centred * centred).sum(dims))
        var = squares / n  # and its (biased) variance
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            self._update_running(mean.detach(), var.detach() * n / (n - 1))
        return out

    @torch.no_grad()
    def _update_running(self, mean: torch.Tensor, unbiased_var: torch.Tensor) -> None:
        self.num_batches_tracked += 1
        m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        self.running_mean.mul_(1 - m).add_(mean, alpha=m)
        self.running_var.mul_(1 - m).add_(unbiased_var, alpha=m)


def _plain_batchnorm(bn: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
    return nn.modules.batchnorm._BatchNorm.forward(bn, x)


def convert_sync_batchnorm(model: nn.Module, device: torch.device | str | None = None) -> nn.Module:
    """``model`` with every BatchNorm synchronised across ranks: PyTorch's ``nn.SyncBatchNorm`` on CUDA,
    :class:`SyncBatchNorm` elsewhere (weights, running statistics and ``frozen_eval`` marks kept; the
    state dict's keys do not change). Modules are replaced in place; the root is returned (a new one only
    where ``model`` is itself a BatchNorm)."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if isinstance(model, nn.modules.batchnorm._BatchNorm) and not isinstance(model, SyncBatchNorm):
        dtype = next(iter(model.state_dict().values())).dtype if model.state_dict() else None
        synced = SyncBatchNorm(model.num_features, model.eps, model.momentum, model.affine,
                               model.track_running_stats, device=device, dtype=dtype)  # fmt: skip
        synced.load_state_dict(model.state_dict())
        synced.train(model.training)
        for name, p in model.named_parameters():
            getattr(synced, name).requires_grad_(p.requires_grad)
        if hasattr(model, "frozen_eval"):
            synced.frozen_eval = model.frozen_eval
        return synced
    for name, child in model.named_children():
        model.add_module(name, convert_sync_batchnorm(child, device))
    return model


# --- The model on every rank ----------------------------------------------------------------


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in ``DistributedDataParallel`` inside a process group of two or more ranks (it broadcasts
    rank 0's weights at once, and averages gradients during ``backward``); ``model`` itself otherwise."""
    if not active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside a ``DistributedDataParallel`` wrapper (its state dict has no ``module.`` prefix)."""
    return getattr(model, "module", model)


# --- Launching workers from Python ------------------------------------------------------------


class WorkerError(RuntimeError):
    """A worker process of :func:`launch` raised, died or ran past its time limit."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for rank 0's rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(fn: Callable, nprocs: int = 2, args: tuple = (), *, timeout_s: float = 300,
           threads: int | None = None, backend: str = "gloo") -> list:  # fmt: skip
    """Run ``fn(*args)`` on ``nprocs`` new processes of this machine, ranks of one process group; returns
    each rank's return value, in rank order.

    What ``torchrun`` does for a script, for a function: every process
    gets the environment of a rank (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``
    127.0.0.1 and a free ``MASTER_PORT``) and joins the group (``gloo``:
    CPUs) before ``fn`` runs. ``fn`` must be importable (defined in a module,
    not in a notebook cell), since each process starts a fresh Python.
    ``threads``: PyTorch threads per process (default: this machine's
    threads shared out, at least 1).

    A rank that raises, exits, or is still running after ``timeout_s``
    seconds stops every rank, and :class:`WorkerError` says which rank and why
    (with its traceback), instead of leaving the others waiting for it.
    """
    if not isinstance(nprocs, int) or nprocs < 1:
        raise ValueError(f"nprocs must be a positive int, got {nprocs!r}")
    import torch.multiprocessing as mp

    threads = threads or max(1, torch.get_num_threads() // nprocs)
    with tempfile.TemporaryDirectory(prefix="resnet-lab-ranks-") as out:
        env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "WORLD_SIZE": str(nprocs),
               "LOCAL_WORLD_SIZE": str(nprocs)}  # fmt: skip
        context = mp.start_processes(_worker, args=(fn, args, env, out, threads, backend, timeout_s),
                                     nprocs=nprocs, join=False, start_method="spawn")  # fmt: skip
        deadline = time.monotonic() + timeout_s
        try:
            while not context.join(timeout=0.2):
                if time.monotonic() > deadline:
                    running = [r for r, p in enumerate(context.processes) if p.is_alive()]
                    raise WorkerError(f"rank(s) {running} of {nprocs} still running after {timeout_s:.0f} s (a rank "
                                      "waiting for one that never came, or work longer than the limit); every rank "
                                      "was stopped. Raise timeout_s if the work needs longer.")  # fmt: skip
        except mp.ProcessRaisedException as e:
            first, trace = _first_failure(context, e.error_index, e.msg)
            raise WorkerError(f"rank {first} of {nprocs} raised an exception; every rank was stopped. "
                              f"Its traceback:\n{trace}") from None  # fmt: skip
        except mp.ProcessExitedException as e:
            how = f"was killed by signal {e.signal_name}" if e.signal_name else f"exited with code {e.exit_code}"
            raise WorkerError(f"rank {e.error_index} of {nprocs} {how} before finishing; every rank was "
                              "stopped") from None  # fmt: skip
        finally:
            for p in context.processes:
                if p.is_alive():
                    p.terminate()
                p.join(5)
        return [torch.load(Path(out) / f"rank{r}.pt", weights_only=False) for r in range(nprocs)]


#: What a rank's error says when it failed only because another rank had gone (gloo's words).
_PEER_GONE = ("Connection closed by peer", "remote worker crashing", "Connection reset by peer")


def _first_failure(context, index: int, trace: str) -> tuple[int, str]:
    """The rank whose failure caused the others': a rank that raised may take its peers down with it
    ("connection closed by peer"), and whichever is reported first, the cause is the rank that failed
    for a reason of its own. Reads every rank's error file (torch.multiprocessing writes one per failure)."""
    import pickle

    for p in context.processes:
        p.join(2)  # the peers fail within moments of the cause
    traces = {}
    for r, path in enumerate(context.error_files):
        try:
            with open(path, "rb") as fh:
                traces[r] = pickle.load(fh)
        except Exception:  # noqa: BLE001, S110 - no error file: the rank did not raise
            pass
    traces.setdefault(index, trace)
    causes = [r for r, t in sorted(traces.items()) if not any(m in t for m in _PEER_GONE)]
    first = causes[0] if causes else index
    return first, traces[first]


def _worker(local_rank: int, fn: Callable, args: tuple, env: dict, out: str, threads: int, backend: str,
            timeout_s: float) -> None:  # fmt: skip
    settings.export({**env, "RANK": str(local_rank), "LOCAL_RANK": str(local_rank)})
    torch.set_num_threads(threads)
    dist.init_process_group(backend, rank=local_rank, world_size=int(env["WORLD_SIZE"]),
                            timeout=datetime.timedelta(seconds=timeout_s))  # fmt: skip
    try:
        result = fn(*args)  # an exception here reaches the parent, traceback and all (torch.multiprocessing)
    finally:
        dist.destroy_process_group()
    torch.save(result, Path(out) / f"rank{local_rank}.pt")
