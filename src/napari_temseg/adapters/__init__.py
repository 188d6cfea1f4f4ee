"""napari-side adapters, shared by the docks and the console API (``api.py``).

* ``layers``  - napari layers <-> canonical ``(Z, C, Y, X)`` arrays; plugin-owned layers.
* ``outputs`` - prediction output arrays and layers, re-thresholding.
* ``runtime`` - process-level workarounds (triton vs Mesa's libLLVM, software OpenGL).
* ``workers`` - a core generator driven in a Qt thread worker (docks only).

Nothing here is imported when napari starts; napari itself is imported lazily.
"""
