"""What to annotate next, and how much: answers for the person holding the brush.

:mod:`.suggest`: regions ranked by the model's own uncertainty, spread out, to paint next.
:mod:`.learning_curve`: accuracy against the number of annotated images.
"""

from .learning_curve import CurveConfig, CurveResult
from .suggest import suggest_regions

__all__ = ["CurveConfig", "CurveResult", "suggest_regions"]
