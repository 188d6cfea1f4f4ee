"""The model trained in this napari session, shared by the Train and Predict docks (per viewer)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_MODELS: dict[int, Any] = {}
_LISTENERS: dict[int, list[Callable[[Any], None]]] = {}
_WATCHED: set[int] = set()


def _real(viewer: Any) -> Any:
    """napari hands each dock its own PublicOnlyProxy of the viewer: use the viewer behind it."""
    return getattr(viewer, "__wrapped__", viewer)


def _key(viewer: Any) -> int:
    return id(_real(viewer))


def set_model(viewer: Any, model: Any) -> None:
    """Remember ``model`` as the latest one trained in ``viewer`` and tell the docks."""
    key = _key(viewer)
    _forget_when_gone(viewer)
    _MODELS[key] = model
    for cb in list(_LISTENERS.get(key, [])):
        try:
            cb(model)
        except RuntimeError:  # the dock behind it was closed (Qt object deleted)
            _LISTENERS[key].remove(cb)


def _forget_when_gone(viewer: Any) -> None:
    import weakref

    key = _key(viewer)
    if key in _WATCHED:
        return
    try:
        weakref.finalize(_real(viewer), forget, key)
        _WATCHED.add(key)
    except TypeError:  # not weak-referenceable: the entry lives until forget()
        pass


def get_model(viewer: Any) -> Any | None:
    return _MODELS.get(_key(viewer))


def on_model(viewer: Any, callback: Callable[[Any], None]) -> Callable[[], None]:
    """Call ``callback(model)`` whenever a model is trained in ``viewer``;
    returns an unsubscribe.
    """
    key = _key(viewer)
    _forget_when_gone(viewer)
    _LISTENERS.setdefault(key, []).append(callback)

    def unsubscribe() -> None:
        if callback in _LISTENERS.get(key, []):
            _LISTENERS[key].remove(callback)

    return unsubscribe


def forget(key: int) -> None:
    """Drop the session of a closed viewer (frees the model's memory)."""
    _MODELS.pop(key, None)
    _LISTENERS.pop(key, None)
    _WATCHED.discard(key)


_FILE_CACHE: dict[str, tuple[float, Any]] = {}


def chosen_model(viewer: Any, from_session: bool, path: str, session_label: str) -> Any:
    """The session's model, or the model file at ``path`` (loaded once per file version);
    a clear InputError when there is none."""
    import os

    from ..core.errors import InputError

    if from_session:
        model = get_model(viewer)
        if model is None:
            raise InputError(
                "no model trained in this session yet: train one in the Train dock, "
                "or choose 'model file' and pick a .safetensors file"
            )
        return model
    from ..core.interop.bioimageio.load import is_package, load_any_model

    if not path or not (os.path.isfile(path) or os.path.isdir(path) and is_package(path)):
        raise InputError(
            "choose an existing model file (.safetensors) or bioimage.io package (.zip or "
            f"its folder), or switch the model to '{session_label}'"
        )
    mtime = os.path.getmtime(path)
    if _FILE_CACHE.get(path, (None,))[0] != mtime:
        from ..adapters.runtime import avoid_triton_llvm_clash

        avoid_triton_llvm_clash()
        _FILE_CACHE.clear()  # one model file at a time in memory
        _FILE_CACHE[path] = (mtime, load_any_model(path))
    return _FILE_CACHE[path][1]
