"""`temseg demo` and `temseg train`."""

COMMANDS: list = []
