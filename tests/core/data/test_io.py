import numpy as np
import pytest

from napari_temseg.core import data as io
from napari_temseg.core.data.volume import as_volume
from napari_temseg.core.errors import InputError


@pytest.fixture
def stack():
    rng = np.random.default_rng(0)
    return rng.integers(0, 60000, (3, 2, 37, 45), dtype=np.uint16)


def test_contiguous_tiff_is_memmap(tmp_path, stack):
    import tifffile

    tifffile.imwrite(tmp_path / "a.tif", stack)
    arr = io.read_image(tmp_path / "a.tif")
    assert isinstance(arr, np.memmap)
    np.testing.assert_array_equal(np.asarray(arr), stack)


def test_compressed_tiff_is_lazy_zarr(tmp_path, stack):
    import tifffile

    tifffile.imwrite(tmp_path / "c.tiff", stack, compression="zlib")
    arr = io.read_image(tmp_path / "c.tiff")
    assert not isinstance(arr, np.ndarray)
    assert tuple(arr.shape) == stack.shape
    np.testing.assert_array_equal(arr[1, 0, 5:9, 3:7], stack[1, 0, 5:9, 3:7])
    vol = as_volume(arr)
    np.testing.assert_array_equal(vol.region(2), stack[2])


def test_zarr_store_and_group(tmp_path, stack):
    import zarr

    z = zarr.open(
        str(tmp_path / "s.zarr"),
        mode="w",
        shape=stack.shape,
        dtype=stack.dtype,
        chunks=(1, 2, 16, 16),
    )
    z[:] = stack
    arr = io.read_image(tmp_path / "s.zarr")
    np.testing.assert_array_equal(arr[:], stack)
    with pytest.raises((ValueError, PermissionError), match="read.only"):  # zarr 3 / zarr 2
        arr[0, 0, 0, 0] = stack[0, 0, 0, 0] + 1
    assert arr[0, 0, 0, 0] == stack[0, 0, 0, 0]
    g = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    g.create_array("0", shape=stack.shape, dtype=stack.dtype)[:] = stack
    np.testing.assert_array_equal(io.read_image(tmp_path / "g.zarr")[:], stack)


def test_png_and_npy(tmp_path):
    from PIL import Image

    img = (np.arange(20 * 30) % 251).astype(np.uint8).reshape(20, 30)
    Image.fromarray(img).save(tmp_path / "p.png")
    np.testing.assert_array_equal(io.read_image(tmp_path / "p.png"), img)
    np.save(tmp_path / "n.npy", img)
    npy = io.read_image(tmp_path / "n.npy")
    assert isinstance(npy, np.memmap) and npy.mode == "r"  # lazy and read-only
    np.testing.assert_array_equal(npy, img)


def test_read_errors(tmp_path, stack):
    with pytest.raises(InputError, match="not found"):
        io.read_image(tmp_path / "missing.tif")
    (tmp_path / "x.bmp").write_bytes(b"00")
    with pytest.raises(InputError, match="supported"):
        io.read_image(tmp_path / "x.bmp")
    np.save(tmp_path / "n.npy", stack)
    with pytest.raises(InputError, match="channel axis 7"):
        io.read_image(tmp_path / "n.npy", channel_axis=7)


def _write_pngs(folder, names, value):
    from PIL import Image

    folder.mkdir()
    for n in names:
        Image.fromarray(np.full((8, 9), value, np.uint8)).save(folder / f"{n}.png")


def test_list_pairs_and_training_set(tmp_path):
    _write_pngs(tmp_path / "img", ["b", "a"], 7)
    _write_pngs(tmp_path / "msk", ["a", "b"], 1)
    pairs = io.list_pairs(tmp_path / "img", tmp_path / "msk")
    assert [p[0].stem for p in pairs] == ["a", "b"]
    assert all(i.stem == m.stem for i, m in pairs)
    images, masks, names = io.read_training_set(tmp_path / "img", tmp_path / "msk")
    assert names == ["a", "b"]
    assert int(images[0][0, 0]) == 7 and int(masks[1][0, 0]) == 1
    images, masks, names = io.read_training_set(pairs[0][0], pairs[0][1])
    assert names == ["a"] and len(images) == len(masks) == 1


def test_list_pairs_names_the_unmatched(tmp_path):
    _write_pngs(tmp_path / "img", ["a", "b", "c"], 7)
    _write_pngs(tmp_path / "msk", ["a", "b"], 1)
    with pytest.raises(InputError, match="images without a mask: c"):
        io.list_pairs(tmp_path / "img", tmp_path / "msk")
    _write_pngs(tmp_path / "msk2", ["a", "b", "c", "zz"], 1)
    with pytest.raises(InputError, match="masks without an image: zz"):
        io.list_pairs(tmp_path / "img", tmp_path / "msk2")
    _write_pngs(tmp_path / "other", ["q"], 1)
    with pytest.raises(InputError, match="same name"):
        io.list_pairs(tmp_path / "img", tmp_path / "other")
    with pytest.raises(InputError, match="either one image file"):
        io.read_training_set(tmp_path / "img", tmp_path / "other" / "q.png")


def test_list_images(tmp_path):
    _write_pngs(tmp_path / "d", ["b", "a"], 3)
    (tmp_path / "d" / "notes.txt").write_text("x")
    assert [p.name for p in io.list_images(tmp_path / "d")] == ["a.png", "b.png"]
    assert io.list_images(tmp_path / "d" / "a.png") == [tmp_path / "d" / "a.png"]
    (tmp_path / "e").mkdir()
    with pytest.raises(InputError, match="no images"):
        io.list_images(tmp_path / "e")


