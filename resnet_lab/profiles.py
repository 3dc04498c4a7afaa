"""Run profiles: how big every experiment in the book is, in one place.

* ``smoke``: CI. Tiny subsets, one epoch; every notebook in well under 60 s
  on 2 CPU cores. Checks that the code runs, not what it finds.
* ``cpu``: a 2-core laptop. Real data, short schedules, minutes per chapter;
  results that mean something.
* ``gpu``: paper scale, for Colab or any CUDA machine.

The profile comes from ``RESNET_LAB_PROFILE`` or, if unset, from the machine
(``gpu`` where CUDA is available, else ``cpu``). Speeds measured here (fp32,
batch 128, 2 cores) that the sizes below are planned from: CIFAR ResNet-20 on
28x28 about 320-580 img/s, ResNet-56 on 32x32 about 75 img/s, D2L's ResNet-18
on 96x96 about 40 img/s.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import torch

__all__ = ["Profile", "PROFILES", "PAPER_RECIPE", "FASHION_RECIPE", "get_profile", "banner"]

#: How ``fit`` trains CIFAR-family nets in the degradation and CIFAR-10
#: chapters: He et al. (2015), section 4.2 (SGD, momentum 0.9, weight decay
#: 1e-4, lr 0.1 divided by 10 at 50% and 75% of training; batch 128).
PAPER_RECIPE = {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4, "schedule": "step"}

#: How ``fit`` trains the Fashion-MNIST model in every profile (the book's
#: "laptop recipe"): one-cycle schedule, Nesterov momentum, weight decay 5e-4,
#: label smoothing 0.1, random horizontal flips. Sizes and epochs are per profile.
FASHION_RECIPE = {
    "schedule": "onecycle",
    "nesterov": True,
    "weight_decay": 5e-4,
    "label_smoothing": 0.1,
}
FASHION_AUGMENT = "flip"


@dataclass(frozen=True)
class Profile:
    """Sizes of every experiment. ``None`` as a size means the whole split."""

    name: str
    description: str
    # "Training on Fashion-MNIST": our recipe (the laptop recipe on `cpu`);
    # ``fashion_model`` names a CIFAR-family depth, e.g. "resnet14".
    fashion_model: str
    fashion_train: int | None
    fashion_test: int | None
    fashion_epochs: int
    fashion_lr: float
    # The same chapter: D2L's recipe (ResNet-18, resize 96, lr 0.05, train_ch6);
    # sizes are rounded down to whole batches, at least 5 (train_ch6 needs 5).
    d2l_train: int | None
    d2l_test: int | None
    d2l_epochs: int
    d2l_resize: int
    d2l_batch: int
    # "The degradation experiment": plain vs residual at these depths.
    degradation_dataset: str
    degradation_depths: tuple[int, ...]
    degradation_train: int | None
    degradation_test: int | None
    degradation_epochs: int
    # "Training on CIFAR-10": ResNets of these depths and the CIFAR ResNet-18.
    # Sizes cap the data found (offline here: the 5,000/1,000 subset).
    cifar_depths: tuple[int, ...]
    cifar_train: int | None
    cifar_test: int | None
    cifar_epochs: int
    batch_size: int = 128

    def as_dict(self) -> dict:
        return asdict(self)


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        description="CI: tiny subsets, one epoch, seconds per notebook",
        fashion_model="resnet14", fashion_train=512, fashion_test=256, fashion_epochs=1, fashion_lr=0.1,
        d2l_train=160, d2l_test=64, d2l_epochs=1, d2l_resize=96, d2l_batch=32,
        degradation_dataset="fashion_mnist", degradation_depths=(8, 14), degradation_train=256,
        degradation_test=128, degradation_epochs=1,
        cifar_depths=(20,), cifar_train=256, cifar_test=128, cifar_epochs=1,
    ),
    "cpu": Profile(
        name="cpu",
        description="2-core laptop: real data, short schedules, minutes per chapter",
        fashion_model="resnet14", fashion_train=None, fashion_test=None, fashion_epochs=7, fashion_lr=0.1,
        d2l_train=2_560, d2l_test=1_024, d2l_epochs=1, d2l_resize=96, d2l_batch=256,
        degradation_dataset="fashion_mnist", degradation_depths=(8, 20, 56), degradation_train=5_000,
        degradation_test=1_000, degradation_epochs=6,
        cifar_depths=(20, 56), cifar_train=None, cifar_test=None, cifar_epochs=4,
    ),
    "gpu": Profile(
        name="gpu",
        description="paper scale on a CUDA GPU (Colab): full data sets, the paper's schedules",
        fashion_model="resnet20", fashion_train=None, fashion_test=None, fashion_epochs=30, fashion_lr=0.1,
        d2l_train=None, d2l_test=None, d2l_epochs=10, d2l_resize=96, d2l_batch=256,
        degradation_dataset="cifar10", degradation_depths=(20, 32, 44, 56), degradation_train=None,
        degradation_test=None, degradation_epochs=164,
        cifar_depths=(20, 56), cifar_train=None, cifar_test=None, cifar_epochs=164,
    ),
}  # fmt: skip


def get_profile(name: str | None = None) -> Profile:
    """The profile ``name``, else ``$RESNET_LAB_PROFILE``, else by machine."""
    chosen = name or os.environ.get("RESNET_LAB_PROFILE") or ("gpu" if torch.cuda.is_available() else "cpu")
    key = chosen.strip().lower()
    if key not in PROFILES:
        where = "argument" if name else "RESNET_LAB_PROFILE"
        raise ValueError(
            f"unknown profile {chosen!r} (from {where}); expected one of {', '.join(PROFILES)}. "
            "Set RESNET_LAB_PROFILE=smoke|cpu|gpu, or unset it to choose by machine."
        )
    return PROFILES[key]


def banner(profile: Profile | None = None) -> str:
    """One line for the top of every notebook: profile, device, versions."""
    import resnet_lab

    profile = profile or get_profile()
    if torch.cuda.is_available():
        device = f"cuda ({torch.cuda.get_device_name(0)})"
    else:
        device = f"cpu ({torch.get_num_threads()} threads)"
    return (
        f"ResNet Lab | profile: {profile.name} ({profile.description}) | device: {device} | "
        f"torch {torch.__version__} | resnet_lab {resnet_lab.__version__}"
    )
