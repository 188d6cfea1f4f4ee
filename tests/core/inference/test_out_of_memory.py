"""The prediction engine when a batch of tiles runs out of device memory: the tile batch is
halved once and the run goes on with the same result, else one line naming the fix."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from napari_temseg.core.config.model import InputSpec, ModelConfig
from napari_temseg.core.config.predict import PredictConfig
from napari_temseg.core.errors import InputError
from napari_temseg.core.inference.predict import predict_stack
from napari_temseg.core.modelfile.format import TrainedModel
from napari_temseg.core.progress import run


class Fussy(nn.Module):
    """The identity logit, failing like a full GPU on batches above ``fits`` tiles."""

    def __init__(self, fits: int, error: type = torch.OutOfMemoryError):
        super().__init__()
        self.fits, self.error, self.sizes = fits, error, []

    def forward(self, x):
        self.sizes.append(len(x))
        if len(x) > self.fits:
            raise self.error("CUDA out of memory. Tried to allocate 3.00 GiB")
        return x[:, :1]


def _model(net):
    spec = InputSpec(channels=1, context=0, norm_lo=(0.0,), norm_hi=(1.0,))
    cfg = ModelConfig(arch="small-unet", in_channels=1, base_width=4)
    return TrainedModel(net=net, model_cfg=cfg, input_spec=spec, threshold=0.5)


IMG = np.random.default_rng(0).normal(0, 2, (3, 70, 90)).astype(np.float32)


def _predict(net, seen=None, batch=6):
    cfg = PredictConfig(device="cpu", amp=False, tile=32, overlap=0.25, batch=batch)
    return run(predict_stack(_model(net), IMG, cfg), seen)


def test_a_batch_too_large_is_halved_and_the_result_is_the_same():
    want = _predict(Fussy(fits=100)).prob
    net, seen = Fussy(fits=3), []
    res = _predict(net, seen.append)
    np.testing.assert_allclose(res.prob, want, atol=1e-6)
    assert res.slices == [0, 1, 2]
    assert net.sizes[:3] == [6, 3, 3] and max(net.sizes[3:]) <= 3  # halved for the whole run
    warnings = [p.warning for p in seen if p.warning]
    assert warnings == [
        "batch 6 does not fit in the memory of cpu: predicting with batch 3, which fits "
        "(set batch 3 to start there)"
    ]


def test_when_half_the_batch_does_not_fit_either_one_line_says_what_to_lower():
    with pytest.raises(InputError) as e:
        _predict(Fussy(fits=2))
    text = str(e.value)
    assert "\n" not in text and "out of memory running 3 tiles of 32 x 32 px on cpu" in text
    assert "halved once already" in text and "lower the batch (--batch) or the tile size" in text


def test_a_single_tile_that_does_not_fit_is_not_halved():
    with pytest.raises(InputError, match="running 1 tiles .*lower the batch"):
        _predict(Fussy(fits=0), batch=1)


def test_other_errors_pass_through():
    with pytest.raises(ValueError, match="out of memory") as e:  # not an allocation failure
        _predict(Fussy(fits=1, error=ValueError))
    assert not isinstance(e.value, InputError)
