"""save_figure: an atomic, closed, folder-creating figure write."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from fastreid.utils.file_io import save_figure  # noqa: E402


def test_writes_the_picture_into_a_new_folder_and_closes_the_figure(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = save_figure(fig, tmp_path / "a" / "b" / "plot.png")
    assert path == str(tmp_path / "a" / "b" / "plot.png")
    assert (tmp_path / "a" / "b" / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.fignum_exists(fig.number)
    assert sorted(p.name for p in (tmp_path / "a" / "b").iterdir()) == ["plot.png"]


def test_a_failed_write_leaves_no_file_and_still_closes_the_figure(tmp_path):
    fig, _ = plt.subplots()
    with pytest.raises(ValueError):
        save_figure(fig, tmp_path / "plot.notaformat")
    assert list(tmp_path.iterdir()) == []
    assert not plt.fignum_exists(fig.number)
