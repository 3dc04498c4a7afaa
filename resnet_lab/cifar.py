"""CIFAR-10 with the paper's recipe: ResNet-20/56 against a CIFAR ResNet-18.

He et al. (2015), section 4.2, train their CIFAR nets with SGD (momentum 0.9,
weight decay 1e-4, batch 128), lr 0.1 divided by 10 at 50% and 75% of
training, and 4-pixel pad + 32x32 crop + horizontal flip.
:func:`train_paper_recipe` trains any set of networks that way and measures
each; :func:`comparison_table` and :func:`comparison_verdict` report the
runs, with the data size they were measured on, beside the paper's and a
public reproduction's figures (cited as theirs). Used by the chapter
"Training on CIFAR-10".
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from torch import nn

from . import models as M
from .data import DeviceLoader, ImageSet
from .experiments import PAPER_TABLE6
from .profiles import PAPER_RECIPE
from .trace import trace
from .train import History, fit

__all__ = ["PAPER_RECIPE", "PAPER_TABLE6", "REPRODUCTION_TEST_ERROR", "CifarRun", "networks",
           "train_paper_recipe", "comparison_table", "comparison_verdict"]  # fmt: skip

#: CIFAR-10 test error (%) of public PyTorch reproductions on the full data
#: set, by network: their figures, not ours. ResNet-n: Y. Idelbayev,
#: github.com/akamaster/pytorch_resnet_cifar10 (the paper's recipe); CIFAR
#: ResNet-18: K. Liu, github.com/kuangliu/pytorch-cifar (350 epochs, lr 0.1,
#: 0.01, 0.001), both from their READMEs.
REPRODUCTION_TEST_ERROR = {"ResNet-20": 8.27, "ResNet-32": 7.37, "ResNet-44": 6.90, "ResNet-56": 6.61,
                           "ResNet-110": 6.32, "CIFAR ResNet-18": 6.98}  # fmt: skip


def networks(depths: tuple[int, ...] | list[int]) -> dict[str, nn.Module]:
    """The paper's ResNets of ``depths`` (option A shortcuts) plus the CIFAR ResNet-18, by display name."""
    nets: dict[str, nn.Module] = {f"ResNet-{d}": M.cifar_resnet(d, "A") for d in depths}
    nets["CIFAR ResNet-18"] = M.cifar_resnet18()
    return nets


@dataclass
class CifarRun:
    """One network trained with the paper's recipe, and what it cost."""

    name: str
    params: int
    macs: int
    history: History
    seconds: float
    train_images: int
    test_images: int

    @property
    def accuracy(self) -> float:
        """Test accuracy after the last epoch (0 to 1)."""
        return 1 - self.history.final.test_error

    @property
    def images_per_s(self) -> float:
        """Training images per second, averaged over the epochs."""
        return sum(r.images_per_s for r in self.history.records) / len(self.history)

    @property
    def depth(self) -> int | None:
        """The paper's depth for ``"ResNet-<depth>"`` names, else None."""
        head, _, tail = self.name.partition("-")
        return int(tail) if head == "ResNet" and tail.isdigit() else None


