"""`temseg predict` and `temseg evaluate` (filled in with core/predict.py)."""

COMMANDS: list = []
