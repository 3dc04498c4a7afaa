"""The degradation experiment (He et al. 2015, section 4.2, Fig. 6), sized by profile.

:func:`run_degradation` trains plain and residual CIFAR-family networks of
the profile's depths with one recipe and returns their histories;
:func:`plot_degradation` draws them in the style of the paper's Fig. 6;
:func:`degradation_verdict` states, from the run's own numbers, whether the
deeper plain nets ended with higher training error and whether the residual
nets avoided it. Used by the chapter "The degradation experiment".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import models as M
from .data import DeviceLoader, load_dataset
from .profiles import PAPER_RECIPE, Profile
from .train import History, fit

__all__ = ["DegradationResult", "run_degradation", "plot_degradation", "degradation_table", "degradation_verdict",
           "PAPER_TABLE6"]  # fmt: skip

#: CIFAR-10 test error (%) of the residual nets in He et al. (2015), Table 6
#: (the paper's figures, not ours). The paper shows plain nets only in Fig. 6.
PAPER_TABLE6 = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43}

#: The margin (in points of training error) the chapter asks the effect to show.
MARGIN = 3.0


@dataclass
class DegradationResult:
    """Histories of every (kind, depth) run, plus what the data was."""

    dataset: str
    train_images: int
    test_images: int
    depths: tuple[int, ...]
    histories: dict[str, History] = field(default_factory=dict)

    def history(self, kind: str, depth: int) -> History:
        return self.histories[f"{kind}-{depth}"]

    def final_train_error(self, kind: str, depth: int) -> float:
        """Training error (%) over the last epoch."""
        return 100 * self.history(kind, depth).final.train_error

    def final_test_error(self, kind: str, depth: int) -> float:
        return 100 * self.history(kind, depth).final.test_error


def run_degradation(profile: Profile, device: str = "auto", progress: bool = True, seed: int = 0,
                    checkpoint_dir: str | None = None) -> DegradationResult:  # fmt: skip
    """Train plain and residual nets at ``profile.degradation_depths`` with one recipe.

    The recipe is the paper's: SGD with momentum 0.9, weight decay 1e-4, lr 0.1
    divided by 10 at 50% and 75% of training, batch 128, option A shortcuts,
    with a warm-up: the rate ramps up over the first epoch, as the paper warms
    up ResNet-110 for about 400 iterations (without it, 56-layer nets diverge
    early in short runs).
    """
    name = profile.degradation_dataset
    train = load_dataset(name, True, subset=profile.degradation_train)
    test = load_dataset(name, False, subset=profile.degradation_test)
    augment = "crop_flip" if name == "cifar10" else None
    result = DegradationResult(name, len(train), len(test), profile.degradation_depths)
    # One pair of loaders serves every run: fit sets the epoch before each
    # pass, so every network sees the same batches from (seed, epoch).
    train_loader = DeviceLoader(train, profile.batch_size, augment=augment, device=device, seed=seed)
    test_loader = DeviceLoader(test, 500, device=device)
    for depth in profile.degradation_depths:
        for kind in ("plain", "residual"):
            model = M.cifar_resnet(depth, "A", plain=kind == "plain", in_channels=train.shape[0])
            ckpt = f"{checkpoint_dir}/{kind}-{depth}.pt" if checkpoint_dir else None
            result.histories[f"{kind}-{depth}"] = fit(
                model, train_loader, test_loader, epochs=profile.degradation_epochs, **PAPER_RECIPE,
                warmup_steps=len(train_loader), device=device, progress=progress, seed=seed, checkpoint=ckpt,
            )  # fmt: skip
    return result


def plot_degradation(result: DegradationResult):
    """Fig. 6 style: train error (thin) and test error (bold) against iterations; plain left, residual right."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    colours = plt.cm.viridis_r([0.15 + 0.7 * i / max(1, len(result.depths) - 1) for i in range(len(result.depths))])
    for ax, kind in zip(axes, ("plain", "residual")):
        for depth, colour in zip(result.depths, colours):
            h = result.history(kind, depth)
            label = f"{kind}-{depth}" if kind == "plain" else f"ResNet-{depth}"
            ax.plot([p["step"] for p in h.steps], [100 * p["train_error"] for p in h.steps], lw=0.9, color=colour)
            ax.plot([r.step for r in h.records], [100 * r.test_error for r in h.records], lw=2.6, color=colour,
                    label=label)  # fmt: skip
        ax.set_title("plain" if kind == "plain" else "residual")
        ax.set_xlabel("iterations")
        ax.legend(title="bold: test, thin: train", fontsize=8, title_fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("error (%)")
    fig.tight_layout()
    return fig


def degradation_table(result: DegradationResult) -> str:
    """Final errors per depth, beside the paper's Table 6 (cited, not measured here)."""
    head = (f"{'depth':>5}  {'plain train':>11}  {'plain test':>10}  {'ResNet train':>12}  {'ResNet test':>11}  "
            f"{'paper ResNet test*':>18}")  # fmt: skip
    lines = [head, "-" * len(head)]
    for d in result.depths:
        paper = f"{PAPER_TABLE6[d]:.2f}" if d in PAPER_TABLE6 else "-"
        lines.append(
            f"{d:>5}  {result.final_train_error('plain', d):>10.2f}%  {result.final_test_error('plain', d):>9.2f}%  "
            f"{result.final_train_error('residual', d):>11.2f}%  {result.final_test_error('residual', d):>10.2f}%  "
            f"{paper:>18}"
        )
    lines.append(f"data: {result.dataset}, {result.train_images:,} train / {result.test_images:,} test images.")
    lines.append("* He et al. (2015), Table 6: full CIFAR-10, 64k iterations; their figures, not this run's.")
    return "\n".join(lines)


def degradation_verdict(result: DegradationResult, margin: float = MARGIN) -> tuple[bool, str]:
    """Did this run show degradation (by at least ``margin`` points)? Returns (shown, sentence)."""
    shallow, deep = min(result.depths), max(result.depths)
    p_shallow = result.final_train_error("plain", shallow)
    p_deep = result.final_train_error("plain", deep)
    r_deep = result.final_train_error("residual", deep)
    deeper_worse = p_deep - p_shallow >= margin
    residual_fixes = p_deep - r_deep >= margin
    numbers = (f"plain-{deep} ended with {p_deep:.1f}% training error against {p_shallow:.1f}% for plain-{shallow} "
               f"and {r_deep:.1f}% for ResNet-{deep}")  # fmt: skip
    if deeper_worse and residual_fixes:
        return True, (f"Degradation shown: {numbers}. The deeper plain net trains worse, by "
                      f"{p_deep - p_shallow:.1f} points, and the residual net of the same depth does not "
                      f"({p_deep - r_deep:.1f} points better).")  # fmt: skip
    missing = []
    if not deeper_worse:
        missing.append(f"the deepest plain net is not {margin:.0f}+ points worse than the shallowest")
    if not residual_fixes:
        missing.append(f"the residual net is not {margin:.0f}+ points better than the plain net of its depth")
    advice = "Small runs (like the smoke profile) are too short to show it; use the cpu or gpu profile."
    return False, f"This run does not show the effect clearly: {numbers}; {' and '.join(missing)}. {advice}"
