"""The onnxruntime inference backend (issue 13): same probabilities as torch, clear errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="pip install onnxruntime")

from napari_temseg.core.config import PredictConfig  # noqa: E402
from napari_temseg.core.errors import InputError  # noqa: E402
from napari_temseg.core.progress import run  # noqa: E402


def _model(classes=1, context=0):
    import torch

    from napari_temseg.core.classes import ClassTable
    from napari_temseg.core.config import InputSpec, ModelConfig
    from napari_temseg.core.modelfile import TrainedModel
    from napari_temseg.core.models import build_model

    torch.manual_seed(0)
    cfg = ModelConfig(arch="small-unet", base_width=4, classes=classes, in_channels=2 * context + 1)
    spec = InputSpec(context=context, norm_lo=(10.0,), norm_hi=(200.0,))
    table = ClassTable() if classes == 1 else ClassTable.default(classes)
    return TrainedModel(build_model(cfg).eval(), cfg, spec, classes=table)


@pytest.mark.parametrize(("classes", "context", "tta"), [(1, 0, False), (3, 1, True)])
def test_onnxruntime_gives_the_torch_probabilities(classes, context, tta):
    from napari_temseg.core.predict import predict_stack

    model = _model(classes, context)
    img = (np.random.default_rng(0).random((3, 100, 90)) * 255).astype(np.float32)
    cfg = PredictConfig(tile=64, device="cpu", tta=tta, amp=False)
    ref = run(predict_stack(model, img, cfg))
    ort = run(predict_stack(model, img, dataclasses.replace(cfg, backend="onnxruntime")))
    assert np.abs(ort.prob.astype(np.float32) - ref.prob.astype(np.float32)).max() < 1e-4
    assert np.mean(ort.labels == ref.labels) > 0.999


def test_the_session_follows_the_weights_and_gpu_is_refused():
    import torch

    from napari_temseg.core.ort_backend import ort_net

    model = _model()
    cpu = torch.device("cpu")
    first = ort_net(model, cpu)
    assert ort_net(model, cpu) is first  # built once
    with torch.no_grad():
        next(model.net.parameters()).add_(1.0)  # continued training changed the weights
    assert ort_net(model, cpu) is not first
    with pytest.raises(InputError, match="runs on the CPU"):
        ort_net(model, torch.device("cuda"))
    with pytest.raises(Exception, match="backend must be"):
        PredictConfig(backend="tensorrt")
