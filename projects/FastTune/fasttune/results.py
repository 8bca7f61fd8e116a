"""What a finished search leaves behind: a table of trials, ``results.csv`` / ``results.json``,
``search_plot.png`` (score per trial and over time) and ``best_config.yaml``, the full config
of the best trial, which ``tools/train_net.py --config-file`` takes as is."""

from __future__ import annotations

import csv
import json
import math
import os
import re
from typing import Any, Dict, List, Optional, Sequence

from fastreid.config import CfgNode, get_cfg
from fastreid.utils.file_io import atomic_write_text, save_figure

from .config import add_tune_config
from .space import Param

__all__ = [
    "TrialRow",
    "best_config",
    "collect_rows",
    "format_table",
    "plot_search",
    "write_results",
]

# Path-like keys: best_config.yaml keeps the user's own values, not the absolute ones the
# trials ran with.
_PATH_KEYS = ("OUTPUT_DIR", "DATASETS.ROOT", "MODEL.WEIGHTS", "MODEL.BACKBONE.PRETRAIN_PATH")

TrialRow = Dict[str, Any]


def _num(value: Any) -> Optional[float]:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def collect_rows(result_grid: Any, params: Sequence[Param], max_reports: int) -> List[TrialRow]:
    """One row per trial: id, status, searched values, last r1/mAP/score, best score, epochs,
    reports, run time, folder, log file, error. Also keeps each trial's report history."""
    rows: List[TrialRow] = []
    for result in result_grid:
        path = result.path
        trial_id = os.path.basename(path.rstrip("/"))
        metrics = result.metrics or {}
        history = []
        frame = result.metrics_dataframe
        if frame is not None and len(frame) and "score" in frame:
            for _, rec in frame.iterrows():
                score = _num(rec.get("score"))
                if score is not None:
                    history.append(
                        {
                            "timestamp": _num(rec.get("timestamp")),
                            "trial_time_s": _num(rec.get("time_total_s")),
                            "epoch": int(rec.get("epoch") or 0),
                            "score": score,
                        }
                    )
        reports = int(metrics.get("training_iteration") or 0)
        if result.error is not None:
            status = "failed"
        elif reports >= max_reports:
            status = "completed"
        else:
            status = "stopped early" if reports else "not run"
        config = result.config or {}
        row: TrialRow = {
            "trial": _trial_id(trial_id) or metrics.get("trial_id") or trial_id,
            "status": status,
            **{p.key: p.decode(config[p.key]) if p.key in config else None for p in params},
            "r1": _num(metrics.get("r1")),
            "map": _num(metrics.get("map")),
            "score": _num(metrics.get("score")),
            "best_score": max((h["score"] for h in history), default=None),
            "epochs": int(metrics.get("epoch") or 0),
            "reports": reports,
            "time_s": _num(metrics.get("time_total_s")),
            "path": path,
            "log": os.path.join(path, "log.txt"),
            "error": _error_line(result.error) if result.error is not None else "",
            "history": history,
        }
        rows.append(row)
    # The search's start: the earliest trial start (report time minus the trial's run time).
    starts = [
        h["timestamp"] - (h["trial_time_s"] or 0.0)
        for r in rows
        for h in r["history"]
        if h["timestamp"] is not None
    ]
    start = min(starts, default=0.0)
    for row in rows:
        for h in row["history"]:
            h["elapsed_s"] = (h["timestamp"] - start) if h["timestamp"] is not None else None
    return rows


def _trial_id(folder_name: str) -> str:
    """Ray names a trial folder ``run_trial_<trial id>_<index>_<values>_<date>``."""
    match = re.match(r"run_trial_([0-9a-f]+(?:_\d{5})?)_\d+_", folder_name)
    return match.group(1) if match else ""


