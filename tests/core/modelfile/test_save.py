"""Saving a model: atomic write, one-line errors naming path, cause and fix, the rescue
folder, the in-memory fallback, stale temporaries and the disk-space check before training."""

import errno
import os
import tempfile
import time

import pytest

from napari_temseg.core.config.model import InputSpec, ModelConfig
from napari_temseg.core.errors import ModelFileError, SaveError
from napari_temseg.core.modelfile import save
from napari_temseg.core.modelfile.format import TrainedModel, load_model


@pytest.fixture
def model():
    import torch

    from napari_temseg.core.nets.build import build_model

    torch.manual_seed(0)
    cfg = ModelConfig(arch="small-unet", base_width=4)
    spec = InputSpec(channels=1, context=0, norm_lo=(0.1,), norm_hi=(0.9,))
    return TrainedModel(build_model(cfg).eval(), cfg, spec)


@pytest.fixture
def rescue_home(tmp_path, monkeypatch):
    """The rescue folders under tmp_path: HOME and the temp folder."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "systmp"))
    (tmp_path / "systmp").mkdir()
    return [tmp_path / "home" / save.RESCUE_NAME, tmp_path / "systmp" / save.RESCUE_NAME]


def _failing_writer(monkeypatch, error, only_under=None):
    real = save.write_file

    def writer(tensors, filename, metadata):
        if only_under is None or str(filename).startswith(str(only_under)):
            raise error
        return real(tensors, filename, metadata)

    monkeypatch.setattr(save, "write_file", writer)


def _safetensor_error(text):
    from safetensors import SafetensorError

    return SafetensorError(text)


WRITE_FAILURES = {
    "safetensors-disk-full": (
        lambda: _safetensor_error("Error while serializing: I/O error: No space left on device"),
        "the disk is full .*free some space or choose another folder",
    ),
    "enospc": (
        lambda: OSError(errno.ENOSPC, "No space left on device"),
        "the disk is full .*free some space",
    ),
    "permission": (
        lambda: PermissionError(errno.EACCES, "Permission denied"),
        "no permission to write in that folder; choose a folder of your own",
    ),
}


@pytest.mark.parametrize("case", list(WRITE_FAILURES))
def test_a_failing_writer_gives_one_line_naming_path_cause_and_fix(
    model, tmp_path, monkeypatch, case
):
    make, message = WRITE_FAILURES[case]
    _failing_writer(monkeypatch, make())
    target = tmp_path / "out" / "m.safetensors"
    with pytest.raises(SaveError, match=message) as e:
        save.save_model(model, target)
    text = str(e.value)
    assert text.startswith(f"cannot save '{target}'") and "\n" not in text
    assert list((tmp_path / "out").iterdir()) == []  # neither the model nor a temporary


def test_a_file_cut_short_after_writing_is_a_full_disk(model, tmp_path, monkeypatch):
    real = save.write_file

    def short_writer(tensors, filename, metadata):  # a disk that drops the end silently
        real(tensors, filename, metadata)
        with open(filename, "r+b") as f:
            f.truncate(os.path.getsize(filename) // 2)

    monkeypatch.setattr(save, "write_file", short_writer)
    target = tmp_path / "m.safetensors"
    with pytest.raises(SaveError, match="the disk is full .*incomplete"):
        save.save_model(model, target)
    assert list(tmp_path.iterdir()) == []


def test_a_read_only_folder(model, tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() == 0:  # root writes through permissions: stand in for a read-only mount
        real = tempfile.mkstemp

        def read_only(*a, dir=None, **k):
            if dir is not None and str(dir).startswith(str(folder)):
                raise OSError(errno.EROFS, "Read-only file system", str(dir))
            return real(*a, dir=dir, **k)

        monkeypatch.setattr(tempfile, "mkstemp", read_only)
        message = "the drive is read-only; choose another folder"
    else:
        folder.chmod(0o555)
        message = "no permission to write in that folder"
    try:
        with pytest.raises(SaveError, match=message):
            save.save_model(model, folder / "m.safetensors")
    finally:
        folder.chmod(0o755)
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("below", ["m.safetensors", "sub/m.safetensors"])
def test_a_parent_that_is_a_file(model, tmp_path, below):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(SaveError, match=r"'.*notes.txt' is a file, not a folder; choose"):
        save.save_model(model, tmp_path / "notes.txt" / below)
    assert (tmp_path / "notes.txt").read_text() == "x"


def test_stale_temporaries_go_at_the_next_save_fresh_ones_stay(model, tmp_path):
    stale = tmp_path / f"{save.TMP_PREFIX}1234-abc.safetensors"
    stale.write_bytes(b"half a model")
    old = time.time() - save.STALE_S - 60
    os.utime(stale, (old, old))
    fresh = tmp_path / f"{save.TMP_PREFIX}1234-def.safetensors"
    fresh.write_bytes(b"being written")  # another save, still writing
    other = tmp_path / ".tmp-someone-else.safetensors"
    other.write_bytes(b"not ours")
    os.utime(other, (old, old))
    save.save_model(model, tmp_path / "m.safetensors")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["m.safetensors", fresh.name, other.name])


def test_a_failed_save_goes_to_the_rescue_folder(model, tmp_path, monkeypatch, rescue_home):
    target = tmp_path / "full" / "m.safetensors"
    _failing_writer(monkeypatch, OSError(errno.ENOSPC, "No space left on device"), target.parent)
    done = save.save_or_rescue(model, target)
    assert done.path is not None and done.path.parent == rescue_home[0]
    assert done.path.name.startswith("m-") and not target.exists()
    text = done.message("unused")
    assert f"cannot save '{target}'" in text and f"saved to '{done.path}' instead" in text
    again = save.save_or_rescue(model, target)  # a second rescue never replaces the first
    assert again.path != done.path and done.path.exists() and again.path.exists()
    loaded = load_model(done.path)
    for k, v in model.net.state_dict().items():
        assert (loaded.net.state_dict()[k] == v).all()


def test_the_temp_folder_rescues_when_home_cannot(model, tmp_path, monkeypatch, rescue_home):
    target = tmp_path / "full" / "m.safetensors"
    (tmp_path / "home").write_text("a file where the home folder should be")
    _failing_writer(monkeypatch, OSError(errno.ENOSPC, "No space left"), target.parent)
    done = save.save_or_rescue(model, target)
    assert done.path is not None and done.path.parent == rescue_home[1]


def test_nowhere_to_write_keeps_the_model_in_memory(model, tmp_path, monkeypatch, rescue_home):
    _failing_writer(monkeypatch, _safetensor_error("I/O error: No space left on device"))
    target = tmp_path / "m.safetensors"
    done = save.save_or_rescue(model, target)
    assert done.path is None
    text = done.message("it stays in memory")
    assert text.startswith(f"cannot save '{target}'") and text.endswith("so it stays in memory")
    assert all(str(f) in text for f in rescue_home)
    # the console: one line, the object still holds the model
    with pytest.raises(SaveError, match="only in memory \\(this object\\)") as e:
        model.save(target)
    assert "\n" not in str(e.value) and not any(
        f.exists() and any(f.iterdir()) for f in rescue_home
    )


def test_the_console_save_rescues_with_a_warning(model, tmp_path, monkeypatch, rescue_home):
    target = tmp_path / "full" / "m.safetensors"
    _failing_writer(monkeypatch, PermissionError(errno.EACCES, "denied"), target.parent)
    with pytest.warns(UserWarning, match="no permission .*saved to '.*napari-temseg-rescued"):
        path = model.save(target)
    assert path.parent == rescue_home[0] and load_model(path).model_cfg == model.model_cfg
    (tmp_path / "there.safetensors").write_bytes(b"x")
    with pytest.raises(ModelFileError, match="exists"):  # a choice to make, nothing rescued
        model.save(tmp_path / "there.safetensors")
    assert len(list(rescue_home[0].iterdir())) == 1


def test_expected_size_matches_the_written_file(model, tmp_path):
    need = save.expected_size(model.model_cfg)
    size = model.save(tmp_path / "m.safetensors").stat().st_size
    assert need < size < need + save.HEADER_ROOM
    wider = ModelConfig(arch="small-unet", base_width=8)
    assert save.expected_size(wider) > 3 * need


def test_a_drive_too_full_is_refused_before_training(tmp_path, monkeypatch):
    import shutil

    cfg = ModelConfig(arch="small-unet", base_width=4)
    need = save.expected_size(cfg) + save.HEADER_ROOM
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=need - 1))
    with pytest.raises(SaveError, match="MB free and the model needs about .* free some space"):
        save.check_room(tmp_path / "new" / "m.safetensors", cfg)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=need))
    save.check_room(tmp_path / "new" / "m.safetensors", cfg)
