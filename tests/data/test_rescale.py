"""sonorisk dataset rescale: a copy of a dataset scaled after rendering, boxes alike."""

from __future__ import annotations

import json
import math

import av
import cv2
import numpy as np
import pandas as pd
import pytest

from sonorisk.cli import main
from sonorisk.data import load_dataset, validate_dataset
from sonorisk.data.format import DatasetWriter
from sonorisk.data.frames import VideoFrameReader
from sonorisk.data.rescale import output_size, rescale_dataset
from sonorisk.errors import InputError


@pytest.fixture(scope="module")
def halved(phantom_sweeps, tmp_path_factory):
    """The phantom sweeps (240x180, MJPEG) at scale 0.5, bilinear."""
    return rescale_dataset(phantom_sweeps, tmp_path_factory.mktemp("halved") / "out", scale=0.5)


def _coco(root):
    return json.loads((root / "annotations.json").read_text())


def test_boxes_sizes_and_table_are_scaled(phantom_sweeps, halved):
    assert validate_dataset(halved) == []
    source, copy = load_dataset(phantom_sweeps), load_dataset(halved)
    assert copy.video_ids == source.video_ids
    for video_id in source.video_ids:
        before, after = source.frames(video_id), copy.frames(video_id)
        assert len(after) == len(before)  # frames without boxes kept as image entries
        for a, b in zip(before, after, strict=True):
            assert (b.width, b.height) == (120, 90)
            assert b.lesion_ids == a.lesion_ids
            assert np.allclose(
                np.array(b.boxes).reshape(-1, 4), np.array(a.boxes).reshape(-1, 4) / 2, atol=1e-3
            )
        # Frame count of the file itself equals the source's.
        assert VideoFrameReader.probe(copy.path(video_id)) == (120, 90, len(before))
    assert any(f.boxes for f in copy.frames()) and any(not f.boxes for f in copy.frames())
    src_table, table = source.table, copy.table
    assert list(table.columns) == list(src_table.columns)  # every column kept
    assert (table["width"] == 120).all() and (table["height"] == 90).all()
    keep = [c for c in src_table.columns if c not in ("width", "height")]
    assert table[keep].astype(str).equals(src_table[keep].astype(str))
    src_coco, coco = _coco(phantom_sweeps), _coco(halved)
    for a, b in zip(src_coco["annotations"], coco["annotations"], strict=True):
        assert b["area"] == pytest.approx(a["area"] / 4)
    assert str(phantom_sweeps) in coco["info"]["description"]
    assert "scale 0.5" in coco["info"]["description"]


def test_pixels_are_the_resized_source_frame(phantom_sweeps, halved):
    source, copy = load_dataset(phantom_sweeps), load_dataset(halved)
    video_id = source.video_ids[0]
    pairs = zip(source.iter_images(video_id), copy.iter_images(video_id), strict=True)
    for (_, image), (_, got) in pairs:
        expected = cv2.resize(image, (120, 90), interpolation=cv2.INTER_LINEAR)
        # MJPEG again is lossy, at one quality on every frame.
        assert np.abs(got.astype(np.int16) - expected.astype(np.int16)).mean() < 4.0


@pytest.mark.parametrize("interpolation", ["bilinear", "area"])
def test_lossless_copy_is_exactly_cv2_resize(phantom_sweeps, tmp_path, interpolation):
    out = rescale_dataset(
        phantom_sweeps, tmp_path / "raw", scale=0.4, interpolation=interpolation, codec="rawvideo"
    )
    assert validate_dataset(out) == []
    source, copy = load_dataset(phantom_sweeps), load_dataset(out)
    flag = cv2.INTER_LINEAR if interpolation == "bilinear" else cv2.INTER_AREA
    video_id = source.video_ids[1]
    pairs = zip(source.iter_images(video_id), copy.iter_images(video_id), strict=True)
    for (_, image), (annotation, got) in pairs:
        assert (annotation.width, annotation.height) == (96, 72)
        assert np.array_equal(got, cv2.resize(image, (96, 72), interpolation=flag))
    assert (copy.table["codec"] == "rawvideo").all()


