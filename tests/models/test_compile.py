from __future__ import annotations

import pytest
import torch
from torch import nn

from resaction.models import create_model
from resaction.models.compile import CompiledModel, compile_model


def _failing_backend(graph_module: torch.fx.GraphModule, example_inputs: list) -> None:
    raise RuntimeError("no compiler on this machine")


@pytest.fixture
def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv3d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2)).eval()


def test_failed_compile_warns_once_and_runs_eager(small_model: nn.Module) -> None:
    torch._dynamo.reset()
    clips = torch.randn(2, 3, 4, 8, 8)
    with torch.no_grad():
        expected = small_model(clips)
    compiled = compile_model(small_model, backend=_failing_backend)
    with pytest.warns(RuntimeWarning, match="torch.compile failed.*no compiler.*eagerly"):
        first = compiled(clips)
    assert not compiled.compiled and "no compiler" in str(compiled.failure)
    with torch.no_grad():
        second = compiled(clips)
    torch.testing.assert_close(first, expected)
    torch.testing.assert_close(second, expected)


def test_compiled_path_gives_the_model_output(small_model: nn.Module) -> None:
    torch._dynamo.reset()
    clips = torch.randn(2, 3, 4, 8, 8)
    with torch.no_grad():
        expected = small_model(clips)
    compiled = CompiledModel(small_model, backend="eager")
    torch.testing.assert_close(compiled(clips), expected)
    assert compiled.compiled


@pytest.mark.slow
def test_inductor_with_freezing_matches_eager() -> None:
    torch._dynamo.reset()
    model = create_model("r3d_10", num_classes=3).eval()
    clips = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        expected = model(clips)
    compiled = compile_model(model)
    got = compiled(clips)
    assert compiled.compiled, compiled.failure
    torch.testing.assert_close(got, expected, rtol=1e-3, atol=1e-3)
