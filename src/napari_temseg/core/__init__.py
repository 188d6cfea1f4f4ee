"""Headless core of napari-temseg. Never imports qtpy, napari or magicgui."""
