"""How good a segmentation is, and what is in it (numpy; slice by slice on big stacks).

:mod:`.metrics`: Dice, IoU, precision, recall for binary masks; confusion matrices and
per-class scores for K classes. :mod:`.measure`: objects and their measurements in physical
units. :mod:`.report`: the plain-text tables the CLI and the console print.
"""

from .measure import pixel_size_from_file, write_csv
from .metrics import class_scores, confusion, dice, evaluate_classes, evaluate_stack, iou
from .report import class_table_text, scores_text

__all__ = [
    "class_scores",
    "class_table_text",
    "confusion",
    "dice",
    "evaluate_classes",
    "evaluate_stack",
    "iou",
    "pixel_size_from_file",
    "scores_text",
    "write_csv",
]