@pytest.mark.parametrize("name", ["o.zarr", "o.tif", "o.npy"])
def test_create_output_roundtrip_and_no_overwrite(tmp_path, name):
    path = tmp_path / name
    out = io.create_output(path, (3, 20, 30), np.float16)
    for z in range(3):
        out[z] = np.full((20, 30), z + 0.5, np.float16)
    if hasattr(out, "flush"):
        out.flush()
    back = io.read_image(path)
    assert tuple(back.shape) == (3, 20, 30)
    np.testing.assert_array_equal(np.asarray(back[2]), np.full((20, 30), 2.5, np.float16))
    with pytest.raises(InputError, match="--overwrite"):
        io.create_output(path, (3, 20, 30), np.float16)
    if name.endswith(".npy"):  # no room for our mark: never replaced, even with overwrite
        with pytest.raises(InputError, match="cannot carry napari-temseg's mark"):
            io.create_output(path, (2, 5, 5), np.uint8, overwrite=True)
        assert tuple(io.read_image(path).shape) == (3, 20, 30)
        return
    out2 = io.create_output(path, (2, 5, 5), np.uint8, overwrite=True)
    assert tuple(out2.shape) == (2, 5, 5)


def test_create_output_refuses_plain_folder_and_bad_suffix(tmp_path):
    # a folder with an output suffix (so the suffix check passes) that is not a zarr store
    (tmp_path / "keep.tif").mkdir()
    (tmp_path / "keep.tif" / "precious.txt").write_text("x")
    with pytest.raises(
        InputError, match="'.*keep.tif' is a folder that is not a zarr store; refusing to delete"
    ):
        io.create_output(tmp_path / "keep.tif", (1, 2, 2), np.uint8, overwrite=True)
    with pytest.raises(InputError, match=r"output 'o.png' must end in \.zarr, \.tif"):
        io.create_output(tmp_path / "o.png", (1, 2, 2), np.uint8)
    assert (tmp_path / "keep.tif" / "precious.txt").read_text() == "x"


def test_zarr_output_chunks_one_slice(tmp_path):
    out = io.create_output(tmp_path / "c.zarr", (4, 2000, 3000), np.uint8)
    assert tuple(out.chunks) == (1, 1024, 1024)


# --- outputs carry a marker; overwrite replaces only those; checks create nothing ----
@pytest.mark.parametrize("name", ["o.zarr", "o.tif"])
def test_outputs_are_marked_and_only_marked_ones_are_replaced(tmp_path, name):
    import tifffile
    import zarr

    ours = tmp_path / name
    io.create_output(ours, (2, 4, 5), np.uint8)
    assert io.is_own_output(ours)
    theirs = tmp_path / ("t" + name)
    if name.endswith(".zarr"):
        zarr.open(str(theirs), mode="w", shape=(2, 4, 5), dtype="u1")[:] = 7
    else:
        tifffile.imwrite(theirs, np.full((2, 4, 5), 7, np.uint8))
    assert not io.is_own_output(theirs)
    with pytest.raises(InputError, match="not written by napari-temseg; refusing to replace"):
        io.create_output(theirs, (2, 4, 5), np.uint8, overwrite=True)
    assert int(io.read_image(theirs)[0, 0, 0]) == 7
    assert tuple(io.create_output(ours, (1, 3, 3), np.uint8, overwrite=True).shape) == (1, 3, 3)


def test_overwrite_never_deletes_a_folder_named_like_a_zarr_store(tmp_path):
    notes = tmp_path / "notes.zarr"
    notes.mkdir()
    (notes / "todo.txt").write_text("keep me")
    with pytest.raises(InputError, match="not written by napari-temseg"):
        io.create_output(notes, (1, 2, 2), np.uint8, overwrite=True)
    assert (notes / "todo.txt").read_text() == "keep me"


def test_check_output_path_creates_nothing(tmp_path, monkeypatch):
    import errno
    import tempfile

    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(InputError, match=r"'.*f.txt' is a file, not a folder"):
        io.check_output_path(tmp_path / "f.txt" / "sub" / "o.tif")
    assert io.check_output_path(tmp_path / "a" / "b" / "o.zarr") == tmp_path / "a" / "b" / "o.zarr"

    def read_only(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system", k.get("dir"))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(InputError, match=r"cannot write '.*o.tif': Read-only file system"):
        io.create_output(tmp_path / "new" / "o.tif", (1, 2, 2), np.uint8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]


@pytest.mark.parametrize("axis", [3, -4, 7, 1.0, True, "0"])
def test_channel_axis_out_of_range_is_refused(axis):
    with pytest.raises(InputError, match=r"channel_axis .* use 0\.\.2 \(or -3\.\.-1"):
        as_volume(np.zeros((3, 8, 8), np.float32), channel_axis=axis)


@pytest.mark.parametrize("axis,axes", [(0, "CYX"), (-1, "YXC"), (np.int64(2), "YXC"), (-3, "CYX")])
def test_channel_axis_in_range_and_negative_axes(axis, axes):
    assert as_volume(np.zeros((3, 8, 8), np.float32), channel_axis=axis).axes == axes
    stack = np.zeros((2, 3, 8, 8), np.float32)
    assert as_volume(stack, channel_axis=-3).axes == as_volume(stack, channel_axis=1).axes == "ZCYX"
    with pytest.raises(InputError, match=r"use 0\.\.3 \(or -4\.\.-1"):
        as_volume(stack, channel_axis=-5)
