"""Shape tracing with forward hooks: what every module outputs, costs and holds.

``trace(model, (1, 3, 224, 224), depth=2)`` runs one forward pass with a hook
on every module and returns a :class:`Trace`: one row per module down to the
chosen depth, with its output shape, parameters and multiply-accumulates
(MACs). ``print(t)`` gives a plain-text table; in a notebook ``t`` renders as
HTML. Chapter "Inside the blocks: tracing shapes" is built on it.

MACs count convolutions and linear layers, the convention behind
torchvision's published GFLOPS (1.814 for ResNet-18 at 224x224).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = ["TraceRow", "Trace", "trace", "layer_macs", "DEPTHS"]

#: Named depths: top-level children, blocks inside stages, every module.
DEPTHS = {"stages": 1, "blocks": 2, "layers": None}


@dataclass
class TraceRow:
    """One module's entry in a trace."""

    path: str
    type: str
    output_shape: tuple[int, ...] | None
    params: int
    macs: int
    depth: int

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]


@dataclass(repr=False)
class Trace:
    """The result of :func:`trace`: rows, totals and renderings."""

    model_name: str
    input_shape: tuple[int, ...]
    rows: list[TraceRow]
    total_params: int
    total_macs: int
    output_shape: tuple[int, ...] | None
    error: str | None = None
    _all_rows: list[TraceRow] = field(default_factory=list, repr=False)

    def row(self, path: str) -> TraceRow:
        """The row of the module at ``path`` (any depth that was traced)."""
        for r in self._all_rows or self.rows:
            if r.path == path:
                return r
        raise KeyError(f"no module {path!r} in this trace; paths: {[r.path for r in self.rows][:12]} ...")

    def stage_totals(self) -> dict[str, tuple[int, int]]:
        """``{top-level module: (params, MACs)}``, for bar charts per stage."""
        return {r.path: (r.params, r.macs) for r in self._all_rows if r.depth == 1}

    def to_text(self) -> str:
        """A fixed-width table, stable enough to compare in tests and nbval."""
        head = ("module", "type", "output shape", "params", "MACs")
        body = [
            (
                "  " * (r.depth - 1) + r.name,
                r.type,
                _shape_str(r.output_shape),
                f"{r.params:,}",
                f"{r.macs:,}",
            )
            for r in self.rows
        ]
        total = ("total", "", _shape_str(self.output_shape), f"{self.total_params:,}", f"{self.total_macs:,}")
        widths = [max(len(row[i]) for row in [head, *body, total]) for i in range(5)]

        def fmt(cells: Sequence[str]) -> str:
            left = [c.ljust(w) for c, w in zip(cells[:3], widths[:3])]
            right = [c.rjust(w) for c, w in zip(cells[3:], widths[3:])]
            return "  ".join(left + right).rstrip()

        rule = "-" * len(fmt(head))
        title = f"{self.model_name} on input {_shape_str(self.input_shape)}"
        lines = [title, fmt(head), rule, *map(fmt, body), rule, fmt(total)]
        if self.error:
            lines.append(f"forward pass FAILED: {self.error}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()

    __repr__ = __str__

    def _repr_html_(self) -> str:
        cells = []
        for r in self.rows:
            pad = 1.2 * (r.depth - 1)
            cells.append(
                f"<tr><td style='padding-left:{pad}em;text-align:left'><code>{html.escape(r.name)}</code></td>"
                f"<td style='text-align:left'>{html.escape(r.type)}</td>"
                f"<td style='text-align:left'>{_shape_str(r.output_shape)}</td>"
                f"<td style='text-align:right;padding:0 0.8em'>{r.params:,}</td>"
                f"<td style='text-align:right;padding:0 0.8em'>{r.macs:,}</td></tr>"
            )
        error = f"<p style='color:#b00'><b>forward pass failed:</b> {html.escape(self.error)}</p>" if self.error else ""
        return (
            f"<p><b>{html.escape(self.model_name)}</b> on input {_shape_str(self.input_shape)}</p>"
            "<table class='resnet-lab-trace' style='border-collapse:collapse'><thead><tr>"
            "<th style='text-align:left'>module</th><th style='text-align:left'>type</th>"
            "<th style='text-align:left'>output shape</th><th style='text-align:right;padding:0 0.8em'>params</th>"
            "<th style='text-align:right;padding:0 0.8em'>MACs</th></tr></thead><tbody>"
            + "".join(cells)
            + f"<tr><td><b>total</b></td><td></td><td>{_shape_str(self.output_shape)}</td>"
            f"<td style='text-align:right;padding:0 0.8em'><b>{self.total_params:,}</b></td>"
            f"<td style='text-align:right;padding:0 0.8em'><b>{self.total_macs:,}</b></td></tr></tbody></table>" + error
        )


def _shape_str(shape: tuple[int, ...] | None) -> str:
    return "—" if shape is None else "x".join(map(str, shape))


def layer_macs(module: nn.Module, inputs: tuple, output: torch.Tensor) -> int:
    """Multiply-accumulates of one call of a leaf module (conv and linear only)."""
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        per_output = (module.in_channels // module.groups) * kh * kw
        return output.numel() * per_output
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    return 0


def _as_input(model: nn.Module, input_shape: Sequence[int] | torch.Tensor) -> torch.Tensor:
    if isinstance(input_shape, torch.Tensor):
        return input_shape
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 3:
        shape = (1, *shape)
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    return torch.zeros(shape, device=device)


def trace(
    model: nn.Module,
    input_shape: Sequence[int] | torch.Tensor,
    depth: int | str | None = "blocks",
    raise_errors: bool = True,
) -> Trace:
    """Trace ``model`` on an input of ``input_shape`` (C, H, W or N, C, H, W).

    Args:
        depth: rows down to this many dotted path components: an int, or
            ``"stages"`` (1), ``"blocks"`` (2), ``"layers"`` (every module).
        raise_errors: if False, a forward pass that fails returns the partial
            trace with ``error`` set, so the rows show where the shapes went
            wrong (the book's bug clinic uses this).

    The model runs in eval mode under ``torch.no_grad`` and is put back in the
    mode it was in.
    """
    if isinstance(depth, str):
        if depth not in DEPTHS:
            raise ValueError(f"depth must be an int or one of {list(DEPTHS)}, got {depth!r}")
        depth = DEPTHS[depth]
    if depth is not None and depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    x = _as_input(model, input_shape)

    named = [(p, m) for p, m in model.named_modules() if p]
    shapes: dict[str, tuple[int, ...]] = {}
    own_macs: dict[str, int] = {}
    handles = []
    for path, module in named:

        def hook(mod, inputs, output, path=path):
            if isinstance(output, torch.Tensor):
                shapes[path] = tuple(output.shape)
                own_macs[path] = own_macs.get(path, 0) + layer_macs(mod, inputs, output)

        handles.append(module.register_forward_hook(hook))

    was_training = model.training
    model.eval()
    error = None
    output = None
    try:
        with torch.no_grad():
            output = model(x)
    except Exception as exc:  # noqa: BLE001 - reported to the reader, or re-raised
        if raise_errors:
            raise
        error = f"{type(exc).__name__}: {exc}".splitlines()[0]
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)

    all_rows = []
    for path, module in named:
        prefix = path + "."
        macs = own_macs.get(path, 0) + sum(v for p, v in own_macs.items() if p.startswith(prefix))
        all_rows.append(
            TraceRow(
                path=path,
                type=type(module).__name__,
                output_shape=shapes.get(path),
                params=sum(p.numel() for p in module.parameters()),
                macs=macs,
                depth=path.count(".") + 1,
            )
        )
    rows = [r for r in all_rows if depth is None or r.depth <= depth]
    return Trace(
        model_name=str(getattr(model, "arch", type(model).__name__)),
        input_shape=tuple(x.shape),
        rows=rows,
        total_params=sum(p.numel() for p in model.parameters()),
        total_macs=sum(own_macs.values()),
        output_shape=tuple(output.shape) if isinstance(output, torch.Tensor) else None,
        error=error,
        _all_rows=all_rows,
    )
