"""Output names: one per input, readable where nothing collides, stable on rerun."""

from __future__ import annotations

from pathlib import Path

from sonorisk.pipeline.output_names import output_stems


def test_plain_stems_where_nothing_collides(tmp_path: Path) -> None:
    paths = [tmp_path / "a.avi", tmp_path / "day2" / "b.mp4"]
    assert output_stems(paths) == {paths[0]: "a", paths[1]: "b"}
    assert output_stems(paths, root=tmp_path) == {paths[0]: "a", paths[1]: "day2/b"}


def test_same_stem_other_container_keeps_its_suffix(tmp_path: Path) -> None:
    avi, mp4, other = tmp_path / "good.avi", tmp_path / "good.mp4", tmp_path / "x.avi"
    stems = output_stems([avi, mp4, other], root=tmp_path)
    assert stems == {avi: "good.avi", mp4: "good.mp4", other: "x"}


def test_same_name_from_two_folders_without_a_common_root(tmp_path: Path) -> None:
    one, two = tmp_path / "c1" / "v.avi", tmp_path / "c2" / "v.avi"
    stems = output_stems([one, two])
    assert stems[one] != stems[two]
    assert stems[one].startswith("v.avi-") and len(stems[one]) == len("v.avi-") + 8
    assert output_stems([two, one]) == stems  # the same names on every rerun, in any order
    # Under a common root the folders keep them apart without a hash.
    assert output_stems([one, two], root=tmp_path) == {one: "c1/v", two: "c2/v"}
