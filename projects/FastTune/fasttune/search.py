"""Running a search: checking the command line, building the Ray Tune search algorithm and
scheduler, starting (or joining) Ray, and fitting.

Ray is imported inside the functions that need it, never at import time.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from fastreid.config import CfgNode
from fastreid.data.datasets.bases import resolve_datasets_root
from fastreid.utils.dependencies import require

from .space import Param
from .trainer import num_reports, run_trial

__all__ = [
    "SCHEDULERS",
    "SEARCH_ALGOS",
    "SearchOptions",
    "build_scheduler",
    "build_search_alg",
    "check_base_cfg",
    "check_address",
    "check_options",
    "connect_ray",
    "parse_resources",
    "prepare_base_cfg",
    "run_search",
]

logger = logging.getLogger("fastreid.fasttune")

SEARCH_ALGOS = ("bohb", "hyperopt", "optuna", "random")
SCHEDULERS = ("asha", "hyperband", "pbt")
METRIC, MODE = "score", "max"
TIME_ATTR = "training_iteration"  # one per report, i.e. per evaluation


@dataclass
class SearchOptions:
    """What the command line decides about a search."""

    num_trials: int = 8
    srch_algo: str = "hyperopt"
    sched: Optional[str] = None  # None: ASHA, or HyperBandForBOHB with bohb
    resources: Optional[Dict[str, float]] = None
    address: str = ""
    resume: bool = False
    workers_per_trial: Optional[int] = None  # None: TUNE.WORKERS_PER_TRIAL


def check_options(options: SearchOptions) -> str:
    """Validate the options; returns the scheduler that will run (``bohb-hyperband`` for
    BOHB's own)."""
    if options.num_trials < 1:
        raise ValueError(f"--num-trials must be at least 1, got {options.num_trials}.")
    if options.srch_algo not in SEARCH_ALGOS:
        raise ValueError(
            f"Unknown search algorithm '{options.srch_algo}' (--srch-algo); use one of "
            f"{', '.join(SEARCH_ALGOS)}."
        )
    if options.sched is not None and options.sched not in SCHEDULERS:
        raise ValueError(
            f"Unknown scheduler '{options.sched}' (--sched); use one of {', '.join(SCHEDULERS)}."
        )
    if options.workers_per_trial is not None and options.workers_per_trial < 1:
        raise ValueError(
            f"--workers-per-trial must be at least 1, got {options.workers_per_trial}."
        )
    if options.sched == "pbt":
        return "pbt"  # PBT proposes its own configurations: no search algorithm
    if options.srch_algo == "bohb":
        if options.sched not in (None, "hyperband"):
            raise ValueError(
                f"--srch-algo bohb runs with its own scheduler (HyperBandForBOHB); leave out "
                f"--sched {options.sched} or pick another search algorithm."
            )
        return "bohb-hyperband"
    return options.sched or "asha"


def parse_resources(text: str) -> Dict[str, float]:
    """``"cpu=2,gpu=0.5"`` -> ``{"cpu": 2.0, "gpu": 0.5}`` (fractions allowed)."""
    resources: Dict[str, float] = {}
    for item in filter(None, (part.strip() for part in str(text).split(","))):
        name, sep, value = item.partition("=")
        name = name.strip().lower()
        if not sep or name not in ("cpu", "gpu"):
            raise ValueError(
                f"--resources-per-trial: '{item}' is not cpu=N or gpu=N; write e.g. "
                "--resources-per-trial cpu=2,gpu=0.5."
            )
        try:
            amount = float(value)
        except ValueError:
            amount = -1.0
        if not amount >= 0 or (name == "cpu" and amount == 0):
            raise ValueError(
                f"--resources-per-trial: {name}={value} must be a positive number"
                f"{' (gpu may be 0)' if name == 'gpu' else ''}."
            )
        resources[name] = amount
    if not resources:
        raise ValueError("--resources-per-trial is empty; write e.g. cpu=2,gpu=0.5.")
    return resources


def default_resources(cfg: CfgNode) -> Dict[str, float]:
    """One CPU per trial plus its data workers; one GPU when the config trains on CUDA and
    this machine has one."""
    import torch

    gpu = 1.0 if str(cfg.MODEL.DEVICE).startswith("cuda") and torch.cuda.is_available() else 0.0
    return {"cpu": float(max(1, cfg.DATALOADER.NUM_WORKERS)), "gpu": gpu}


def _split_address(address: str) -> Optional[Tuple[str, int]]:
    """(host, port) of a ``host:port`` or ``ray://host:port`` address; None for ``auto``."""
    if address == "auto":
        return None
    rest = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(
            f"--address '{address}' is not HOST:PORT (e.g. 10.0.0.1:6379, ray://10.0.0.1:10001) "
            "or 'auto'."
        )
    return host.strip("[]"), int(port)


def check_address(address: str, timeout: float = 5.0) -> None:
    """Fail fast (instead of Ray's minutes of retries) when nothing listens at ``address``."""
    target = _split_address(address)
    if target is None:
        return
    try:
        with socket.create_connection(target, timeout=timeout):
            pass
    except OSError as e:
        raise ConnectionError(
            f"Cannot reach the Ray cluster at --address {address} ({e.strerror or e}); start "
            "it with 'ray start --head' on that machine, check the host and port, or leave out "
            "--address to run on this machine."
        ) from None


def connect_ray(address: str = "") -> None:
    """Join the cluster at ``address`` or start Ray on this machine (once)."""
    ray = require("ray", "A FastTune search")

    if ray.is_initialized():
        return
    # Trials keep the working directory of the search, so relative paths keep their meaning.
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    if address:
        check_address(address)
        try:
            ray.init(address=address, log_to_driver=False)
        except ConnectionError as e:
            raise ConnectionError(
                f"Cannot join the Ray cluster at --address {address}: {e}"
            ) from None
    else:
        # "local": always a new Ray on this machine, never a cluster an earlier `ray start`
        # recorded (which may be gone: ray.init() would wait for it forever).
        ray.init(
            address="local",
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )


def prepare_base_cfg(cfg: CfgNode) -> CfgNode:
    """A copy of ``cfg`` whose paths are absolute, so trials find the data and weights
    wherever Ray runs them."""
    cfg = cfg.clone()
    cfg.defrost()
    cfg.OUTPUT_DIR = os.path.abspath(cfg.OUTPUT_DIR or "logs/fasttune")
    cfg.DATASETS.ROOT = os.path.abspath(resolve_datasets_root(cfg.DATASETS.ROOT or None))
    for node, key in ((cfg.MODEL, "WEIGHTS"), (cfg.MODEL.BACKBONE, "PRETRAIN_PATH")):
        if node[key]:
            node[key] = os.path.abspath(os.path.expanduser(node[key]))
    return cfg


def check_base_cfg(cfg: CfgNode) -> None:
    """What every trial would find wrong at its start, checked once before Ray starts: each
    ``DATASETS.NAMES`` entry is a known dataset present under ``DATASETS.ROOT``, and each
    ``DATASETS.TESTS`` entry builds a test set an evaluator accepts."""
    from fastreid.data.datasets import DATASET_REGISTRY

    from .trainer import TuneTrainer

    if not os.path.isdir(cfg.DATASETS.ROOT):
        raise FileNotFoundError(
            f"DATASETS.ROOT '{cfg.DATASETS.ROOT}' does not exist; set DATASETS.ROOT (or "
            "FASTREID_DATASETS) to the folder holding the datasets."
        )
    for name in cfg.DATASETS.NAMES:
        DATASET_REGISTRY.get(name)(
            root=cfg.DATASETS.ROOT, combineall=cfg.DATASETS.COMBINEALL, verbose=False
        )
    TuneTrainer.check_test_sets(cfg)


def build_search_alg(name: str, seed: int, points: Optional[List[Dict[str, Any]]] = None) -> Any:
    """The Ray Tune searcher for ``--srch-algo``; ``points`` are tried first (in the
    searcher's encoding, see :func:`points_to_evaluate`)."""
    points = list(points or []) or None
    if name == "random":
        from ray.tune.search.basic_variant import BasicVariantGenerator

        return BasicVariantGenerator(random_state=seed, points_to_evaluate=points)
    if name == "hyperopt":
        require("hyperopt", "--srch-algo hyperopt")  # Ray's wrapper only asserts it
        from ray.tune.search.hyperopt import HyperOptSearch

        return HyperOptSearch(random_state_seed=seed, points_to_evaluate=points)
    if name == "optuna":
        require("optuna", "--srch-algo optuna")
        from ray.tune.search.optuna import OptunaSearch

        return OptunaSearch(seed=seed, points_to_evaluate=points)
    if name == "bohb":
        require("hpbandster", "--srch-algo bohb")
        require("ConfigSpace", "--srch-algo bohb")
        from ray.tune.search.bohb import TuneBOHB

        return TuneBOHB(seed=seed, points_to_evaluate=points)
    raise ValueError(f"Unknown search algorithm '{name}'; use one of {', '.join(SEARCH_ALGOS)}.")


def points_to_evaluate(cfg: CfgNode, params: Sequence[Param]) -> List[Dict[str, Any]]:
    """``TUNE.POINTS_TO_EVALUATE`` checked against the space, in the searcher's encoding.

    Each point gives a value to every searched key: one of a ``choice``'s values, or a number
    inside a numeric distribution's range.
    """
    raw = cfg.TUNE.POINTS_TO_EVALUATE
    if raw in (None, "", []):
        return []
    if not isinstance(raw, (list, tuple)):
        raise ValueError(
            "TUNE.POINTS_TO_EVALUATE must be a list of mappings, e.g. "
            f"[{{SOLVER.BASE_LR: 3.5e-4}}]; got {raw!r}."
        )
    by_key = {p.key: p for p in params}
    points: List[Dict[str, Any]] = []
    for i, point in enumerate(raw):
        where = f"TUNE.POINTS_TO_EVALUATE[{i}]"
        if not isinstance(point, Mapping) or not point:
            raise ValueError(
                f"{where} must map searched keys to values, e.g. {{SOLVER.BASE_LR: 3.5e-4}}; "
                f"got {point!r}."
            )
        encoded: Dict[str, Any] = {}
        for key, value in point.items():
            param = by_key.get(str(key))
            if param is None:
                raise KeyError(
                    f"{where}: '{key}' is not a searched key; the space has {', '.join(by_key)}."
                )
            encoded[param.key] = param.encode_point(value, where)
        missing = [k for k in by_key if k not in encoded]
        if missing:
            raise ValueError(
                f"{where} gives no value for {', '.join(missing)}; give every searched key."
            )
        points.append(encoded)
    return points


def build_scheduler(name: str, cfg: CfgNode, params: Sequence[Param]) -> Any:
    """The trial scheduler; ``max_t`` is the number of evaluations of a full trial."""
    from ray.tune import schedulers

    max_t = num_reports(cfg.SOLVER.MAX_EPOCH, cfg.TEST.EVAL_PERIOD)
    eta = max(2, int(cfg.TUNE.REDUCTION_FACTOR))
    if name == "bohb-hyperband":
        return schedulers.HyperBandForBOHB(
            time_attr=TIME_ATTR, max_t=max_t, reduction_factor=eta, stop_last_trials=False
        )
    if name == "hyperband":
        return schedulers.HyperBandScheduler(
            time_attr=TIME_ATTR, max_t=max_t, reduction_factor=eta, stop_last_trials=False
        )
    if name == "asha":
        return schedulers.ASHAScheduler(
            time_attr=TIME_ATTR,
            max_t=max_t,
            grace_period=max(1, min(int(cfg.TUNE.GRACE_PERIOD), max_t)),
            reduction_factor=eta,
        )
    if name == "pbt":
        return schedulers.PopulationBasedTraining(
            time_attr=TIME_ATTR,
            perturbation_interval=max(1, int(cfg.TUNE.PERTURBATION_INTERVAL)),
            hyperparam_mutations={p.key: p.to_pbt() for p in params},
        )
    raise ValueError(f"Unknown scheduler '{name}'; use one of {', '.join(SCHEDULERS)}.")


def experiment_name(cfg: CfgNode, options: SearchOptions) -> str:
    """``TUNE.NAME``, else ``pbt`` for PBT (which uses no search algorithm), else the algorithm."""
    if str(cfg.TUNE.NAME):
        return str(cfg.TUNE.NAME)
    return "pbt" if options.sched == "pbt" else options.srch_algo


def workers_per_trial(cfg: CfgNode, options: SearchOptions) -> int:
    """``--workers-per-trial``, else ``TUNE.WORKERS_PER_TRIAL``."""
    n = options.workers_per_trial
    n = int(cfg.TUNE.WORKERS_PER_TRIAL) if n is None else int(n)
    if n < 1:
        raise ValueError(f"TUNE.WORKERS_PER_TRIAL must be at least 1, got {n}.")
    return n


def check_batch_split(cfg: CfgNode, params: Sequence[Param], workers: int) -> None:
    """Every batch size a DDP trial may get splits evenly over its ``workers`` processes."""
    if workers == 1:
        return
    searched = [p for p in params if p.key == "SOLVER.IMS_PER_BATCH"]
    if searched and searched[0].dist != "choice":
        return  # sampled sizes: each trial checks its own
    sizes = list(searched[0].args) if searched else [cfg.SOLVER.IMS_PER_BATCH]
    bad = [size for size in sizes if int(size) % workers]
    if bad:
        raise ValueError(
            f"SOLVER.IMS_PER_BATCH {', '.join(map(str, bad))} cannot be split over "
            f"{workers} processes per trial (--workers-per-trial); use multiples of {workers}."
        )


def trial_resources(resources: Dict[str, float], workers: int) -> Any:
    """What Ray reserves for one trial: ``resources`` for a one-process trial; for a DDP trial
    one bundle of ``resources`` per process, packed on as few nodes as possible, and an empty
    bundle for the trial's coordinator (it only relays reports)."""
    if workers == 1:
        return resources
    from ray import tune

    bundle = {k.upper(): v for k, v in resources.items() if v > 0}
    return tune.PlacementGroupFactory([{}] + [dict(bundle) for _ in range(workers)], "PACK")


def max_concurrent_trials(cfg: CfgNode, scheduler_name: str) -> Optional[int]:
    """``TUNE.MAX_CONCURRENT``; when 0, FastReID's 4 for BOHB (its ``ConcurrencyLimiter``)
    and no limit (None) otherwise."""
    limit = int(cfg.TUNE.MAX_CONCURRENT)
    if limit <= 0 and scheduler_name == "bohb-hyperband":
        limit = 4
    return limit if limit > 0 else None


def _search_started(exp_path: str) -> bool:
    """True once Ray recorded the search's state (a trial was scheduled); a folder with only
    ``tuner.pkl`` is a start that failed before that."""
    return os.path.isdir(exp_path) and any(
        name.startswith("experiment_state-") for name in os.listdir(exp_path)
    )


def _remove_failed_start(exp_path: str) -> None:
    """Remove what a start that failed before any trial left (``tuner.pkl`` and its
    signature), so the same command can run again without ``--resume``."""
    from .trust import SIGNATURE_FILE

    if _search_started(exp_path):
        return
    for name in ("tuner.pkl", SIGNATURE_FILE):
        path = os.path.join(exp_path, name)
        if os.path.isfile(path):
            os.remove(path)
            logger.info(f"Removed {path}, left by a search that stopped before its first trial.")


class SigningCallback:
    """A Ray Tune callback that signs the search folder's state files (see :mod:`.trust`) as
    Ray rewrites them, so a search killed at any point can be continued with ``--resume``.

    Ray keeps this object in ``tuner.pkl``; it holds the folder only, never the key."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self._signer = None
        self._last = 0.0

    def __getstate__(self) -> Dict[str, Any]:
        return {"folder": self.folder}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__init__(state["folder"])

    def sign(self, force: bool = False) -> None:
        import time

        from .trust import _Signer, load_or_create_key

        now = time.monotonic()
        if not force and now - self._last < 1.0:
            return
        self._last = now
        if self._signer is None:
            self._signer = _Signer(self.folder, load_or_create_key())
        self._signer()


def _signing_callback(folder: str) -> Any:
    """:class:`SigningCallback` as a ``ray.tune.Callback`` (built here: Ray is imported late)."""
    from ray import tune

    class _Callback(tune.Callback, SigningCallback):
        def __init__(self, folder: str) -> None:
            SigningCallback.__init__(self, folder)

        def on_step_end(self, iteration: int, trials: List[Any], **info: Any) -> None:
            self.sign()

        def on_experiment_end(self, trials: List[Any], **info: Any) -> None:
            self.sign(force=True)

    return _Callback(folder)


def run_search(cfg: CfgNode, params: List[Param], options: SearchOptions) -> Any:
    """Fit the search (or continue it with ``options.resume``); returns Ray's ResultGrid.

    ``cfg`` is the base config (from :func:`prepare_base_cfg`); the search lives in
    ``OUTPUT_DIR/<TUNE.NAME or algorithm>``.
    """
    from .trust import sign_search_folder, verify_search_folder

    scheduler_name = check_options(options)
    workers = workers_per_trial(cfg, options)
    resources = options.resources or default_resources(cfg)
    points = points_to_evaluate(cfg, params)
    name = experiment_name(cfg, options)
    exp_path = os.path.join(cfg.OUTPUT_DIR, name)

    if not options.resume:
        _remove_failed_start(exp_path)
    exists = os.path.exists(os.path.join(exp_path, "tuner.pkl"))
    if options.resume and not exists:
        raise FileNotFoundError(
            f"--resume: there is no search to continue in '{exp_path}'; run it without "
            "--resume first (same OUTPUT_DIR and --srch-algo / TUNE.NAME)."
        )
    if not options.resume and exists:
        raise FileExistsError(
            f"A search already exists in '{exp_path}'; add --resume to continue it, or choose "
            "another OUTPUT_DIR or TUNE.NAME."
        )
    if options.resume:
        verify_search_folder(exp_path)  # before Ray unpickles anything from the folder
    if scheduler_name == "pbt" and options.srch_algo != "random":
        logger.info(
            f"PBT proposes its own configurations: --srch-algo {options.srch_algo} is not used "
            "(PBT runs without a search algorithm)."
        )
    connect_ray(options.address)
    from ray import tune

    trainable = tune.with_resources(
        tune.with_parameters(
            run_trial,
            base_cfg=cfg,
            params=list(params),
            datasets_root=cfg.DATASETS.ROOT,
            workers=workers,
            exp_path=exp_path,
        ),
        trial_resources(resources, workers),
    )
    try:
        if options.resume:
            logger.info(f"Continuing the search in {exp_path}")
            tuner = tune.Tuner.restore(exp_path, trainable=trainable, resume_errored=True)
        else:
            tuner = _new_tuner(cfg, params, options, scheduler_name, points, trainable, name)
        return tuner.fit()
    except BaseException:
        if not options.resume:
            _remove_failed_start(exp_path)
        raise
    finally:
        if _search_started(exp_path):
            sign_search_folder(exp_path)


def _new_tuner(
    cfg: CfgNode,
    params: List[Param],
    options: SearchOptions,
    scheduler_name: str,
    points: List[Dict[str, Any]],
    trainable: Any,
    name: str,
) -> Any:
    from ray import tune

    seed = int(cfg.TUNE.SEED)
    if scheduler_name == "pbt":
        search_alg = build_search_alg("random", seed, points)
    else:
        search_alg = build_search_alg(options.srch_algo, seed, points)
    max_concurrent = max_concurrent_trials(cfg, scheduler_name)
    # PBT restores trials from other trials' checkpoints, which must still exist then.
    keep = None if scheduler_name == "pbt" else max(1, int(cfg.TUNE.NUM_TO_KEEP))
    return tune.Tuner(
        trainable,
        param_space={p.key: p.to_ray() for p in params},
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode=MODE,
            search_alg=search_alg,
            scheduler=build_scheduler(scheduler_name, cfg, params),
            num_samples=options.num_trials,
            max_concurrent_trials=max_concurrent,
            reuse_actors=False,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=cfg.OUTPUT_DIR,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=keep),
            failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
            callbacks=[_signing_callback(os.path.join(cfg.OUTPUT_DIR, name))],
            verbose=1,
        ),
    )
