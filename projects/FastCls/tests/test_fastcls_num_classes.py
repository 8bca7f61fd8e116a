"""A MODEL.HEADS.NUM_CLASSES that does not match the data is one error before training."""

from __future__ import annotations

import pytest

from fastreid.data.synthetic.fashion_mnist import write_fashion_mnist_like as make_fashion_mnist
from fastreid.engine.cli import main_reporting_bad_input

from ..fastcls import ClsTrainer
from .test_fastcls_train import _args


@pytest.mark.parametrize("num_classes", [5, 12])
def test_num_classes_that_does_not_match_the_data_is_one_error(
    tmp_path, capsys, monkeypatch, num_classes
):
    monkeypatch.delenv("FASTREID_DEBUG", raising=False)
    make_fashion_mnist(str(tmp_path / "data" / "fashion-mnist"), per_class=2, test_per_class=1)
    args = _args(tmp_path, tmp_path / "run", "MODEL.HEADS.NUM_CLASSES", str(num_classes))
    with pytest.raises(SystemExit) as info:
        main_reporting_bad_input(args, ClsTrainer)
    assert info.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (
        f"error: MODEL.HEADS.NUM_CLASSES={num_classes} but the training data (FashionMNIST) "
        "has 10 classes; set MODEL.HEADS.NUM_CLASSES 10, or 0 to take it from the data."
    )
    assert not any("Traceback" in line for line in err)
    assert not list((tmp_path / "run").glob("*.pth"))  # stopped before training
