"""Is training slower inside the napari GUI worker than in a plain call?

Runs the same fit() (same data, seed, fixed number of steps) alternately

* **plain**: ``progress.run(fit(...))`` in the main thread, no GUI, and
* **gui**: through the Train dock of a real napari viewer (Xvfb), i.e. in the
  superqt worker thread, with the napari progress bar, the live plot and the live
  preview (every ``--preview-every`` s) on, while a 20 ms QTimer in the GUI thread
  records the longest gap between its ticks (and scrolls through the stack),

and prints steps/s of both, their ratio, the GUI timer gaps, and torch's thread
count in the main thread and in a worker thread. Run it under a display::

    xvfb-run -a python benchmarks/bench_worker.py [--steps 60] [--threads 1] [--reps 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100, help="training steps per run (x 50)")
    ap.add_argument("--patch", type=int, default=128)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--width", type=int, default=16, help="small-unet base width")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--reps", type=int, default=2, help="plain/gui pairs (alternated)")
    ap.add_argument("--preview-every", type=float, default=2.0)
    ap.add_argument("--browse", action="store_true", help="scroll through Z during GUI training")
    ap.add_argument("--no-preview", action="store_true")
    ap.add_argument("--timer-ms", type=int, default=20, help="GUI gap timer period (0 = off)")
    ap.add_argument(
        "--napari-bar",
        choices=("auto", "on", "off"),
        default="auto",
        help="napari's activity progress bar (auto: off on software OpenGL)",
    )
    ap.add_argument("--shape", default="8,2,256,256", help="synthetic FIB-SEM (Z,C,Y,X)")
    return ap.parse_args()


def configs(a):
    from napari_temseg.core.config.model import ModelConfig
    from napari_temseg.core.config.train import TrainConfig

    spe = 50  # the Train dock uses TrainConfig's default steps per epoch
    tc = TrainConfig(
        patch=a.patch,
        batch=a.batch,
        epochs=max(1, a.steps // spe),
        seconds=None,
        steps_per_epoch=spe,
        augment="flips",
        device="cpu",
        val_fraction=0.2,
    )
    return tc, ModelConfig(arch="small-unet", base_width=a.width)


def steps_per_s(model) -> float:
    last = model.history[-1]
    return last["step"] / last["elapsed"]


def run_plain(image, mask, a) -> float:
    from napari_temseg.core.progress import run
    from napari_temseg.core.training.loop import fit

    tc, mc = configs(a)
    model = run(fit(image, mask, train_cfg=tc, model_cfg=mc))
    return steps_per_s(model)


def worker_threads() -> int:
    """torch.get_num_threads() as seen inside a superqt worker thread."""
    from qtpy.QtWidgets import QApplication
    from superqt.utils import create_worker

    out = []

    def probe():
        import torch

        yield
        return torch.get_num_threads()

    w = create_worker(probe, _start_thread=False)
    w.returned.connect(out.append)
    w.start()
    t0 = time.monotonic()
    while not out and time.monotonic() - t0 < 30:
        QApplication.processEvents()
        time.sleep(0.01)
    return out[0] if out else -1


class GapTimer:
    """A QTimer in the GUI thread recording the gaps between its ticks (off when period 0)."""

    def __init__(self, period_ms: int, on_tick=None):
        from qtpy.QtCore import QTimer

        self.gaps, self.last, self.on_tick, self.n = [], None, on_tick, 0
        self.timer = QTimer()
        self.timer.setInterval(max(1, period_ms))
        self.timer.timeout.connect(self.tick)
        self.on = period_ms > 0

    def tick(self) -> None:
        now = time.perf_counter()
        if self.last is not None:
            self.gaps.append(now - self.last)
        self.last, self.n = now, self.n + 1
        if self.on_tick is not None:
            self.on_tick(self.n)

    def __enter__(self):
        if self.on:
            self.timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self.timer.stop()
        self.gaps.sort()

    def stats(self) -> dict:
        g = self.gaps or [float("nan")]
        return {
            "longest_ms": 1000 * g[-1],
            "p95_ms": 1000 * g[int(0.95 * (len(g) - 1))],
            "ticks": len(self.gaps),
        }


def render_cpu() -> float:
    """CPU seconds used so far by Mesa's software-rendering threads (llvmpipe-N), Linux only."""
    total = 0.0
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return float("nan")
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                st = f.read()
        except OSError:
            continue
        if st[st.index("(") + 1 : st.rindex(")")].startswith("llvmpipe"):
            f = st[st.rindex(")") + 2 :].split()
            total += (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    return total


def wait(job) -> None:
    from qtpy.QtWidgets import QApplication

    while job is not None and job.running:
        QApplication.processEvents()
        time.sleep(0.002)


def run_bare_worker(image, mask, a) -> float:
    """fit() in the same worker adapter, no GUI callbacks (isolates the thread itself)."""
    from napari_temseg.adapters.workers import start_worker
    from napari_temseg.core.training.loop import fit

    tc, mc = configs(a)
    with GapTimer(a.timer_ms):
        job = start_worker(fit(image, mask, train_cfg=tc, model_cfg=mc), progress_bar=False)
        wait(job)
    return steps_per_s(job.result)


def run_gui(viewer, train, layers, mask_layer, a) -> dict:
    tc, _ = configs(a)
    train.reset_choices()
    train.images.value, train.mask.value = layers, mask_layer
    train.arch.value, train.base_width.value = "small-unet", a.width
    train.patch.value, train.batch.value = a.patch, a.batch
    train.form.set_value("seconds", None)
    train.epochs.value = tc.epochs
    train.augment.value, train.device.value, train.val_fraction.value = "flips", "cpu", 0.2
    train.preview.value, train.preview_every = not a.no_preview, a.preview_every

    def browse(n: int) -> None:  # scroll through the stack like a user
        if a.browse and n % 10 == 0:
            viewer.dims.set_current_step(0, (n // 10) % layers[0].data.shape[0])

    r0 = render_cpu()
    with GapTimer(a.timer_ms, browse) as timer:
        train.start_btn.clicked()
        wait(train.job)
    r1 = render_cpu()
    if train.job.error is not None:
        raise RuntimeError(f"training failed in the GUI: {train.job.error}")
    return {
        "steps_s": steps_per_s(train.model),
        "records": train.job.records,
        "render_cpu_s": r1 - r0,
        "wall_s": train.model.history[-1]["elapsed"],
        **timer.stats(),
    }


def main() -> int:
    a = parse()
    if a.napari_bar != "auto":
        os.environ["NAPARI_TEMSEG_NAPARI_PROGRESS"] = "1" if a.napari_bar == "on" else "0"
    import napari
    import numpy as np
    import torch

    from napari_temseg.core.data.synthetic.fibsem import make_fibsem

    if a.threads:
        torch.set_num_threads(a.threads)
    shape = tuple(int(s) for s in a.shape.split(","))
    image, mask = make_fibsem(shape, seed=3)
    viewer = napari.Viewer(show=True)
    layers = [viewer.add_image(image[:, c], name=f"ch{c}") for c in range(shape[1])]
    mask_layer = viewer.add_labels(mask.copy(), name="ch0 mask")
    _, train = viewer.window.add_plugin_dock_widget("napari-temseg", "Train")
    from napari_temseg.adapters.runtime import avoid_triton_llvm_clash

    avoid_triton_llvm_clash()  # the plain run builds optimizers in this GL process too
    from napari_temseg.adapters.runtime import gl_renderer, napari_progress_wanted

    print(
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; torch threads: main "
        f"{torch.get_num_threads()}, worker thread {worker_threads()}; OpenGL: {gl_renderer()}; "
        f"napari progress bar: {napari_progress_wanted()}",
        flush=True,
    )
    run_plain(image[:1], mask[:1], a)  # warm-up (imports, allocator) outside the timing
    plain, bare, gui = [], [], []
    for rep in range(a.reps):
        plain.append(run_plain(image, mask, a))
        bare.append(run_bare_worker(image, mask, a))
        gui.append(run_gui(viewer, train, layers, mask_layer, a))
        print(
            f"rep {rep + 1}: plain {plain[-1]:.2f} steps/s | bare worker {bare[-1]:.2f} | "
            f"gui dock {gui[-1]['steps_s']:.2f} steps/s, "
            f"longest GUI gap {gui[-1]['longest_ms']:.0f} ms (p95 {gui[-1]['p95_ms']:.0f} ms, "
            f"{gui[-1]['ticks']} ticks, {gui[-1]['records']} records, software-GL render CPU "
            f"{gui[-1]['render_cpu_s']:.1f} s in {gui[-1]['wall_s']:.0f} s)",
            flush=True,
        )
    p, g = statistics.median(plain), statistics.median([r["steps_s"] for r in gui])
    b = statistics.median(bare)
    print(
        f"\nRESULT steps={a.steps} patch={a.patch} batch={a.batch} width={a.width} "
        f"threads={torch.get_num_threads()} preview={'off' if a.no_preview else a.preview_every} "
        f"browse={a.browse} timer={a.timer_ms}ms: plain {p:.2f} steps/s, "
        f"bare worker {b:.2f} (ratio {b / p:.2f}), "
        f"gui dock {g:.2f} steps/s, ratio gui/plain {g / p:.2f}; "
        f"longest GUI gap {max(r['longest_ms'] for r in gui):.0f} ms, "
        f"p95 {np.median([r['p95_ms'] for r in gui]):.0f} ms"
    )
    sys.stdout.flush()
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
