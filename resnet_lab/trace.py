"""Shape tracing: every module call and every addition, in the order they run.

``trace(model, (1, 3, 224, 224), depth="blocks")`` runs one forward pass and
returns a :class:`Trace`: one row per module *call* down to the chosen depth
(a ReLU used twice in a block appears twice), with its output shape,
parameters and multiply-accumulates (MACs), and one row per tensor addition
with the shapes of both operands: the one place where a residual block's two
paths must agree. ``print(t)`` gives a plain-text table; in a notebook ``t``
renders as HTML. Chapter "Inside the blocks: tracing shapes" is built on it.

Module calls are seen through forward hooks; additions through a
``TorchFunctionMode``, which sees ``a + b``, ``a += b`` and ``torch.add``.
MACs count convolutions and linear layers, the convention behind
torchvision's published GFLOPS (1.814 for ResNet-18 at 224x224).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .models import evaluating

__all__ = ["TraceRow", "Trace", "trace", "layer_macs", "DEPTHS"]

#: Named depths: top-level children, blocks inside stages, every module.
DEPTHS = {"stages": 1, "blocks": 2, "layers": None}

_ADDITIONS = {torch.add, torch.Tensor.add, torch.Tensor.add_, torch.Tensor.__add__, torch.Tensor.__radd__,
              torch.Tensor.__iadd__}  # fmt: skip


@dataclass
class TraceRow:
    """One module call, or one addition, in a trace."""

    path: str
    type: str
    output_shape: tuple[int, ...] | None
    params: int
    macs: int
    depth: int
    #: For additions: the shapes of the two operands.
    operands: tuple[tuple[int, ...], tuple[int, ...]] | None = None
    #: 1 for a module's first call, 2 for its second, ...
    call: int = 1

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    @property
    def is_addition(self) -> bool:
        return self.operands is not None

    @property
    def label(self) -> str:
        """What the type column shows: the class, the call number, or the operands of an addition."""
        if self.is_addition:
            return " + ".join(_shape_str(s) for s in self.operands)
        return self.type if self.call == 1 else f"{self.type} (call {self.call})"


@dataclass(repr=False)
class Trace:
    """The result of :func:`trace`: rows in call order, totals and renderings."""

    model_name: str
    input_shape: tuple[int, ...]
    rows: list[TraceRow]
    total_params: int
    total_macs: int
    output_shape: tuple[int, ...] | None
    error: str | None = None
    _all_rows: list[TraceRow] = field(default_factory=list, repr=False)

    def row(self, path: str) -> TraceRow:
        """The first row of the module (or addition) at ``path``, at any depth that was traced."""
        for r in self._all_rows or self.rows:
            if r.path == path:
                return r
        raise KeyError(f"no module {path!r} in this trace; paths: {[r.path for r in self.rows][:12]} ...")

    def additions(self) -> list[TraceRow]:
        """Every addition of the forward pass, at any depth."""
        return [r for r in self._all_rows if r.is_addition]

    def stage_totals(self) -> dict[str, tuple[int, int]]:
        """``{top-level module: (params, MACs)}``, summed over its calls, for bar charts per stage."""
        totals: dict[str, tuple[int, int]] = {}
        for r in self._all_rows:
            if r.depth == 1 and not r.is_addition:
                params, macs = totals.get(r.path, (0, 0))
                totals[r.path] = (params + r.params, macs + r.macs)
        return totals

    def to_text(self) -> str:
        """A fixed-width table, stable enough to compare in tests and nbval."""
        head = ("module", "type", "output shape", "params", "MACs")
        body = [
            ("  " * (r.depth - 1) + ("+" if r.is_addition else r.name), r.label, _shape_str(r.output_shape),
             f"{r.params:,}", f"{r.macs:,}")
            for r in self.rows
        ]  # fmt: skip
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
        num = "text-align:right;padding:0 0.6em"
        cells = []
        for r in self.rows:
            pad = 1.2 * (r.depth - 1)
            name = "<b>+</b>" if r.is_addition else f"<code>{html.escape(r.name)}</code>"
            label = html.escape(r.label).replace(" + ", "<br>+ ") if r.is_addition else html.escape(r.label)
            style = " style='background:#f3f7fb'" if r.is_addition else ""
            cells.append(
                f"<tr{style}><td style='padding-left:{pad}em;text-align:left'>{name}</td>"
                f"<td style='text-align:left'>{label}</td>"
                f"<td style='text-align:left'>{_shape_str(r.output_shape)}</td>"
                f"<td style='{num}'>{r.params:,}</td><td style='{num}'>{r.macs:,}</td></tr>"
            )
        error = f"<p style='color:#b00'><b>forward pass failed:</b> {html.escape(self.error)}</p>" if self.error else ""
        return (
            f"<p><b>{html.escape(self.model_name)}</b> on input {_shape_str(self.input_shape)}</p>"
            "<table class='resnet-lab-trace' style='border-collapse:collapse'><thead><tr>"
            "<th style='text-align:left'>module</th><th style='text-align:left'>type</th>"
            f"<th style='text-align:left'>output shape</th><th style='{num}'>params</th>"
            f"<th style='{num}'>MACs</th></tr></thead><tbody>"
            + "".join(cells)
            + f"<tr><td><b>total</b></td><td></td><td>{_shape_str(self.output_shape)}</td>"
            f"<td style='{num}'><b>{self.total_params:,}</b></td>"
            f"<td style='{num}'><b>{self.total_macs:,}</b></td></tr></tbody></table>" + error
        )


def _shape_str(shape: tuple[int, ...] | None) -> str:
    return "—" if shape is None else "x".join(map(str, shape))


def layer_macs(module: nn.Module, output: torch.Tensor) -> int:
    """Multiply-accumulates of one call of a leaf module (conv and linear only)."""
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return output.numel() * (module.in_channels // module.groups) * kh * kw
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


class _Recorder(TorchFunctionMode):
    """Records module calls (through hooks it installs) and additions, in the order they happen."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.rows: list[TraceRow] = []
        self.open: list[int] = []  # indices of the rows of the modules now running, outermost first
        self.calls: dict[str, int] = {}
        self.handles = []
        # The model itself gets a row too (path "", depth 0): it collects the total MACs.
        for path, module in model.named_modules():
            self.handles.append(module.register_forward_pre_hook(self._enter(path)))
            self.handles.append(module.register_forward_hook(self._leave(path)))

    def _enter(self, path: str):
        def hook(module: nn.Module, inputs) -> None:
            call = self.calls[path] = self.calls.get(path, 0) + 1
            params = sum(p.numel() for p in module.parameters()) if call == 1 else 0
            depth = path.count(".") + 1 if path else 0
            self.rows.append(TraceRow(path, type(module).__name__, None, params, 0, depth, None, call))
            self.open.append(len(self.rows) - 1)

        return hook

    def _leave(self, path: str):
        def hook(module: nn.Module, inputs, output) -> None:
            index = self.open.pop()
            if isinstance(output, torch.Tensor):
                self.rows[index].output_shape = tuple(output.shape)
                macs = layer_macs(module, output)
                for i in (*self.open, index):  # a leaf's MACs count for every module it runs inside
                    self.rows[i].macs += macs

        return hook

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        is_addition = (
            func in _ADDITIONS
            and len(args) >= 2
            and all(isinstance(a, torch.Tensor) and a.dim() >= 2 for a in args[:2])
        )
        if not is_addition:
            return func(*args, **kwargs)
        parent = self.rows[self.open[-1]] if self.open else None
        path = f"{parent.path}.+" if parent and parent.path else "+"
        row = TraceRow(path, "add", None, 0, 0, (parent.depth if parent else 0) + 1,
                       (tuple(args[0].shape), tuple(args[1].shape)))  # fmt: skip
        self.rows.append(row)
        out = func(*args, **kwargs)
        row.output_shape = tuple(out.shape)
        return out

    def remove_hooks(self) -> None:
        for h in self.handles:
            h.remove()


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
            An addition sits one level below the module that computes it.
        raise_errors: if False, a forward pass that fails returns the partial
            trace with ``error`` set, so the rows show where the shapes went
            wrong (the book's bug clinic uses this).

    The model runs in eval mode under ``torch.no_grad`` and is put back in the
    mode it was in; no hooks are left behind.
    """
    if isinstance(depth, str):
        if depth not in DEPTHS:
            raise ValueError(f"depth must be an int or one of {list(DEPTHS)}, got {depth!r}")
        depth = DEPTHS[depth]
    if depth is not None and depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    x = _as_input(model, input_shape)

    recorder = _Recorder(model)
    error, output = None, None
    try:
        with evaluating(model), torch.no_grad(), recorder:
            output = model(x)
    except Exception as exc:  # noqa: BLE001 - reported to the reader, or re-raised
        if raise_errors:
            raise
        error = f"{type(exc).__name__}: {exc}".splitlines()[0]
    finally:
        recorder.remove_hooks()

    root, all_rows = recorder.rows[0], recorder.rows[1:]
    return Trace(
        model_name=str(getattr(model, "arch", type(model).__name__)),
        input_shape=tuple(x.shape),
        rows=[r for r in all_rows if depth is None or r.depth <= depth],
        total_params=sum(p.numel() for p in model.parameters()),
        total_macs=root.macs,
        output_shape=tuple(output.shape) if isinstance(output, torch.Tensor) else None,
        error=error,
        _all_rows=all_rows,
    )
