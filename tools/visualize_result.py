"""Rank lists, ROC curve and distance histograms of a model on a test set, as PNGs.

    python tools/visualize_result.py --config-file configs/Market1501/bagtricks_R50.yml \
        --output vis/ MODEL.WEIGHTS logs/market1501/bagtricks_R50/model_final.pth
    python tools/visualize_result.py --features vis/features.npz --output vis/

Config overrides come as trailing ``KEY VALUE`` pairs or after ``--opts``.
``--save-features`` keeps the extracted features (.npz) so later runs skip inference. Bad input
ends with one ``error:`` line and exit code 2 (``FASTREID_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations

import logging
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FEATURE_KEYS = ("q_feats", "g_feats", "q_pids", "g_pids", "q_camids", "g_camids")


def extract(args):
    """Features, labels and paths of the query and gallery sets from a model."""
    import torch

    from fastreid.config import get_cfg
    from fastreid.data import build_reid_test_loader
    from fastreid.predictor import build_model_from_cfg

    cfg = get_cfg()
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    model = build_model_from_cfg(cfg)
    cfg = model.cfg
    dataset_name = args.dataset_name or cfg.DATASETS.TESTS[0]
    loader, num_query = build_reid_test_loader(cfg, dataset_name=dataset_name)
    features, pids, camids, paths = [], [], [], []
    with torch.no_grad():
        for batch in loader:
            images = batch["images"].to(model.device)
            output = model(dict(batch, images=images))
            if cfg.TEST.FLIP.ENABLED:
                output = (output + model(dict(batch, images=images.flip(3)))) / 2
            features.append(output.float().cpu())
            pids.append(batch["targets"])
            camids.append(batch["camids"])
            paths.extend(batch["img_paths"])
    feats = torch.cat(features).numpy()
    pids, camids = torch.cat(pids).numpy(), torch.cat(camids).numpy()
    data = {
        "q_feats": feats[:num_query], "g_feats": feats[num_query:],
        "q_pids": pids[:num_query], "g_pids": pids[num_query:],
        "q_camids": camids[:num_query], "g_camids": camids[num_query:],
        "q_paths": np.asarray(paths[:num_query]), "g_paths": np.asarray(paths[num_query:]),
        "metric": np.asarray(cfg.TEST.METRIC),
    }  # fmt: skip
    return data


def load_features(path: str):
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Features file '{path}' (--features) does not exist; write one with "
            "--config-file ... --save-features."
        )
    data = dict(np.load(path, allow_pickle=False))
    missing = [key for key in FEATURE_KEYS if key not in data]
    if missing:
        raise KeyError(f"{path} lacks {missing}; save it with --save-features.")
    data.setdefault("q_paths", np.asarray([""] * len(data["q_pids"])))
    data.setdefault("g_paths", np.asarray([""] * len(data["g_pids"])))
    return data


def main(argv=None) -> int:
    from fastreid.config import ConfigArgumentParser

    parser = ConfigArgumentParser(description="Visualise re-ID results.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config-file", help="model config (weights via --opts MODEL.WEIGHTS)")
    source.add_argument("--features", help=".npz written by --save-features")
    parser.add_argument("--dataset-name", default="", help="test set (default DATASETS.TESTS[0])")
    parser.add_argument("--output", default="vis/", help="folder for the PNGs")
    parser.add_argument("--num-vis", type=int, default=10, help="rank lists to draw")
    parser.add_argument("--max-rank", type=int, default=10, help="gallery images per list")
    parser.add_argument(
        "--rank-sort", default="first", choices=["first", "random", "worst", "best"]
    )
    parser.add_argument("--metric", default="", help="cosine or euclidean (default TEST.METRIC)")
    parser.add_argument("--save-features", action="store_true", help="write features.npz")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from fastreid.evaluation import visualizer
    from fastreid.utils.file_io import atomic_open, ensure_dir

    ensure_dir(args.output, what="output folder (--output)")
    data = extract(args) if args.config_file else load_features(args.features)
    metric = args.metric or str(data.get("metric", "cosine"))
    if args.save_features and args.config_file:
        with atomic_open(os.path.join(args.output, "features.npz"), "wb") as handle:
            np.savez(handle, **data)
    labels = [data[k] for k in ("q_pids", "g_pids", "q_camids", "g_camids")]
    written = visualizer.save_rank_lists(
        data["q_feats"], data["g_feats"], *labels, list(data["q_paths"]),
        list(data["g_paths"]), args.output, num_queries=args.num_vis, topk=args.max_rank,
        metric=metric, order=args.rank_sort,
    )  # fmt: skip
    positive, negative = visualizer.pair_distances(
        data["q_feats"], data["g_feats"], *labels, metric=metric
    )
    written.append(visualizer.plot_roc(positive, negative, os.path.join(args.output, "roc.png")))
    written.append(
        visualizer.plot_distance_histograms(
            positive, negative, os.path.join(args.output, "distance_histograms.png")
        )
    )
    print(f"wrote {len(written)} pictures to {args.output}")
    return 0


if __name__ == "__main__":
    from fastreid.utils.errors import exit_on_bad_input

    sys.exit(exit_on_bad_input(main))
