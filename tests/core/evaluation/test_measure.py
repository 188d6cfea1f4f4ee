"""Objects and measurements in physical units: the table, units from the pixel
size or the TIFF metadata, class maps, CLI and API."""

import csv

import numpy as np
import pytest
import tifffile

from napari_temseg.core.errors import InputError
from napari_temseg.core.evaluation.measure import measure, pixel_size_from_file


def two_objects():
    lab = np.zeros((2, 40, 50), np.uint16)
    lab[0, 5:15, 5:25] = 3  # 10 x 20 rectangle
    lab[1, 20:30, 30:40] = 7  # 10 x 10 square
    img = np.zeros((2, 2, 40, 50), np.float32)
    img[:, 0][lab > 0] = 0.5
    img[:, 1][lab > 0] = 0.25
    return lab, img


def test_instance_table_in_physical_units():
    lab, img = two_objects()
    t = measure(lab, img, pixel_size=2.5, unit="nm")
    assert list(t["label"]) == [3, 7] and list(t["slice"]) == [0, 1]
    np.testing.assert_allclose(t["area_nm2"], [200 * 6.25, 100 * 6.25])
    np.testing.assert_allclose(t["equivalent_diameter_nm"], np.sqrt(4 * t["area_nm2"] / np.pi))
    np.testing.assert_allclose(t["centroid_y_nm"], [9.5 * 2.5, 24.5 * 2.5])
    assert t["major_axis_nm"][0] > t["minor_axis_nm"][0] and t["eccentricity"][1] < 1e-6
    np.testing.assert_allclose(t["solidity"], 1.0)
    np.testing.assert_allclose(t["mean_intensity_ch0"], 0.5)
    np.testing.assert_allclose(t["mean_intensity_ch1"], 0.25)
    px = measure(lab)  # no pixel size: pixels, said in the names
    np.testing.assert_allclose(px["area_px2"], [200, 100])
    aniso = measure(lab, pixel_size=(2.0, 1.0), unit="um")
    np.testing.assert_allclose(aniso["area_um2"], [400, 200])
    assert np.isnan(aniso["perimeter_um"]).all()  # square pixels only


def test_binary_masks_and_class_maps_split_into_objects():
    b = np.zeros((30, 30), np.uint8)
    b[2:6, 2:6] = 1
    b[20:25, 20:28] = 1
    t = measure(b)  # 0/1: connected components
    assert sorted(t["area_px2"]) == [16, 40] and set(t["class"]) == {1}
    k = b.copy()
    k[20:25, 20:28] = 2
    k[10:12, 10:12] = 2
    t = measure(k, class_names=["matrix", "pores", "grains"])
    assert sorted(zip(t["class_name"], t["area_px2"], strict=True)) == [
        ("grains", 4), ("grains", 40), ("pores", 16)
    ]  # fmt: skip


def test_bad_input_is_one_line():
    lab, img = two_objects()
    with pytest.raises(InputError, match="does not match the labels"):
        measure(lab, img[:, :, :10])
    with pytest.raises(InputError, match="pixel size must be > 0"):
        measure(lab, pixel_size=0)
    with pytest.raises(InputError, match="labels must be whole numbers"):
        measure(lab.astype(np.float32))


def test_pixel_size_from_imagej_and_ome_tiffs(tmp_path):
    a = np.zeros((4, 8, 8), np.uint8)
    tifffile.imwrite(
        tmp_path / "ij.tif", a, imagej=True, resolution=(1 / 0.5, 1 / 0.25),
        metadata={"unit": "micron"},
    )  # fmt: skip
    assert pixel_size_from_file(tmp_path / "ij.tif") == pytest.approx((0.25, 0.5, "um"))
    tifffile.imwrite(
        tmp_path / "ome.ome.tif", a, ome=True,
        metadata={"axes": "ZYX", "PhysicalSizeX": 3.0, "PhysicalSizeY": 3.0,
                  "PhysicalSizeXUnit": "nm", "PhysicalSizeYUnit": "nm"},
    )  # fmt: skip
    assert pixel_size_from_file(tmp_path / "ome.ome.tif") == pytest.approx((3.0, 3.0, "nm"))
    tifffile.imwrite(tmp_path / "plain.tif", a, photometric="minisblack")
    assert pixel_size_from_file(tmp_path / "plain.tif") is None


def test_cli_measure_and_api(tmp_path, capsys):
    from napari_temseg import api
    from napari_temseg.cli import main

    lab, img = two_objects()
    tifffile.imwrite(
        tmp_path / "l.tif", lab, imagej=True, resolution=(1 / 2.5, 1 / 2.5),
        metadata={"unit": "nm", "axes": "ZYX"},
    )  # fmt: skip
    tifffile.imwrite(tmp_path / "i.tif", img[:, 0], photometric="minisblack")
    out = tmp_path / "t.csv"
    assert main(["measure", str(tmp_path / "l.tif"), "--image", str(tmp_path / "i.tif"),
                 "-o", str(out)]) == 0  # fmt: skip
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert [r["label"] for r in rows] == ["3", "7"]
    assert float(rows[0]["area_nm2"]) == pytest.approx(1250) and "mean_intensity_ch0" in rows[0]
    assert "2 object(s)" in capsys.readouterr().err
    assert main(["measure", str(tmp_path / "l.tif"), "-o", str(out)]) == 2  # exists
    t = api.measure(lab, pixel_size=2.5, unit="nm", verbose=False)
    assert list(t["area_nm2"]) == pytest.approx([1250, 625])


def test_api_measure_takes_the_layer_scale_and_units():
    import napari

    lab, img = two_objects()
    layer = napari.layers.Labels(lab, scale=(50, 2.5, 2.5), units=("nm", "nm", "nm"))
    image = napari.layers.Image(img[:, 0], scale=(50, 2.5, 2.5))
    t = measure_api(layer, image)
    assert list(t["area_nm2"]) == pytest.approx([1250, 625])
    assert list(t["mean_intensity_ch0"]) == pytest.approx([0.5, 0.5])
    plain = measure_api(napari.layers.Labels(lab))
    assert list(plain["area_px2"]) == [200, 100]


def measure_api(*a, **k):
    from napari_temseg import api

    return api.measure(*a, verbose=False, **k)