def test_size_area_and_rounding(make_tiny, tmp_path):
    source = make_tiny(tmp_path / "tiny", codec="mjpeg", size=(64, 48))
    out = rescale_dataset(source, tmp_path / "wide", size=(100, 50), interpolation="area")
    assert validate_dataset(out) == []
    boxes = load_dataset(out).boxes_for("v1")
    src = load_dataset(source).boxes_for("v1")
    fx, fy = 100 / 64, 50 / 48
    for index, frame_boxes in src.items():
        for (x1, y1, x2, y2), got in zip(frame_boxes, boxes[index], strict=True):
            assert got == pytest.approx((x1 * fx, y1 * fy, x2 * fx, y2 * fy), abs=1e-3)
    # Tiny frames are flat grey (20*i+10), so area and MJPEG keep them close.
    copy = load_dataset(out)
    image = copy.read_image(copy.frames("v1")[3])
    assert image.shape == (50, 100, 3) and abs(float(image.mean()) - 70) < 3
    # A scale whose sides round to odd numbers: even for MJPEG, exact for rawvideo.
    assert output_size(64, 48, 0.3, None, even=True) == (20, 14)
    assert output_size(64, 48, 0.3, None, even=False) == (19, 14)
    assert output_size(64, 48, 0.001, None, even=True) == (2, 2)
    out = rescale_dataset(source, tmp_path / "odd", scale=0.3)
    table = load_dataset(out).table
    assert (table["width"] == 20).all() and (table["height"] == 14).all()
    assert (table["codec"] == "mjpeg").all()  # no codec column in the source: MJPEG, said


def test_stills_are_rescaled_as_images(tmp_path):
    root = tmp_path / "stills"
    (root / "images").mkdir(parents=True)
    image = np.zeros((40, 60, 3), np.uint8)
    image[10:30, 20:50] = 200
    cv2.imwrite(str(root / "images" / "s1.png"), image)
    writer = DatasetWriter(root)
    writer.add_video(
        {"video_id": "s1", "file": "images/s1.png", "pathology": "benign", "patient_id": "p"},
        [([(20.0, 10.0, 50.0, 30.0)], [writer.new_lesion_id()])],
        60,
        40,
    )
    writer.write()
    out = rescale_dataset(root, tmp_path / "out", scale=0.5)
    copy = load_dataset(out)
    frame = copy.frames("s1")[0]
    assert (frame.width, frame.height) == (30, 20) and frame.boxes == [(10.0, 5.0, 25.0, 15.0)]
    assert copy.read_image(frame).shape == (20, 30, 3)
    assert validate_dataset(out) == []