def train_paper_recipe(
    train_set: ImageSet,
    test_set: ImageSet,
    depths: tuple[int, ...] | list[int],
    epochs: int,
    *,
    batch_size: int = 128,
    warmup: bool = True,
    device: str = "auto",
    progress: bool = True,
    seed: int = 0,
) -> list[CifarRun]:
    """Train ResNet-``depths`` and the CIFAR ResNet-18 with one recipe; returns a run per network.

    ``warmup`` ramps the rate up linearly over the first epoch: short runs
    need it, as the paper's ResNet-110 needed about 400 warm-up iterations.
    Wall time includes the test pass after every epoch.
    """
    if train_set.shape[1:] != (32, 32) or test_set.shape[1:] != (32, 32):
        raise ValueError(
            f"expected 32x32 CIFAR images, got train {train_set.shape} and test {test_set.shape}; "
            "load them with resnet_lab.data.load_cifar10 and no resize."
        )
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs!r}")
    # One pair of loaders serves every network: fit sets the epoch before each
    # pass, so each network sees the same batches, drawn from (seed, epoch).
    train_loader = DeviceLoader(train_set, batch_size, augment="crop_flip", device=device, seed=seed)
    test_loader = DeviceLoader(test_set, 500, device=device)
    runs = []
    for name, net in networks(depths).items():
        t = trace(net, (1, *train_set.shape))
        t0 = time.perf_counter()
        history = fit(net, train_loader, test_loader, epochs=epochs, **PAPER_RECIPE, device=device, seed=seed,
                      warmup_steps=len(train_loader) if warmup else 0, progress=progress)  # fmt: skip
        runs.append(CifarRun(name, t.total_params, t.total_macs, history, time.perf_counter() - t0,
                             len(train_set), len(test_set)))  # fmt: skip
    return runs


def comparison_table(runs: list[CifarRun], profile_name: str | None = None) -> str:
    """Parameters, MACs, accuracy, time and speed per run; the paper's figures beside, marked as theirs."""
    if not runs:
        raise ValueError("no runs to compare: pass the list that train_paper_recipe returned")
    head = (f"{'network':<16}{'params':>12}{'M MACs':>8}{'test acc.':>10}{'time':>8}{'img/s':>7}"
            f"{'paper*':>8}{'repro.**':>9}")  # fmt: skip
    lines = [head, "-" * len(head)]
    for r in runs:
        paper = f"{100 - PAPER_TABLE6[r.depth]:.2f}%" if r.depth in PAPER_TABLE6 else "-"
        repro = f"{100 - REPRODUCTION_TEST_ERROR[r.name]:.2f}%" if r.name in REPRODUCTION_TEST_ERROR else "-"
        lines.append(f"{r.name:<16}{r.params:>12,}{r.macs / 1e6:>8.0f}{r.accuracy:>10.1%}{r.seconds:>7.0f}s"
                     f"{r.images_per_s:>7.0f}{paper:>8}{repro:>9}")  # fmt: skip
    first = runs[0]
    where = f"profile {profile_name}, " if profile_name else ""
    lines.append(f"measured here: {first.train_images:,} training / {first.test_images:,} test images, "
                 f"{len(first.history)} epochs,")  # fmt: skip
    lines.append(f"  {where}device {first.history.info.get('device', '?')}")
    lines.append("*  He et al. (2015), Table 6: full CIFAR-10, 64k iterations (theirs)")
    lines.append("** public PyTorch reproductions, full CIFAR-10 (theirs): ResNet-n by")
    lines.append("   Idelbayev (the paper's recipe), CIFAR ResNet-18 by Liu (350 epochs)")
    return "\n".join(lines)


def comparison_verdict(runs: list[CifarRun]) -> str:
    """What the runs show about size against accuracy and time, computed from their own numbers."""
    if len(runs) < 2:
        raise ValueError(f"need at least 2 runs to compare, got {len(runs)}")
    best = max(runs, key=lambda r: r.accuracy)
    small = min(runs, key=lambda r: r.params)
    big = max(runs, key=lambda r: r.params)
    gain = 100 * (big.accuracy - small.accuracy)
    text = (f"{best.name} reached the highest test accuracy, {best.accuracy:.1%}. {big.name} has "
            f"{big.params / small.params:.0f}x the parameters of {small.name} and {big.macs / small.macs:.1f}x its "
            f"MACs; it trained {big.seconds / small.seconds:.1f}x as long and ended {abs(gain):.1f} points "
            f"{'above' if gain >= 0 else 'below'} it.")  # fmt: skip
    if gain <= 0:
        text += (f" On {small.train_images:,} images and {len(small.history)} epochs, the extra capacity did not "
                 "buy accuracy.")  # fmt: skip
    else:
        text += " Here the extra capacity bought accuracy, at that cost in time."
    return text
