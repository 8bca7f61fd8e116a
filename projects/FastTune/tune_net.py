#!/usr/bin/env python
"""Hyper-parameter search over a fastreid recipe with Ray Tune.

    python projects/FastTune/tune_net.py --config-file projects/FastTune/configs/search_trial.yml \
        --num-trials 12 --srch-algo bohb
    python projects/FastTune/tune_net.py --config-file X --srch-algo hyperopt --sched pbt \
        --resources-per-trial cpu=2,gpu=0.5 SOLVER.MAX_EPOCH 30
    python projects/FastTune/tune_net.py --config-file X --srch-algo bohb --resume

The space is the config's ``TUNE.SPACE`` (or ``TUNE.SPACE_FILE``). The search lives in
``OUTPUT_DIR/<TUNE.NAME or algorithm>``: one folder per trial (``log.txt``, ``config.yaml``,
checkpoints), ``results.csv``, ``results.json``, ``search_plot.png`` and ``best_config.yaml``
(train it with ``tools/train_net.py --config-file best_config.yaml``).

Bad input ends with one ``error:`` line and exit code 2 (``FASTREID_DEBUG=1``: traceback).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any, Dict, List

if not __package__:  # run as a script: import this project from the folder that holds it
    _HERE = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.dirname(os.path.dirname(_HERE)))
    __package__ = f"{os.path.basename(os.path.dirname(_HERE))}.{os.path.basename(_HERE)}"

from fastreid.config import CfgNode, get_cfg
from fastreid.engine import default_argument_parser
from fastreid.utils.dependencies import require
from fastreid.utils.errors import exit_on_bad_input
from fastreid.utils.file_io import atomic_write_text
from fastreid.utils.logger import setup_logger

from .fasttune import add_tune_config, num_reports, space_from_cfg
from .fasttune.results import (
    best_config,
    best_row,
    collect_rows,
    format_table,
    plot_search,
    write_results,
)
from .fasttune.search import (
    SearchOptions,
    check_base_cfg,
    check_batch_split,
    check_options,
    experiment_name,
    parse_resources,
    points_to_evaluate,
    prepare_base_cfg,
    run_search,
    workers_per_trial,
)


def argument_parser() -> argparse.ArgumentParser:
    parser = default_argument_parser()
    parser.description = __doc__.splitlines()[0]
    parser.add_argument("--num-trials", type=int, default=8, help="configurations to try")
    parser.add_argument(
        "--srch-algo",
        default="hyperopt",
        help="bohb | hyperopt | optuna | random (default hyperopt)",
    )
    parser.add_argument(
        "--sched",
        default=None,
        help="asha | hyperband | pbt (default asha; bohb always uses HyperBandForBOHB)",
    )
    parser.add_argument("--pbt", action="store_true", help="same as --sched pbt (FastReID's flag)")
    parser.add_argument(
        "--resources-per-trial",
        default="",
        metavar="cpu=N,gpu=F",
        help="resources of each trial, fractions allowed (default: cpu=max(1, "
        "DATALOADER.NUM_WORKERS), gpu=1 when training on CUDA)",
    )
    parser.add_argument(
        "--address", default="", help="join the Ray cluster at HOST:PORT (or 'auto')"
    )
    parser.add_argument(
        "--workers-per-trial",
        type=int,
        default=None,
        metavar="N",
        help="train each trial as an N-process DDP group (default TUNE.WORKERS_PER_TRIAL, 1); "
        "--resources-per-trial is then per process",
    )
    return parser


def setup_cfg(args: argparse.Namespace) -> CfgNode:
    cfg = add_tune_config(get_cfg())
    if args.config_file:
        cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts or [])
    return cfg


def search_options(args: argparse.Namespace) -> SearchOptions:
    sched = args.sched
    if args.pbt:
        if sched not in (None, "pbt"):
            raise ValueError(f"--pbt means --sched pbt; it contradicts --sched {sched}.")
        sched = "pbt"
    options = SearchOptions(
        num_trials=args.num_trials,
        srch_algo=str(args.srch_algo).lower(),
        sched=None if sched is None else str(sched).lower(),
        resources=parse_resources(args.resources_per_trial) if args.resources_per_trial else None,
        address=args.address,
        resume=bool(args.resume),
        workers_per_trial=args.workers_per_trial,
    )
    check_options(options)
    return options


def main(args: argparse.Namespace) -> Dict[str, Any]:
    if not args.config_file:
        raise ValueError(
            "--config-file is required, e.g. projects/FastTune/configs/search_trial.yml"
        )
    if args.eval_only:
        raise ValueError("--eval-only does not apply to a search; use tools/train_net.py.")
    options = search_options(args)
    user_cfg = setup_cfg(args)
    params = space_from_cfg(user_cfg)
    base = prepare_base_cfg(user_cfg)
    setup_logger(None, name="fastreid")
    points_to_evaluate(base, params)
    check_batch_split(base, params, workers_per_trial(base, options))
    check_base_cfg(base)  # once, before Ray starts: a bad config fails here, not in each trial
    log = logging.getLogger("fastreid.fasttune")
    name = experiment_name(user_cfg, options)
    folder = os.path.join(base.OUTPUT_DIR, name)
    log.info("Search space:\n  " + "\n  ".join(p.describe() for p in params))
    log.info(f"{options.num_trials} trials, {options.srch_algo}, results in {folder}")

    ray = require("ray", "A FastTune search")

    started_here = not ray.is_initialized()
    try:
        grid = run_search(base, params, options)
    except (RuntimeError, ray.exceptions.RayError) as e:
        # Ray itself failed (a lost node, workers killed for memory, ...): the trials'
        # checkpoints are kept, so the search can go on from where it stopped.
        first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise SystemExit(
            f"error: the search stopped: {first_line}\nContinue it with the same command and "
            f"--resume (results so far: {folder})."
        ) from None
    finally:
        if started_here and ray.is_initialized():
            ray.shutdown()

    rows = collect_rows(grid, params, num_reports(base.SOLVER.MAX_EPOCH, base.TEST.EVAL_PERIOD))
    for row in rows:
        if row["status"] == "failed":
            print(f"trial {row['trial']} failed: {row['error']} (log: {row['log']})", flush=True)
    print(format_table(rows, params), flush=True)
    finished = sum(r["status"] in ("completed", "stopped early", "failed") for r in rows)
    if finished < options.num_trials:
        print(
            f"The search is incomplete: {finished} of {options.num_trials} trials finished. "
            "Continue it with the same command and --resume.",
            flush=True,
        )
    files = write_results(rows, params, folder)
    files["plot"] = plot_search(rows, os.path.join(folder, "search_plot.png"))
    best = best_row(rows)
    summary: Dict[str, Any] = {"rows": rows, "files": files, "folder": folder, "best": best}
    if best is None:
        raise SystemExit(
            f"Every trial failed; see the logs listed above and {files['csv']}. No best_config.yaml "
            "was written."
        )
    retrain_dir = os.path.join(user_cfg.OUTPUT_DIR or "logs/fasttune", name, "best_retrain")
    path = os.path.join(folder, "best_config.yaml")
    atomic_write_text(path, best_config(best, user_cfg, retrain_dir).dump())
    files["best_config"] = path
    values = ", ".join(f"{p.key}={best[p.key]}" for p in params)
    print(
        f"Best trial {best['trial']}: score {best['score']:.2f} (R1 {best['r1']:.2f}, "
        f"mAP {best['map']:.2f}) with {values}\n"
        f"Results: {files['csv']}, {files['json']}, {files['plot']}\n"
        f"Best config: {path}\n"
        f"Retrain it: python tools/train_net.py --config-file {path}",
        flush=True,
    )
    return summary


def cli(argv: List[str] = None) -> Dict[str, Any]:
    args = argument_parser().parse_args(argv)
    return exit_on_bad_input(main, args)


if __name__ == "__main__":
    cli(sys.argv[1:])
