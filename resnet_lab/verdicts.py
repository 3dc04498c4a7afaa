"""What each chapter's runs show, computed from their own numbers.

Every function here takes the same thing, a mapping of network name to its
:class:`~resnet_lab.train.History` (or to a list of histories, one per seed),
plus thresholds with defaults, and returns a :class:`~resnet_lab.report.Verdict`:
whether the chapter's claim held in this run, and a sentence that says what
the run showed, including what did not go the expected way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from .report import Runs, Verdict, _as_lists, mean_and_spread

__all__ = ["degradation_verdict", "comparison_verdict", "preact_verdict", "zero_init_verdict", "lesion_verdict",
           "landscape_verdict", "transfer_verdict", "final_errors"]  # fmt: skip


def final_errors(runs: Runs, which: str = "train") -> dict[str, tuple[float, float, int]]:
    """``{name: (mean, sample sd, seeds)}`` of the final ``which`` ("train" or "test") error in percent."""
    out = {}
    for name, hs in _as_lists(runs).items():
        values = [100 * getattr(h.final, f"{which}_error") for h in hs]
        mean, sd = mean_and_spread(values)
        out[name] = (mean, sd, len(values))
    return out


def _depths(runs: Runs, kind: str) -> list[int]:
    found = [int(m[1]) for name in runs if (m := re.fullmatch(rf"{kind}-(\d+)", name))]
    if not found:
        raise ValueError(f"no '{kind}-<depth>' runs among {list(runs)}")
    return sorted(found)


def degradation_verdict(runs: Runs, margin: float = 2.0) -> Verdict:
    """Plain vs residual at the run's shallowest and deepest depth (names ``plain-<d>``, ``residual-<d>``,
    one history per seed, the seeds in the same order for every name).

    With few seeds the comparisons are made seed by seed: the effect is shown
    when, in every seed, the deepest plain net ends with a training error
    more than ``margin`` points above the shallowest plain net's and above the
    residual net's of its own depth; and when the deeper residual net ends,
    on average, no more above the shallower one than the spread between seeds.
    """
    lists = _as_lists(runs)
    depths = _depths(runs, "plain")
    lo, hi = depths[0], depths[-1]
    train = {name: [100 * h.final.train_error for h in hs] for name, hs in lists.items()}
    p_lo, p_hi, r_lo, r_hi = (train[f"{k}-{d}"] for k, d in (("plain", lo), ("plain", hi), ("residual", lo),
                                                             ("residual", hi)))  # fmt: skip
    seeds = len(p_hi)
    gaps_plain = [a - b for a, b in zip(p_hi, p_lo)]
    gaps_fix = [a - b for a, b in zip(p_hi, r_hi)]
    gaps_res = [a - b for a, b in zip(r_hi, r_lo)]
    spread = max(mean_and_spread(r_hi)[1], mean_and_spread(r_lo)[1], 0.5)

    def pm(values: list[float]) -> str:
        mean, sd = mean_and_spread(values)
        return f"{mean:.1f}%" + (f" ± {sd:.1f}" if seeds > 1 else "")

    def span(gaps: list[float]) -> str:
        return f"{gaps[0]:.1f} points" if seeds == 1 else f"{min(gaps):.1f} to {max(gaps):.1f} points"

    every = "in every seed" if seeds > 1 else "in this run"
    text = (f"plain-{hi} ended with {pm(p_hi)} training error, plain-{lo} with {pm(p_lo)}, ResNet-{hi} with "
            f"{pm(r_hi)} and ResNet-{lo} with {pm(r_lo)}")  # fmt: skip
    text += (f" (mean ± sample standard deviation over {seeds} seeds). " if seeds > 1 else
             " (one seed: the spread between seeds was not measured). ")  # fmt: skip
    deeper_worse = min(gaps_plain) > margin
    residual_fixes = min(gaps_fix) > margin
    text += (f"The deeper plain net trained worse {every}, by {span(gaps_plain)}, " if deeper_worse else
             f"The deeper plain net was not worse by more than {margin:.0f} points {every} ({span(gaps_plain)}), ")
    text += (f"and the residual net of its depth trained better {every}, by {span(gaps_fix)}. " if residual_fixes
             else f"and the residual net of its depth was not better by more than {margin:.0f} points {every} "
             f"({span(gaps_fix)}). ")  # fmt: skip
    mean_gap = sum(gaps_res) / seeds
    residual_ok = mean_gap <= spread
    if mean_gap < 0:
        text += f"The deeper residual net ended {-mean_gap:.1f} points below the shallower one on average."
    elif residual_ok:
        text += (f"The deeper residual net ended {mean_gap:.1f} points above the shallower one on average, within "
                 f"the spread between seeds ({spread:.1f}).")  # fmt: skip
    else:
        text += (f"The deeper residual net ended {mean_gap:.1f} points above the shallower one on average, more "
                 f"than the spread between seeds ({spread:.1f}): in this run depth cost the residual net too.")
    holds = deeper_worse and residual_fixes and residual_ok
    return Verdict(holds, ("Degradation shown: " if holds else "Not all of the effect shows in this run: ") + text)


def comparison_verdict(runs: Runs) -> Verdict:
    """Networks trained with one recipe: which reached the best test accuracy, and what the bigger one
    cost (parameters and training time) against what it bought."""
    hs = {n: h[0] for n, h in _as_lists(runs).items()}
    if len(hs) < 2:
        raise ValueError(f"need at least 2 runs to compare, got {len(hs)}")
    acc = {n: 100 * (1 - h.final.test_error) for n, h in hs.items()}
    best = max(acc, key=acc.get)
    small = min(hs, key=lambda n: hs[n].info["params"])
    big = max(hs, key=lambda n: hs[n].info["params"])
    gain = acc[big] - acc[small]
    ratio_p = hs[big].info["params"] / hs[small].info["params"]
    ratio_t = hs[big].seconds / hs[small].seconds
    text = (f"{best} reached the highest test accuracy, {acc[best]:.1f}%. {big} has {ratio_p:.1f}x the parameters "
            f"of {small} and trained {ratio_t:.1f}x as long; it ended {abs(gain):.1f} points "
            f"{'above' if gain >= 0 else 'below'} it ({acc[big]:.1f}% against {acc[small]:.1f}%).")  # fmt: skip
    return Verdict(gain > 0, text)


def preact_verdict(runs: Runs, post: str, pre: str) -> Verdict:
    """Post- against pre-activation nets trained with the same recipe (one seed: no spread measured)."""
    tr, te = final_errors(runs, "train"), final_errors(runs, "test")
    diff = te[post][0] - te[pre][0]
    text = (f"{pre} ended with {te[pre][0]:.1f}% test error ({tr[pre][0]:.1f}% training), {post} with "
            f"{te[post][0]:.1f}% ({tr[post][0]:.1f}% training): pre-activation {'lower' if diff > 0 else 'higher'} "
            f"by {abs(diff):.1f} points in this run.")  # fmt: skip
    if te[pre][2] == 1:
        text += " One seed each, so a difference of a point or two may be the seed's, not the block's."
    return Verdict(diff > 0, text)


def zero_init_verdict(runs: Runs, zero: str, default: str) -> Verdict:
    """The first epochs with and without zero-initialised residual branches: training loss per epoch, and
    the highest loss of any logged stretch of steps (where an unstable start shows)."""
    h0, h1 = (_as_lists(runs)[n][0] for n in (zero, default))
    first = [(r0.train_loss, r1.train_loss) for r0, r1 in zip(h0.records, h1.records)]
    lower = sum(a < b for a, b in first)
    losses = "; ".join(f"epoch {i + 1}: {a:.3f} vs {b:.3f}" for i, (a, b) in enumerate(first))
    peak0, peak1 = (max(p["train_loss"] for p in h.steps) for h in (h0, h1))
    text = (f"Training loss with zero-initialised residual branches against the default initialisation, {losses}: "
            f"zero-init was lower in {lower} of {len(first)} epochs. The highest loss over any logged stretch of "
            f"steps was {peak0:.2f} with zero-init and {peak1:.2f} without.")  # fmt: skip
    return Verdict(lower == len(first), text)


def lesion_verdict(study: Mapping[str, Mapping[str, Sequence[float] | float]], residual: str, plain: str,
                   chance: float = 0.9) -> Verdict:  # fmt: skip
    """From two :func:`resnet_lab.beyond.lesion_study` results: did the residual net degrade smoothly
    when single blocks were deleted, and the plain net collapse?"""
    r, p = study[residual], study[plain]
    r_rise = [100 * (e - r["intact"]) for e in r["single"]]
    p_rise = [100 * (e - p["intact"]) for e in p["single"]]
    r_mean, p_mean = sum(r_rise) / len(r_rise), sum(p_rise) / len(p_rise)
    p_worst = 100 * max(p["single"])
    text = (f"Deleting one block at a time raised {residual}'s test error by {r_mean:.1f} points on average "
            f"(at most {max(r_rise):.1f}, from {100 * r['intact']:.1f}%), and {plain}'s by {p_mean:.1f} points "
            f"(at most {max(p_rise):.1f}, from {100 * p['intact']:.1f}%; chance is {100 * chance:.0f}%).")  # fmt: skip
    holds = r_mean * 3 < p_mean
    text += (" The residual net degraded smoothly and the plain net did not." if holds else
             " This run does not show a clear contrast (the residual net's average rise is not under a third of "
             "the plain net's).")  # fmt: skip
    return Verdict(holds, text + f" Worst single deletion in {plain}: {p_worst:.1f}% error.")


def landscape_verdict(surfaces: Mapping[str, object], residual: str, plain: str) -> Verdict:
    """From two loss surfaces (:func:`resnet_lab.beyond.loss_surface` losses): local minima on the grid
    (other than the centre) and how far the loss rises from the centre to the grid's edge."""
    import torch

    def describe(losses: torch.Tensor) -> tuple[int, float, float]:
        n = losses.shape[0]
        padded = torch.nn.functional.pad(losses[None, None], (1, 1, 1, 1), value=float("inf"))[0, 0]
        neighbours = torch.stack([padded[1 + dy : 1 + dy + n, 1 + dx : 1 + dx + n] for dy in (-1, 0, 1)
                                  for dx in (-1, 0, 1) if dy or dx])  # fmt: skip
        minima = (losses < neighbours.min(0).values).sum().item() - int(losses[n // 2, n // 2] <= losses.min())
        edge = torch.cat([losses[0], losses[-1], losses[:, 0], losses[:, -1]]).median().item()
        return int(minima), losses[n // 2, n // 2].item(), edge

    r_min, r_centre, r_edge = describe(surfaces[residual])
    p_min, p_centre, p_edge = describe(surfaces[plain])
    text = (f"On the grid, {residual}'s loss rises from {r_centre:.2f} at the trained weights to a median "
            f"{r_edge:.2f} at the edge ({r_edge / max(r_centre, 1e-6):.0f} times); {plain}'s rises from "
            f"{p_centre:.2f} to {p_edge:.2f} ({p_edge / max(p_centre, 1e-6):.0f} times).")  # fmt: skip
    steeper = p_edge / max(p_centre, 1e-6) > r_edge / max(r_centre, 1e-6)
    if p_min > r_min:
        minima = f" and shows more local minima ({p_min} against {r_min})"
    elif p_min == r_min:
        minima = f"; both show {p_min} local minima besides the centre"
    else:
        minima = f", but shows fewer local minima ({p_min} against {r_min})"
    text += f" The plain net's surface is {'the' if steeper else 'not the'} steeper{minima}."
    return Verdict(steeper and p_min >= r_min, text)


_TRANSFER_NAME = re.compile(r"^(?P<way>.+), (?P<k>\d+)/class$")


def transfer_verdict(runs: Runs, margin: float = 2.0) -> Verdict:
    """Did pretrained features help at few labels? Names are ``"<way>, <k>/class"`` with the ways
    ``from scratch``, ``linear probe`` and ``fine-tune``; compares test accuracies at the fewest labels."""
    acc: dict[str, dict[int, float]] = {}
    for name, hs in _as_lists(runs).items():
        m = _TRANSFER_NAME.match(name)
        if m is None:
            raise ValueError(f"run name {name!r} is not '<way>, <k>/class'")
        acc.setdefault(m["way"], {})[int(m["k"])] = 100 * (1 - hs[0].final.test_error)
    missing = {"from scratch", "linear probe", "fine-tune"} - acc.keys()
    if missing:
        raise ValueError(f"runs for {sorted(missing)} are missing")
    k, most = min(acc["from scratch"]), max(acc["from scratch"])
    scratch = acc["from scratch"][k]
    best_way = max(("linear probe", "fine-tune"), key=lambda w: acc[w][k])
    gain = acc[best_way][k] - scratch
    at_most = ", ".join(f"{w} {acc[w][most]:.1f}%" for w in ("from scratch", "linear probe", "fine-tune"))
    text = (f"With {k} labels per class, training from scratch reached {scratch:.1f}% test accuracy, the linear "
            f"probe {acc['linear probe'][k]:.1f}% and fine-tuning {acc['fine-tune'][k]:.1f}%: {best_way} "
            f"{'gained' if gain >= 0 else 'lost'} {abs(gain):.1f} points against no transfer. With {most} labels "
            f"per class: {at_most}.")  # fmt: skip
    if gain < margin:
        text += f" That is less than the {margin:.0f} points this verdict asks of a benefit."
    return Verdict(gain >= margin, text)
