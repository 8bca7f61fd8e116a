"""TensorRT engines (fp32 / fp16): run only where tensorrt and a CUDA GPU exist."""

import pytest

from fastreid.export.tensorrt import tensorrt_available

from .helpers import SIZE, ToyReID, assert_matches

available, reason = tensorrt_available()
pytestmark = pytest.mark.skipif(not available, reason=f"TensorRT tests skipped: {reason}")


@pytest.mark.parametrize("mode, minimum", [("fp32", 0.9999), ("fp16", 0.99)])
def test_engine_matches_pytorch(tmp_path, mode, minimum):
    from fastreid.export.onnx import export_onnx
    from fastreid.export.tensorrt import TensorRTRunner, build_engine

    model = ToyReID().eval()
    onnx_path = export_onnx(model, tmp_path / "toy.onnx", SIZE)
    engine = build_engine(onnx_path, tmp_path / "toy.engine", SIZE, mode=mode, max_batch=8)
    assert_matches(model, TensorRTRunner(engine), minimum=minimum)
