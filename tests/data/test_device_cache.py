"""The device data path's cache and loader: same pixels, same batch contract, same epochs."""

from __future__ import annotations

import os

import pytest
import torch
from torchvision.transforms import v2 as T

from fastreid.data import build_reid_train_loader, read_image
from fastreid.data.device_cache import CacheTooLargeError, build_image_cache
from fastreid.engine import DefaultTrainer
from fastreid.engine.data_stream import EpochDataStream
from fastreid.utils.env import seed_all_rng
from fastreid.utils.errors import BadInputError

from ..engine.conftest import tiny_config, train_until_killed

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECIPE = os.path.join(REPO, "configs", "Synthetic", "bagtricks_R18.yml")


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> str:
    """A tiny SyntheticReID (8 train ids) at 64x32."""
    from fastreid.data.synthetic import generate_synthetic_dataset

    root = str(tmp_path_factory.mktemp("datasets"))
    generate_synthetic_dataset(root, num_ids=16, seed=0, height=64, width=32, num_cams=3)
    return root


def _cfg(root: str, output_dir: str = "", cache: bool = True, **overrides):
    """The engine tests' tiny recipe at 48x24 (the cache resizes), batch 16, with the cache."""
    opts = {
        "INPUT.SIZE_TRAIN": [48, 24],
        "INPUT.SIZE_TEST": [48, 24],
        "INPUT.PADDING.SIZE": 3,
        "DATALOADER.CACHE.ENABLED": cache,
        "DATALOADER.CACHE.DECODE_WORKERS": 2,
    }
    opts.update(overrides)
    return tiny_config(root, output_dir, **opts)


def test_cache_holds_the_cpu_paths_resized_pixels(synthetic_root):
    cfg = _cfg(synthetic_root)
    loader = build_reid_train_loader(cfg)
    cache = loader.collate_fn.cache
    items = loader.dataset.img_items
    assert cache.shape == (len(items), 3, 48, 24) and cache.dtype == torch.uint8
    resize = T.Resize([48, 24], interpolation=T.InterpolationMode.BICUBIC, antialias=True)
    for i in (0, len(items) // 2, len(items) - 1):
        assert torch.equal(cache[i], resize(read_image(items[i][0])))


def test_a_cache_over_the_limit_stops_before_decoding_the_set(synthetic_root):
    cfg = _cfg(synthetic_root)
    train_set = build_reid_train_loader(_cfg(synthetic_root, cache=False)).dataset
    calls = []
    load = train_set._load
    train_set._load = lambda i: calls.append(i) or load(i)
    need = len(train_set) * 3 * 48 * 24 / 2**30
    with pytest.raises(CacheTooLargeError) as info:
        build_image_cache(train_set, [48, 24], location="device", max_gb=need / 2, workers=2)
    assert isinstance(info.value, BadInputError)  # the tools print it as one error: line
    message = str(info.value)
    assert f"{need:.2f} GiB" in message and f"{len(train_set)} images x 3 x 48 x 24" in message
    assert "DATALOADER.CACHE.MAX_GB" in message and "DATALOADER.CACHE.ENABLED False" in message
    assert calls == [0]  # only the first image (which gives the size) was decoded
    assert cfg.DATALOADER.CACHE.MAX_GB > 0


def test_mixed_image_sizes_without_a_fixed_size_are_refused(synthetic_root, tmp_path):
    from fastreid.data import CommDataset

    from .conftest import write_image

    paths = [str(tmp_path / f"{i}.png") for i in range(3)]
    for i, path in enumerate(paths):
        write_image(path, i, size=(16, 8) if i < 2 else (20, 8))
    train_set = CommDataset([(p, 0, 0) for p in paths])
    with pytest.raises(BadInputError, match=r"INPUT.SIZE_TRAIN to \[height, width\]"):
        build_image_cache(train_set, [0], workers=1)


def test_batches_keep_the_cpu_loaders_contract_and_index_stream(synthetic_root):
    torch.manual_seed(0)
    cpu = build_reid_train_loader(_cfg(synthetic_root, cache=False))
    torch.manual_seed(0)
    dev = build_reid_train_loader(_cfg(synthetic_root, cache=True))
    assert dev.dataset.num_classes == cpu.dataset.num_classes and len(dev.dataset) == len(
        cpu.dataset
    )
    streams = [EpochDataStream(loader, seed=0) for loader in (cpu, dev)]
    for stream in streams:
        stream.sampler_seed = 7
    for epoch in range(2):
        cpu_batches, dev_batches = (list(s.epoch_iterator(epoch, 3)) for s in streams)
        for a, b in zip(cpu_batches, dev_batches):
            assert set(a) == set(b)
            for key in a:
                if isinstance(a[key], torch.Tensor):
                    assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
            assert a["img_paths"] == b["img_paths"]
            assert torch.equal(a["targets"], b["targets"]) and torch.equal(a["camids"], b["camids"])
    # A resumed stream (skipping 3 batches of epoch 0) starts where the first one went on.
    resumed = EpochDataStream(dev, seed=0)
    resumed.sampler_seed = 7
    first = next(resumed.epoch_iterator(1, 3, skip_batches=3))
    assert first["img_paths"] == dev_batches[0]["img_paths"]


def _trainer(cfg) -> DefaultTrainer:
    seed_all_rng(cfg.SEED)  # what default_setup does at start-up
    return DefaultTrainer(cfg)


def test_training_through_the_device_path_resumes_exactly(synthetic_root, tmp_path):
    full = _trainer(_cfg(synthetic_root, str(tmp_path / "full")))
    assert type(full.data_loader.collate_fn).__name__ == "DeviceBatchCollate"
    full.resume_or_load(resume=False)
    full_results = full.train()

    cfg = _cfg(synthetic_root, str(tmp_path / "killed"))
    killed = _trainer(cfg)
    killed.resume_or_load(resume=False)

    train_until_killed(killed)
    resumed = _trainer(cfg)
    resumed.resume_or_load(resume=True)
    assert resumed.start_epoch == 1
    assert resumed.train() == full_results
    final = resumed.model.state_dict()
    for key, value in full.model.state_dict().items():
        assert torch.equal(final[key], value), key


def test_a_short_training_on_the_device_path_lowers_the_loss(synthetic_root, tmp_path):
    cfg = _cfg(
        synthetic_root,
        str(tmp_path),
        **{"SOLVER.MAX_EPOCH": 6, "SOLVER.STEPS": [5], "TEST.EVAL_PERIOD": 0},
    )
    trainer = _trainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    losses = [v for v, _ in trainer.storage.history("total_loss").values()]
    assert len(losses) >= 12
    assert sum(losses[-4:]) / 4 < 0.9 * sum(losses[:4]) / 4


def test_the_train_command_reports_a_cache_over_the_limit_as_one_error_line(
    synthetic_root, tmp_path, capsys
):
    from fastreid.engine.cli import train_main

    argv = ["--config-file", RECIPE, "DATASETS.ROOT", synthetic_root]
    argv += ["OUTPUT_DIR", str(tmp_path / "out"), "DATALOADER.NUM_WORKERS", "0"]
    argv += ["DATALOADER.CACHE.ENABLED", "True", "DATALOADER.CACHE.MAX_GB", "0.0001"]
    with pytest.raises(SystemExit) as info:
        train_main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "DATALOADER.CACHE.MAX_GB=0.0001" in errors[0]
    assert "Traceback" not in err
