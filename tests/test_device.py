"""The device a run uses: CUDA, else Apple's mps, else the CPU; its precision; waiting for it (with mocks)."""

from __future__ import annotations

import pytest
import torch

from resnet_lab import device as dev


@pytest.fixture
def machine(monkeypatch):
    """Pretend to be a machine with or without CUDA and mps: ``machine(cuda=..., mps=...)``."""

    def pretend(*, cuda: bool, mps: bool) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)

    return pretend


@pytest.mark.parametrize("cuda,mps,expected", [(True, True, "cuda"), (True, False, "cuda"),
                                               (False, True, "mps"), (False, False, "cpu")])  # fmt: skip
def test_auto_prefers_cuda_then_mps_then_the_cpu(machine, cuda, mps, expected):
    machine(cuda=cuda, mps=mps)
    assert dev.resolve("auto") == torch.device(expected) and dev.resolve() == torch.device(expected)
    assert dev.mps_available() is mps


def test_an_explicit_device_is_taken_as_given(machine):
    machine(cuda=False, mps=True)
    assert dev.resolve("cpu") == torch.device("cpu") and dev.resolve(torch.device("cpu")).type == "cpu"


def test_a_torch_without_mps_backend_is_a_machine_without_mps(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delattr(torch.backends, "mps")
    assert dev.resolve("auto") == torch.device("cpu") and dev.mps_available() is False


def test_mac_runs_fp32_on_auto_and_honours_an_explicit_precision(machine):
    """mps: auto is fp32 (no tensor cores to pay for fp16's casts and loss scaling; bf16 partial there);
    fp16 and bf16 asked for by name are passed through, as on the CPU."""
    machine(cuda=False, mps=True)
    mps = dev.resolve("auto")
    assert dev.resolve_precision("auto", mps) == "fp32"
    assert dev.resolve_precision("fp16", mps) == "fp16" and dev.resolve_precision("bf16", mps) == "bf16"
    assert dev.resolve_precision("fp32", mps) == "fp32"
    with pytest.raises(ValueError, match="precision must be one of"):
        dev.resolve_precision("fp8", mps)


def test_cuda_precision_is_unchanged_by_mps(machine, monkeypatch):
    machine(cuda=True, mps=True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))  # Colab's T4
    assert dev.resolve_precision("auto", dev.resolve("auto")) == "fp16"
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))  # A100
    assert dev.resolve_precision("auto", dev.resolve("auto")) == "bf16"


def test_synchronize_waits_on_the_device_it_is_given(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.mps, "synchronize", lambda: calls.append("mps"))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append("cuda"))
    dev.synchronize(torch.device("mps"))
    dev.synchronize(torch.device("cuda"))
    dev.synchronize(torch.device("cpu"))  # nothing to wait for
    assert calls == ["mps", "cuda"]


def test_describe_names_the_mac_gpu(machine):
    machine(cuda=False, mps=True)
    assert dev.describe("auto") == "mps (Apple GPU)"
    machine(cuda=False, mps=False)
    assert dev.describe("auto").startswith("cpu (")
