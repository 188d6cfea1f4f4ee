"""The device side of a training step: its precision, fp16 loss scaling and the
out-of-memory fallback.

:class:`Precision` picks bf16 / fp16 / fp32 (``device.precision``) and owns the GradScaler
that fp16 needs; its scale is written into every epoch record of the history, so a model
trained further ("Continue training") starts at the scale the last run reached instead of
searching for it again with skipped steps. :class:`OutOfMemory` is the policy when a step
does not fit in the device's memory: halve the batch once and retry; if that does not fit
either, one line saying what to lower.
"""

from __future__ import annotations

from typing import Any


class Precision:
    """The autocast precision of one training run and its loss scaler."""

    def __init__(self, device: Any, amp: bool | str, history: list[dict]):
        from ..device import describe, precision

        self.device, self.amp = device, amp
        self.name = precision(device, amp)
        self.text = describe(device, amp)
        last = next((h["grad_scale"] for h in reversed(history) if "grad_scale" in h), None)
        self.scaler = self._scaler(last)

    def _scaler(self, init_scale: float | None) -> Any:
        from ..device import grad_scaler

        return grad_scaler(self.device, self.amp, init_scale)

    def backward_step(self, loss: Any, opt: Any) -> None:
        """Backward pass and optimiser step, through the scaler (a pass-through unless fp16:
        then a step whose gradients overflowed is skipped and the scale lowered)."""
        self.scaler.scale(loss).backward()
        self.scaler.step(opt)
        self.scaler.update()

    def reset(self) -> None:
        """A fresh scaler at the current scale: a step that failed between unscaling and
        stepping leaves the old one refusing to unscale again."""
        self.scaler = self._scaler(self.scaler.get_scale() if self.scaler.is_enabled() else None)

    def record(self) -> dict:
        """What an epoch record says about the precision."""
        rec: dict = {"precision": self.name}
        if self.scaler.is_enabled():
            rec["grad_scale"] = float(self.scaler.get_scale())
        return rec


class OutOfMemory:
    """Halve the batch once when a step runs out of device memory; then give up in one line."""

    def __init__(self, device: Any, batch: int, patch: int, model_cfg: Any):
        self.device, self.batch, self.patch, self.model_cfg = device, batch, patch, model_cfg
        self.halved_from: int | None = None
        self.notice: str | None = None  # said once in the status, recorded in the history
        self._recorded = False

    def shrink(self) -> str | None:
        """After an out-of-memory step: None when the batch was halved (retry the step),
        else the line saying what to lower."""
        from ..device import free_cached_memory

        free_cached_memory(self.device)
        if self.halved_from is None and self.batch > 1:
            self.halved_from, self.batch = self.batch, self.batch // 2
            self.notice = (
                f"batch {self.halved_from} does not fit in the memory of {self._where()}: "
                f"training goes on with batch {self.batch}, which fits (set batch "
                f"{self.batch} to start there)"
            )
            return None
        return self.give_up_line()

    def give_up_line(self) -> str:
        tried = f"batch {self.batch}" + (
            f" (halved from {self.halved_from})" if self.halved_from else ""
        )
        return (
            f"out of memory on {self._where()} training {tried} of {self.patch} px patches "
            f"with {self._width()}: lower the batch, the patch or the network width "
            f"({self._lower()})"
        )

    def record(self) -> dict:
        """The epoch record's note of the halving: the batch, and once the reason."""
        if self.halved_from is None:
            return {}
        rec: dict = {"batch": self.batch}
        if not self._recorded:
            self._recorded = True
            rec["out_of_memory"] = f"batch {self.halved_from} did not fit: halved to {self.batch}"
        return rec

    def _width(self) -> str:
        from ..nets.build import width_of

        width = width_of(self.model_cfg)
        return f"base_width {width}" if width else f"encoder {self.model_cfg.encoder}"

    def _lower(self) -> str:
        from ..nets.build import width_of

        width = width_of(self.model_cfg)
        smaller = f"base_width {max(4, width // 2)}" if width else "a smaller encoder"
        half = max(16, self.patch // 2 // 16 * 16)
        return f"e.g. batch {max(1, self.batch // 2)}, patch {half} or {smaller}"

    def _where(self) -> str:
        dev = self.device
        if dev.type != "cuda":
            return str(dev)
        import torch

        p = torch.cuda.get_device_properties(dev)
        return f"{dev} ({p.name}, {p.total_memory / 2**30:.0f} GiB)"


__all__ = ["OutOfMemory", "Precision"]
