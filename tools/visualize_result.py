"""Rank lists, ROC curve and distance histograms of a model on a test set, as PNGs.

    python tools/visualize_result.py --config-file configs/Market1501/bagtricks_R50.yml \
        --output vis/ MODEL.WEIGHTS logs/market1501/bagtricks_R50/model_final.pth
    python tools/visualize_result.py --features vis/features.npz --output vis/
    fastreid-visualize --config-file configs/Market1501/bagtricks_R50.yml --root datasets \
        --vis-label --rank-sort ascending --label-sort ascending MODEL.WEIGHTS model.pth

Config overrides come as trailing ``KEY VALUE`` pairs or after ``--opts``. FastReID's options
keep their meaning: ``--parallel`` (feature extraction on every visible GPU), ``--vis-label``
(a second row with the query's true matches, ordered by ``--label-sort``) and
``--rank-sort ascending|descending`` (hardest or easiest queries first).
``--save-features`` keeps the extracted features (.npz) so later runs skip inference. Bad input
ends with one ``error:`` line and exit code 2 (``FASTREID_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations

import logging
import os
import sys

import numpy as np

if not __package__:  # run as a script from a clone: import the clone's fastreid
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FEATURE_KEYS = ("q_feats", "g_feats", "q_pids", "g_pids", "q_camids", "g_camids")


def extract(args):
    """Features, labels and paths of the query and gallery sets from a model."""
    import torch

    from fastreid.config import get_cfg
    from fastreid.data import build_reid_test_loader
    from fastreid.predictor import build_model_from_cfg
    from fastreid.utils.progress import progress_bar

    cfg = get_cfg()
    cfg.merge_from_file(args.config_file)
    if args.root:
        cfg.DATASETS.ROOT = args.root  # a DATASETS.ROOT override below still wins
    cfg.merge_from_list(args.opts)
    model = build_model_from_cfg(cfg)
    cfg = model.cfg
    device = model.device
    run = parallel_model(model) if args.parallel else model
    dataset_name = args.dataset_name or cfg.DATASETS.TESTS[0]
    loader, num_query = build_reid_test_loader(cfg, dataset_name=dataset_name)
    features, pids, camids, paths = [], [], [], []
    with torch.no_grad():
        for batch in progress_bar(loader, total=len(loader), desc="Extracting features"):
            images = batch["images"].to(device)
            output = run(dict(batch, images=images))
            if cfg.TEST.FLIP.ENABLED:
                output = (output + run(dict(batch, images=images.flip(3)))) / 2
            features.append(output.float().cpu())
            pids.append(batch["targets"])
            camids.append(batch["camids"])
            paths.extend(batch["img_paths"])
    feats = torch.cat(features).numpy()
    pids, camids = torch.cat(pids).numpy(), torch.cat(camids).numpy()
    data = {
        "dataset": np.asarray(dataset_name),
        "q_feats": feats[:num_query], "g_feats": feats[num_query:],
        "q_pids": pids[:num_query], "g_pids": pids[num_query:],
        "q_camids": camids[:num_query], "g_camids": camids[num_query:],
        "q_paths": np.asarray(paths[:num_query]), "g_paths": np.asarray(paths[num_query:]),
        "metric": np.asarray(cfg.TEST.METRIC),
    }  # fmt: skip
    return data


def parallel_model(model):
    """FastReID's ``--parallel``: the model on every visible GPU (``nn.DataParallel``); the
    model itself where there are fewer than two."""
    import torch

    count = torch.cuda.device_count() if model.device.type == "cuda" else 0
    if count < 2:
        logging.getLogger("fastreid").info(
            f"--parallel: {max(count, 1)} device ({model.device}); extracting on it alone."
        )
        return model
    logging.getLogger("fastreid").info(f"--parallel: extracting on {count} GPUs.")
    return torch.nn.DataParallel(model)


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
    parser.add_argument("--root", default="", help="datasets root (sets DATASETS.ROOT)")
    parser.add_argument(
        "--parallel", action="store_true", help="extract features on every visible GPU"
    )
    parser.add_argument(
        "--vis-label", action="store_true", help="add a row with each query's true matches"
    )
    parser.add_argument(
        "--label-sort",
        default="ascending",
        choices=["ascending", "descending"],
        help="order of the true matches by similarity (ascending: hardest first)",
    )
    parser.add_argument("--output", default="vis/", help="folder for the PNGs")
    parser.add_argument("--num-vis", type=int, default=10, help="rank lists to draw")
    parser.add_argument("--max-rank", type=int, default=10, help="gallery images per list")
    parser.add_argument(
        "--rank-sort",
        default="first",
        choices=["first", "random", "worst", "best", "ascending", "descending"],
        help="queries shown: in order, random, worst / best first (FastReID: ascending / "
        "descending)",
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
        metric=metric, order=args.rank_sort, vis_label=args.vis_label,
        label_sort=args.label_sort,
    )  # fmt: skip
    positive, negative = visualizer.pair_distances(
        data["q_feats"], data["g_feats"], *labels, metric=metric
    )
    about = f"{data['dataset']}, {metric} distance" if "dataset" in data else f"{metric} distance"
    written.append(
        visualizer.plot_roc(
            positive, negative, os.path.join(args.output, "roc.png"), title=f"ROC on {about}"
        )
    )
    written.append(
        visualizer.plot_distance_histograms(
            positive,
            negative,
            os.path.join(args.output, "distance_histograms.png"),
            title=f"Pair distances on {about}",
        )
    )
    print(f"wrote {len(written)} pictures to {args.output}")
    return 0


if __name__ == "__main__":
    from fastreid.utils.errors import exit_on_bad_input

    sys.exit(exit_on_bad_input(main))
