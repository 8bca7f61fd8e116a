"""tools/visualize_result.py with FastReID's options: --root, --parallel, --vis-label and the
ascending / descending sorts; its ROC and histogram carry titles naming the test set."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from fastreid.data.synthetic import generate_synthetic_dataset
from fastreid.evaluation import visualizer

REPO = Path(__file__).resolve().parents[2]


def _tool():
    spec = importlib.util.spec_from_file_location("visualize_result_tool", REPO / "tools" /
                                                  "visualize_result.py")  # fmt: skip
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fastreid_options_and_titles(tmp_path, monkeypatch):
    monkeypatch.delenv("FASTREID_DATASETS", raising=False)
    root = tmp_path / "datasets"
    generate_synthetic_dataset(str(root), num_ids=8, seed=0, height=64, width=32, num_cams=3)
    figures = []
    real = visualizer.save_figure

    def keep(fig, path):
        figures.append((Path(path).name, [ax.get_title() for ax in fig.axes], len(fig.axes)))
        return real(fig, path)

    monkeypatch.setattr(visualizer, "save_figure", keep)
    out = tmp_path / "vis"
    code = _tool().main(
        ["--config-file", str(REPO / "configs" / "Synthetic" / "bagtricks_R18.yml"),
         "--root", str(root), "--output", str(out), "--parallel", "--vis-label",
         "--rank-sort", "ascending", "--label-sort", "descending", "--num-vis", "2",
         "--max-rank", "3", "--save-features", "INPUT.SIZE_TEST", "[64, 32]",
         "DATALOADER.NUM_WORKERS", "0", "TEST.IMS_PER_BATCH", "32"]
    )  # fmt: skip
    assert code == 0
    by_name = {name: (titles, count) for name, titles, count in figures}
    roc_title = by_name["roc.png"][0][0]
    assert roc_title.startswith("ROC on SyntheticReID, cosine distance\n")
    assert by_name["distance_histograms.png"][0][0].startswith(
        "Pair distances on SyntheticReID, cosine distance\n"
    )
    rank_lists = [name for name in by_name if name.startswith("rank_list_")]
    assert len(rank_lists) == 2
    assert all(by_name[name][1] == 2 * 4 for name in rank_lists)  # two rows: --vis-label
    data = np.load(out / "features.npz")
    assert str(data["dataset"]) == "SyntheticReID"
    # --rank-sort ascending is FastReID's "hardest queries first", i.e. worst.
    lists = visualizer.rank_lists(
        data["q_feats"], data["g_feats"], data["q_pids"], data["g_pids"], data["q_camids"],
        data["g_camids"], range(len(data["q_pids"])), topk=len(data["g_pids"]),
    )  # fmt: skip
    first = np.array([np.argmax(m) if m.any() else len(m) for _, _, m in lists])
    worst = np.argsort(-first, kind="stable")[:2]
    assert sorted(rank_lists) == sorted(
        f"rank_list_{int(i):05d}_pid{int(data['q_pids'][i])}.png" for i in worst
    )


def test_without_root_the_dataset_is_looked_for_elsewhere(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTREID_DATASETS", str(tmp_path / "nowhere"))
    with pytest.raises((FileNotFoundError, OSError), match="nowhere"):
        _tool().main(
            ["--config-file", str(REPO / "configs" / "Synthetic" / "bagtricks_R18.yml"),
             "--output", str(tmp_path / "vis"), "DATALOADER.NUM_WORKERS", "0"]
        )  # fmt: skip