def test_cli_writes_and_validates(phantom_sweeps, tmp_path, capsys):
    out = tmp_path / "small"
    args = ["dataset", "rescale", "--data", str(phantom_sweeps), "--size", "160x120"]
    assert main([*args, "--out", str(out), "--no-progress"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert main(["dataset", "validate", str(out)]) == 0
    assert "valid: 3 video(s), 48 frame(s)" in capsys.readouterr().out
    # A second run into the same folder is refused unless --overwrite.
    assert main([*args, "--out", str(out), "--no-progress"]) == 2
    assert "already holds a dataset" in capsys.readouterr().err
    assert main([*args, "--out", str(out), "--no-progress", "--overwrite"]) == 0
    with pytest.raises(SystemExit):  # neither --scale nor --size
        main(["dataset", "rescale", "--data", str(phantom_sweeps), "--out", str(out)])


def test_cli_codec_writes_another_format(phantom_sweeps, tmp_path, capsys):
    out = tmp_path / "h264"
    args = ["dataset", "rescale", "--data", str(phantom_sweeps), "--scale", "0.5"]
    assert main([*args, "--codec", "h264", "--out", str(out), "--no-progress"]) == 0
    copy = load_dataset(out)
    assert (copy.table["codec"] == "h264").all()
    for video_id in copy.video_ids:
        with av.open(str(out / copy.video(video_id).file)) as container:
            assert container.streams.video[0].codec_context.name == "h264"
    # A codec that takes no quantiser is refused with --qscale, naming both.
    bad = [*args, "--codec", "h264", "--qscale", "10", "--out", str(tmp_path / "bad")]
    assert main([*bad, "--no-progress"]) == 2
    assert "h264 takes no quantiser" in capsys.readouterr().err
    assert main([*args, "--codec", "vp9", "--out", str(tmp_path / "vp9"), "--no-progress"]) == 2
    assert "unknown codec 'vp9'" in capsys.readouterr().err


@pytest.mark.parametrize("scale", [0.0, -0.5, math.nan, math.inf, 4.5])
def test_refuses_bad_scales(tiny_dataset, tmp_path, scale):
    with pytest.raises(InputError, match="scale"):
        rescale_dataset(tiny_dataset, tmp_path / "out", scale=scale)
    assert not (tmp_path / "out").exists()


def test_refusals(tiny_dataset, tmp_path):
    with pytest.raises(InputError, match="is the source"):
        rescale_dataset(tiny_dataset, tiny_dataset, scale=0.5)
    with pytest.raises(InputError, match="is the source"):
        rescale_dataset(tiny_dataset, tiny_dataset / ".." / tiny_dataset.name, scale=0.5)
    with pytest.raises(InputError, match="exactly one"):
        rescale_dataset(tiny_dataset, tmp_path / "out")
    with pytest.raises(InputError, match="exactly one"):
        rescale_dataset(tiny_dataset, tmp_path / "out", scale=0.5, size=(32, 24))
    with pytest.raises(InputError, match="needs even sides"):
        rescale_dataset(tiny_dataset, tmp_path / "out", size=(33, 24))
    with pytest.raises(InputError, match="interpolation"):
        rescale_dataset(tiny_dataset, tmp_path / "out", scale=0.5, interpolation="cubic")
    assert not (tmp_path / "out").exists()
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "annotations.json").write_text("{}")
    with pytest.raises(InputError, match="already holds a dataset"):
        rescale_dataset(tiny_dataset, taken, scale=0.5)
    assert rescale_dataset(tiny_dataset, taken, scale=0.5, overwrite=True) == taken
    assert validate_dataset(taken) == []


def test_parquet_table_stays_parquet(make_tiny, tmp_path):
    root = make_tiny(tmp_path / "tiny")
    pd.read_csv(root / "videos.csv").to_parquet(root / "videos.parquet", index=False)
    (root / "videos.csv").unlink()
    out = rescale_dataset(root, tmp_path / "out", scale=0.5)
    assert (out / "videos.parquet").is_file() and not (out / "videos.csv").exists()
    assert validate_dataset(out) == []


def test_a_coarser_quantiser_makes_a_more_compressed_export(phantom_sweeps, tmp_path):
    fine = rescale_dataset(phantom_sweeps, tmp_path / "fine", scale=0.5)
    coarse = rescale_dataset(phantom_sweeps, tmp_path / "coarse", scale=0.5, qscale=20)
    assert validate_dataset(coarse) == []
    assert "quantiser 20" in _coco(coarse)["info"]["description"]
    source, a, b = load_dataset(phantom_sweeps), load_dataset(fine), load_dataset(coarse)
    assert set(a.table["qscale"]) == {3} and set(b.table["qscale"]) == {20}  # recorded per row
    video_id = source.video_ids[0]
    assert b.path(video_id).stat().st_size < 0.7 * a.path(video_id).stat().st_size
    errors = {}
    for name, copy in (("fine", a), ("coarse", b)):
        pairs = zip(source.iter_images(video_id), copy.iter_images(video_id), strict=True)
        errors[name] = np.mean(
            [
                np.abs(got.astype(float) - cv2.resize(image, got.shape[1::-1])).mean()
                for (_, image), (_, got) in pairs
            ]
        )
    assert errors["coarse"] > errors["fine"]
    with pytest.raises(InputError, match="qscale"):
        rescale_dataset(phantom_sweeps, tmp_path / "x", scale=0.5, qscale=1)
    with pytest.raises(InputError, match="rawvideo takes no quantiser"):
        rescale_dataset(phantom_sweeps, tmp_path / "y", scale=0.5, codec="rawvideo", qscale=5)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
