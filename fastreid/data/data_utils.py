"""Reading images: fast decoding to uint8 tensors, with errors that name the file."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_image

from fastreid.utils.errors import BadInputError

SKIP_CORRUPT_KEY = "DATALOADER.SKIP_CORRUPT"

# torchvision 0.29 marks its decoders deprecated in favour of TorchCodec; they remain the fastest
# JPEG path here (libjpeg-turbo, no PIL round trip), so the notice is not repeated in every log.
warnings.filterwarnings(
    "ignore",
    message="The image decoding and encoding capabilities of TorchVision are deprecated",
    category=DeprecationWarning,
)


class CorruptImageError(BadInputError, RuntimeError):
    """An image file is missing, empty or cannot be decoded."""


def read_image(path: str) -> torch.Tensor:
    """Decode an image file to a uint8 RGB tensor of shape (3, H, W).

    JPEG goes through libjpeg-turbo (``torchvision.io``) without a PIL round trip; PNG, BMP, GIF
    and WebP are decoded too. Raises :class:`CorruptImageError` naming the file when it is missing
    or unreadable.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CorruptImageError(
            f"Cannot read image {path}: {e.strerror or e}. Check the dataset folder, or set "
            f"{SKIP_CORRUPT_KEY} True to skip unreadable images with a warning."
        ) from e
    if not data:
        raise CorruptImageError(
            f"Image {path} is empty. Re-copy it, or set {SKIP_CORRUPT_KEY} True to skip it."
        )
    try:
        return decode_image(
            torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB
        )
    except RuntimeError:
        pass
    # Formats libjpeg/libpng can't handle (e.g. CMYK JPEG, TIFF) still open with PIL.
    try:
        with Image.open(path) as img:
            array = torch.from_numpy(np.asarray(img.convert("RGB")).copy())
        return array.permute(2, 0, 1).contiguous()
    except Exception as e:
        raise CorruptImageError(
            f"Cannot decode image {path} ({type(e).__name__}: {e}). Replace the file, or set "
            f"{SKIP_CORRUPT_KEY} True to skip unreadable images with a warning."
        ) from e


def read_image_pil(path: str) -> Image.Image:
    """Open an image as an RGB PIL image (for visualisation and tools that want PIL)."""
    return Image.fromarray(read_image(path).permute(1, 2, 0).numpy())
