"""ONNX Runtime as the CPU inference engine of the tiled predictor (``backend="onnxruntime"``).

The network (logits out, normalisation stays in ``data.network_input`` as for torch) is
exported once per model and weights version to an in-memory ONNX graph and run by an
``onnxruntime.InferenceSession`` on the CPU, with the same thread count as torch. The object
stands in for the torch module inside ``predict_stack`` / ``engine.forward``: called with a
batch tensor it returns the logits as a tensor, so blending, test-time augmentation,
post-processing and streaming are unchanged. Measured on the 2-core development VM: 1.9x
the speed of the torch path for the default model at max |dp| 3e-6 (docs/benchmarks.md,
"ONNX Runtime vs torch on the CPU").
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

from .errors import InputError

BACKENDS = ("torch", "onnxruntime")
_CACHE: dict[int, tuple[float, Any]] = {}
_LOCK = threading.Lock()


class OrtNet:
    """A torch-module look-alike running an ONNX graph: ``net(x) -> logits``."""

    training = False

    def __init__(self, session: Any):
        self.session = session

    def __call__(self, x: Any) -> Any:
        import torch

        a = x.detach().float().contiguous().cpu().numpy()
        return torch.from_numpy(self.session.run(None, {"input": a})[0])

    def eval(self) -> OrtNet:
        return self

    def train(self, mode: bool = True) -> OrtNet:
        return self


def _fingerprint(net: Any) -> float:
    """Changes when the weights change (continued training): the sum of all parameters."""
    import torch

    with torch.no_grad():
        return float(sum(p.detach().double().sum() for p in net.parameters()))


def _session(model: Any) -> Any:
    import copy
    import io

    import torch

    try:
        import onnxruntime as ort
    except ImportError:
        raise InputError(
            "the onnxruntime backend needs the onnxruntime package: pip install onnxruntime, "
            "or choose backend torch"
        ) from None
    net = copy.deepcopy(model.net).float().cpu().eval().to(memory_format=torch.contiguous_format)
    n = model.model_cfg.in_channels
    x = torch.zeros(1, n, 64, 64)
    axes = {0: "batch", 2: "height", 3: "width"}
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(net, (x,), buf, input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": axes, "logits": axes}, opset_version=17,
                              dynamo=False)  # fmt: skip
    except Exception as e:  # noqa: BLE001 - an operator ONNX lacks: say which backend works
        raise InputError(
            f"this model ({model.model_cfg.arch}) cannot run in onnxruntime "
            f"({type(e).__name__}): choose backend torch"
        ) from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = torch.get_num_threads(), 1
    return ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])


def ort_net(model: Any, device: Any) -> OrtNet:
    """The model's network as an :class:`OrtNet` (built once per weights version)."""
    if device.type != "cpu":
        raise InputError(
            f"the onnxruntime backend runs on the CPU; the device is {device}: choose device "
            "cpu, or backend torch for the GPU"
        )
    key, fp = id(model.net), _fingerprint(model.net)
    with _LOCK:
        hit = _CACHE.get(key)
        if hit is None or hit[0] != fp:
            _CACHE.clear()  # one model at a time in memory
            _CACHE[key] = (fp, OrtNet(_session(model)))
        return _CACHE[key][1]


__all__ = ["BACKENDS", "OrtNet", "ort_net"]
