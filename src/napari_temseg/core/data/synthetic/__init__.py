"""Synthetic EM images with exact ground truth, for tests, demos and benchmarks (numpy only).

:mod:`.fibsem`: FIB-SEM-like stacks of two detector channels with curtaining, noise and uneven
response; :mod:`.particles`: TEM particle images and the shared noise / detector helpers;
:mod:`.phases`: four-phase FIB-SEM stacks for K-class segmentation.
"""

from .fibsem import make_fibsem
from .particles import make_particles
from .phases import PHASE_COLORS, PHASE_NAMES, make_phases

__all__ = ["PHASE_COLORS", "PHASE_NAMES", "make_fibsem", "make_particles", "make_phases"]
