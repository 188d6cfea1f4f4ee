"""Headless core of napari-temseg: everything but the napari side. Never imports qtpy, napari
or magicgui (tests/house/test_core_imports.py); torch, smp, scikit-image and the other heavy
libraries are imported inside the functions that need them, so importing any package here is
cheap.

The subpackages follow the pipeline, each depending only on those above it:

=============  ================================================================================
``config``     every user option, once: the config dataclasses, their option records, recipes,
               the class table
``data``       images and masks as lazy (Z, C, Y, X) volumes: reading, writing, binning,
               normalisation, the synthetic generators
``nets``       the network registry: a name -> builder and its properties
``modelfile``  a trained model and its single-file format: header checks, saving with rescue
``inference``  the predictor: tiling, normalisation, calibration, post-processing, dask, folders
``evaluation`` metrics, object measurements, text reports
``training``   fit(): the training set, sampling, augmentation, objectives
``guidance``   what to annotate next and how much: suggested regions, learning curves
``interop``    bioimage.io packages, ONNX and TorchScript, out and in
=============  ================================================================================

Shared basics stay at this level: ``errors`` (the user-facing exceptions), ``progress`` (the
Progress record, StopToken and the driver of every long operation), ``device`` (device and
mixed-precision policy) and ``threads`` (a producer / consumer thread behind a queue).

Inside ``core`` a module imports the module that defines a name
(``from ..config.train import TrainConfig``); front ends may use a package's public names
(``from napari_temseg.core.config import TrainConfig``).
"""
