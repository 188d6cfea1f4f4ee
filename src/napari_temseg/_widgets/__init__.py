"""napari docks: thin magicgui Containers over the core generators."""
