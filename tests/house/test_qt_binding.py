"""The Qt binding must not leak references to None (PySide6 6.12.0 did: see pyproject.toml).

On Python < 3.12 None is an ordinary refcounted object; a binding that drops a reference
to it on every call drives its count to zero and the whole process (napari, or this test
suite) aborts with "Fatal Python error: none_dealloc". From 3.12 on None is immortal and
this cannot happen, so the check only runs where it means something.
"""

import gc
import sys

import numpy as np
import pytest

pytestmark = [
    pytest.mark.gui,
    pytest.mark.skipif(sys.version_info >= (3, 12), reason="None is immortal on Python >= 3.12"),
]


def test_viewers_do_not_drain_none_refcount(make_napari_viewer, qtbot):
    counts = []
    for _ in range(4):
        viewer = make_napari_viewer()
        viewer.add_image(np.random.default_rng(0).random((4, 64, 64)))
        qtbot.wait(10)
        viewer.close()
        gc.collect()
        counts.append(sys.getrefcount(None))
    # PySide6 6.12.0 lost ~10000 per viewer here; healthy bindings drift by a few hundred at most
    drop = counts[0] - counts[-1]
    import qtpy

    assert drop < 3000, f"{qtpy.API_NAME} {qtpy.QT_VERSION} leaks references to None ({counts})"
