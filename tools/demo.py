"""End-to-end demo on the synthetic re-ID set, on the CPU, in a few minutes.

Steps: generate the synthetic set if missing -> train the CPU recipe with tools/train_net.py
-> evaluate the randomly initialised and the trained model -> export the trained model to
ONNX and check it against PyTorch -> draw rank-list pictures. Everything goes to
``logs/demo/`` (or ``--output-dir``).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from tabulate import tabulate

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "configs" / "Synthetic" / "bagtricks_R18.yml"
SHOWN = ("Rank-1", "Rank-5", "Rank-10", "mAP", "mINP")


def step(title: str) -> float:
    print(f"\n==> {title}", flush=True)
    return time.perf_counter()


def run_tool(args: list) -> None:
    """Run one of the toolbox's command-line tools; stop the demo if it fails."""
    print("    $ python " + " ".join(str(a) for a in args), flush=True)
    result = subprocess.run([sys.executable, *map(str, args)], cwd=REPO)
    if result.returncode != 0:
        sys.exit(f"demo: '{args[0]}' failed with exit code {result.returncode} (output above).")


def evaluate(config_file: str, weights: str, output_dir: Path, opts: list) -> dict:
    """Evaluate the recipe's model (random init when ``weights`` is empty) on the test set."""
    from fastreid.config import get_cfg
    from fastreid.engine import DefaultTrainer
    from fastreid.predictor import build_model_from_cfg

    cfg = get_cfg()
    cfg.merge_from_file(config_file)
    cfg.merge_from_list([*opts, "MODEL.WEIGHTS", weights, "OUTPUT_DIR", str(output_dir)])
    torch.manual_seed(0)  # the random-init figures are reproducible
    model = build_model_from_cfg(cfg)
    return dict(DefaultTrainer.test(cfg, model))


def main() -> None:
    from fastreid.config import ConfigArgumentParser

    parser = ConfigArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default="logs/demo", help="where the demo writes")
    parser.add_argument("--config-file", default=str(RECIPE), help="training recipe")
    args = parser.parse_args()

    logging.basicConfig(level=logging.WARNING)
    out = (REPO / args.output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("FASTREID_DATASETS", str(REPO / "datasets"))
    demo_start = time.perf_counter()

    from fastreid.data.synthetic import ensure_synthetic_dataset

    start = step("Synthetic re-ID dataset")
    path = ensure_synthetic_dataset(os.environ["FASTREID_DATASETS"])
    print(f"    {path} ready ({time.perf_counter() - start:.0f} s)", flush=True)

    start = step("Train (BoT, ResNet-18, 128x64, CPU)")
    train_dir = out / "train"
    run_tool(
        [
            "tools/train_net.py",
            "--config-file",
            args.config_file,
            "--overwrite",  # a demo run replaces the previous demo's checkpoints
            *args.opts,
            "OUTPUT_DIR",
            train_dir,
        ]
    )
    weights = train_dir / "model_final.pth"
    train_seconds = time.perf_counter() - start

    step("Evaluate: random init vs trained")
    random_init = evaluate(args.config_file, "", out / "random_init", args.opts)
    trained = evaluate(args.config_file, str(weights), out / "trained", args.opts)
    table = [
        ["random init", *(random_init[k] for k in SHOWN)],
        [f"trained ({train_seconds / 60:.1f} min)", *(trained[k] for k in SHOWN)],
    ]
    results_table = tabulate(table, headers=["model", *SHOWN], floatfmt=".1f", tablefmt="github")
    (out / "results.json").write_text(
        json.dumps({"random_init": random_init, "trained": trained}, indent=2)
    )

    step("Export to ONNX and verify against PyTorch")
    run_tool(
        [
            "tools/deploy/onnx_export.py",
            "--config-file",
            args.config_file,
            "--name",
            "demo",
            "--output",
            out / "onnx",
            "--opts",
            "MODEL.WEIGHTS",
            weights,
        ]
    )

    step("Rank-list pictures")
    run_tool(
        [
            "tools/visualize_result.py",
            "--config-file",
            args.config_file,
            "--output",
            out / "vis",
            "--num-vis",
            "6",
            "--opts",
            "MODEL.WEIGHTS",
            weights,
        ]
    )

    print("\n==> Synthetic test set (query vs gallery, Market-1501 protocol)\n")
    print(results_table)
    print(
        f"\nDone in {(time.perf_counter() - demo_start) / 60:.1f} min. Outputs:\n"
        f"  training run (log.txt, metrics.json, checkpoints)  {train_dir}\n"
        f"  figures                                            {out / 'results.json'}\n"
        f"  ONNX model                                         {out / 'onnx'}\n"
        f"  rank-list pictures                                 {out / 'vis'}"
    )


if __name__ == "__main__":
    main()