def _error_line(error: BaseException) -> str:
    """The innermost, last line of a trial's error (Ray wraps the trial's exception)."""
    cause = error
    while getattr(cause, "cause", None) is not None or cause.__cause__ is not None:
        cause = getattr(cause, "cause", None) or cause.__cause__
    lines = [line for line in str(cause).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(cause).__name__


def format_table(rows: Sequence[TrialRow], params: Sequence[Param]) -> str:
    """The trials as a text table, best score first."""
    from tabulate import tabulate

    ordered = sorted(rows, key=lambda r: -(r["score"] if r["score"] is not None else -math.inf))
    headers = [
        "trial",
        "status",
        *[p.key for p in params],
        "R1",
        "mAP",
        "score",
        "epochs",
        "time (s)",
    ]
    body = [
        [
            r["trial"],
            r["status"],
            *[_short(r[p.key]) for p in params],
            *[_fixed(r[k]) for k in ("r1", "map", "score")],
            r["epochs"],
            "-" if r["time_s"] is None else f"{r['time_s']:.0f}",
        ]
        for r in ordered
    ]
    return tabulate(body, headers=headers, disable_numparse=True)


def _fixed(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}"


def _short(value: Any) -> Any:
    """Searched values as text (a shared float format would print 3e-4 as 0.00)."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def best_row(rows: Sequence[TrialRow]) -> Optional[TrialRow]:
    """The trial with the highest last score (failed trials excluded)."""
    scored = [r for r in rows if r["status"] != "failed" and r["score"] is not None]
    return max(scored, key=lambda r: r["score"]) if scored else None


def best_config(row: TrialRow, user_cfg: CfgNode, output_dir: str) -> CfgNode:
    """The full config the best trial trained with (its ``config.yaml``), without the
    ``TUNE`` section, with the user's own paths and ``OUTPUT_DIR = output_dir``."""
    trial_cfg = add_tune_config(get_cfg())
    trial_cfg.merge_from_file(os.path.join(row["path"], "config.yaml"))
    trial_cfg.defrost()
    for key in _PATH_KEYS:
        *parents, leaf = key.split(".")
        src, dst = user_cfg, trial_cfg
        for p in parents:
            src, dst = src[p], dst[p]
        dst[leaf] = src[leaf]
    trial_cfg.OUTPUT_DIR = output_dir
    del trial_cfg["TUNE"]
    return trial_cfg


def write_results(rows: Sequence[TrialRow], params: Sequence[Param], folder: str) -> Dict[str, str]:
    """``results.csv`` (one row per trial) and ``results.json`` (rows with report histories)."""
    os.makedirs(folder, exist_ok=True)
    columns = [k for k in rows[0] if k != "history"] if rows else []
    csv_path = os.path.join(folder, "results.csv")
    tmp = csv_path + ".tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_value(row[k]) for k in columns})
    os.replace(tmp, csv_path)
    json_path = os.path.join(folder, "results.json")
    atomic_write_text(
        json_path,
        json.dumps(
            {"space": [p.describe() for p in params], "trials": list(rows)}, indent=1, default=str
        ),
    )
    return {"csv": csv_path, "json": json_path}


def _csv_value(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return json.dumps(value)
    return "" if value is None else value


def plot_search(rows: Sequence[TrialRow], path: str) -> str:
    """Two panels: the last score of each trial (in start order), and every report's score
    over the search's wall time, one line per trial."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_trial, ax_time) = plt.subplots(1, 2, figsize=(11, 4))
    colors = {"completed": "tab:blue", "stopped early": "tab:orange", "failed": "tab:red"}
    for i, row in enumerate(rows):
        score = row["score"] if row["score"] is not None else 0.0
        ax_trial.bar(i, score, color=colors.get(row["status"], "tab:gray"))
        points = [
            (h["elapsed_s"], h["score"]) for h in row["history"] if h["elapsed_s"] is not None
        ]
        if points:
            xs, ys = zip(*points)
            ax_time.plot(xs, ys, marker="o", markersize=3, label=str(row["trial"]))
    ax_trial.set_xticks(range(len(rows)), [str(r["trial"]) for r in rows], rotation=45, fontsize=7)
    ax_trial.set_xlabel("trial")
    ax_trial.set_ylabel("score = (R1 + mAP) / 2 (last report)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colors.values()]
    ax_trial.legend(handles, list(colors), fontsize=7)
    ax_time.set_xlabel("search wall time (s)")
    ax_time.set_ylabel("score at each evaluation")
    if rows:
        ax_time.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return save_figure(fig, path)
