"""torch is an optional extra: without it the package imports and works, and from_torch
says how to install it. Runs with or without torch installed (torch is hidden here)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import layerwise_fast as lf
from layerwise_fast import exports


def test_from_torch_without_torch_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # makes "import torch" fail
    with pytest.raises(ImportError, match='^LayerTable.from_torch needs torch, an optional '
                                          'extra of layerwise_fast: pip install '
                                          '"layerwise_fast\\[torch\\]"$'):
        lf.LayerTable.from_torch(object(), None)


def test_split_spec_without_torch_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch.distributed.pipelining", None)
    with pytest.raises(ImportError, match='needs torch .*pip install "layerwise_fast\\[torch\\]"'):
        exports.pipeline_split_spec(["a", "b"], [0, 1, 2])


def test_the_package_imports_and_exports_without_torch() -> None:
    script = textwrap.dedent("""
        import sys
        sys.modules["torch"] = None  # as if torch were not installed
        import layerwise_fast as lf
        from layerwise_fast import exports, torch_ingest
        partition = lf.greedy([3, 3, 3, 3], capacity=6)
        print(exports.device_map(["a", "b", "c", "d"], partition, ["cpu", 0]))
        print(exports.deepspeed_parts(partition))
        print(sorted(name for name, module in sys.modules.items()
                     if name.split(".")[0] in ("torch", "accelerate") and module is not None))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "{'a': 'cpu', 'b': 'cpu', 'c': 0, 'd': 0}", "[0, 2, 4]", "[]"]
