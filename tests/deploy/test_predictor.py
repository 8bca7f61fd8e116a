"""Python API: one-call model building and the batched FeatureExtractor."""

import numpy as np
import pytest
import torch
from PIL import Image

from fastreid.predictor import FeatureExtractor, build_model_from_config, load_model

from .helpers import RECIPES, ROOT, ToyReID


def _write_images(folder, count=3, size=(40, 20)):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        array = rng.integers(0, 255, (size[0], size[1], 3), dtype=np.uint8)
        path = folder / f"img_{i}.png"
        Image.fromarray(array).save(path)
        paths.append(path)
    return paths


def test_paths_arrays_and_tensors_give_the_same_normalised_features(tmp_path):
    paths = _write_images(tmp_path)
    arrays = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    extractor = FeatureExtractor(ToyReID().eval(), batch_size=2, size=(64, 32))
    from_paths = extractor([str(p) for p in paths])
    from_arrays = extractor(arrays)
    batch = torch.stack([torch.from_numpy(a.copy()).permute(2, 0, 1).float() for a in arrays])
    from_tensor = extractor(batch)
    assert from_paths.shape == (3, 64)
    torch.testing.assert_close(from_paths, from_arrays)
    torch.testing.assert_close(from_paths, from_tensor, atol=0.05, rtol=0)  # resize paths differ
    torch.testing.assert_close(from_paths.norm(dim=1), torch.ones(3))


def test_batching_does_not_change_features(tmp_path):
    paths = [str(p) for p in _write_images(tmp_path, count=5)]
    model = ToyReID().eval()
    one_by_one = FeatureExtractor(model, batch_size=1, size=(64, 32))(paths)
    all_at_once = FeatureExtractor(model, batch_size=8, size=(64, 32))(paths)
    torch.testing.assert_close(one_by_one, all_at_once, atol=1e-5, rtol=1e-4)


def test_build_model_from_config_uses_size_test_and_opts():
    model = build_model_from_config(
        ROOT / RECIPES["demo"], opts=["INPUT.SIZE_TEST", "[64,32]", "MODEL.DEVICE", "cpu"]
    )
    assert not model.training
    extractor = FeatureExtractor(model)
    assert extractor.size == (64, 32)
    assert extractor(np.zeros((100, 50, 3), dtype=np.uint8)).shape == (1, 512)


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="MODEL.WEIGHTS"):
        build_model_from_config(ROOT / RECIPES["demo"], weights=str(tmp_path / "nope.pth"))


def test_load_model_from_a_training_folder(tmp_path):
    from fastreid.config import get_cfg

    cfg = get_cfg()
    cfg.merge_from_file(str(ROOT / RECIPES["demo"]))
    cfg.merge_from_list(["INPUT.SIZE_TEST", "[64,32]"])
    (tmp_path / "config.yaml").write_text(cfg.dump())
    model = build_model_from_config(tmp_path / "config.yaml")
    torch.save({"model": model.state_dict()}, tmp_path / "model_final.pth")
    loaded = load_model(tmp_path)
    images = torch.rand(2, 3, 64, 32) * 255
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), model(images))


def test_load_model_without_config_names_the_fix(tmp_path):
    torch.save({"model": {}}, tmp_path / "model_final.pth")
    with pytest.raises(FileNotFoundError, match="config.yaml"):
        load_model(tmp_path)
