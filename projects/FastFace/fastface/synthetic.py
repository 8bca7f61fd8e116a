"""Synthetic 112x112 faces written in insightface's formats, so the real readers run end to end.

Each identity has persistent traits: face shape (width, height, jaw), skin tone, eye spacing,
size, height and iris colour, eyebrow thickness/slant/height, nose, mouth width, lip colour,
hair colour and style (fringe, sides, none), glasses (none/round/square, frame colour), a
beard shadow and a mole. Every image varies pose (yaw, roll, scale, shift), light (direction,
strength, colour cast), expression (smile, open mouth, blink), background, blur and noise.

Output (``generate_synthetic_faces``)::

    <out>/train.rec, train.idx    insightface RecordIO (training identities)
    <out>/val.bin                 pair list of held-out identities (as lfw.bin)

Run ``python -m projects.FastFace.fastface.synthetic --out datasets/SyntheticFace``.
"""

from __future__ import annotations

import argparse
import io
import math
import os
from dataclasses import dataclass
from typing import Iterator, List, Optional, Tuple

import numpy as np
from PIL import Image, ImageFilter

from .pairs import write_pairs
from .recordio import write_face_rec

__all__ = ["FaceIdentity", "random_identity", "render_face", "generate_synthetic_faces", "main"]

SIZE = 112
SKIN = np.array(
    [(240, 210, 185), (215, 170, 135), (175, 125, 90), (120, 80, 55), (90, 60, 40)], np.float32
)
HAIR = np.array(
    [(20, 18, 16), (70, 45, 30), (140, 90, 50), (210, 180, 120), (160, 160, 160), (120, 40, 30)],
    np.float32,
)
IRIS = np.array([(60, 40, 25), (40, 90, 150), (60, 120, 70), (90, 90, 90)], np.float32)
FRAMES = np.array([(15, 15, 15), (130, 30, 30), (30, 60, 140), (170, 140, 60)], np.float32)


@dataclass
class FaceIdentity:
    face_w: float
    face_h: float
    jaw: float
    skin: np.ndarray
    eye_dx: float
    eye_y: float
    eye_r: float
    iris: np.ndarray
    brow_w: float
    brow_tilt: float
    brow_dy: float
    nose_len: float
    nose_w: float
    mouth_w: float
    mouth_y: float
    lips: np.ndarray
    hair: np.ndarray
    hair_style: int
    fringe: float
    glasses: int
    frame: np.ndarray
    beard: float
    mole: Tuple[float, float, float]


def random_identity(rng: np.random.Generator) -> FaceIdentity:
    """Draw the persistent traits of one identity."""
    mix = rng.uniform(0, len(SKIN) - 1)
    lo = int(mix)
    skin = SKIN[lo] * (1 - (mix - lo)) + SKIN[min(lo + 1, len(SKIN) - 1)] * (mix - lo)
    return FaceIdentity(
        face_w=rng.uniform(0.52, 0.68),
        face_h=rng.uniform(0.70, 0.86),
        jaw=rng.uniform(-0.12, 0.12),
        skin=skin,
        eye_dx=rng.uniform(0.17, 0.27),
        eye_y=rng.uniform(-0.18, -0.04),
        eye_r=rng.uniform(0.045, 0.08),
        iris=IRIS[rng.integers(len(IRIS))] * rng.uniform(0.8, 1.2),
        brow_w=rng.uniform(0.012, 0.04),
        brow_tilt=rng.uniform(-0.35, 0.35),
        brow_dy=rng.uniform(0.07, 0.14),
        nose_len=rng.uniform(0.12, 0.24),
        nose_w=rng.uniform(0.04, 0.09),
        mouth_w=rng.uniform(0.12, 0.24),
        mouth_y=rng.uniform(0.28, 0.42),
        lips=skin * np.array([0.85, 0.55, 0.55], np.float32) * rng.uniform(0.8, 1.1),
        hair=HAIR[rng.integers(len(HAIR))] * rng.uniform(0.85, 1.15),
        hair_style=int(rng.integers(4)),
        fringe=rng.uniform(-0.75, -0.45),
        glasses=int(rng.choice(3, p=[0.6, 0.2, 0.2])),
        frame=FRAMES[rng.integers(len(FRAMES))],
        beard=float(rng.uniform(0, 1) < 0.25) * rng.uniform(0.3, 0.7),
        mole=(rng.uniform(-0.3, 0.3), rng.uniform(-0.1, 0.4), float(rng.uniform(0, 1) < 0.4)),
    )


def _soft(d: np.ndarray, edge: float = 0.012) -> np.ndarray:
    """Coverage from a signed distance (negative inside) with an anti-aliased edge."""
    return np.clip(0.5 - d / (2 * edge), 0.0, 1.0)


def _ellipse(u, v, cu, cv, ru, rv):
    return _soft((np.sqrt(((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2) - 1.0) * min(ru, rv))


def _paint(img: np.ndarray, alpha: np.ndarray, color) -> None:
    img += alpha[..., None] * (np.asarray(color, np.float32) - img)


def render_face(ident: FaceIdentity, rng: np.random.Generator) -> np.ndarray:
    """One 112x112 RGB uint8 image of ``ident`` with random pose, light, expression, blur."""
    yaw = rng.uniform(-0.4, 0.4)
    roll = rng.uniform(-0.2, 0.2)
    scale = rng.uniform(0.92, 1.08)
    tu, tv = rng.uniform(-0.05, 0.05, size=2)
    smile = rng.uniform(-0.3, 1.0)
    mouth_open = max(0.0, rng.uniform(-0.6, 0.5))
    blink = rng.uniform(0, 1) < 0.1

    # Pixel grid -> canonical face coordinates (inverse pose).
    ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    x = (xs + 0.5) / SIZE * 2 - 1 - tu
    y = (ys + 0.5) / SIZE * 2 - 1 - tv
    c, s = math.cos(roll), math.sin(roll)
    u = (c * x + s * y) / scale
    v = (-s * x + c * y) / scale

    # Background: a smooth random gradient.
    g0, g1 = rng.uniform(30, 220, size=(2, 3)).astype(np.float32)
    t = np.clip((xs * rng.uniform(-1, 1) + ys * rng.uniform(-1, 1)) / SIZE + 0.5, 0, 1)[..., None]
    img = g0 * (1 - t) + g1 * t

    # Yaw moves inner features sideways and squeezes them; the outline shifts less.
    sq = math.cos(yaw)
    shift = math.sin(yaw) * 0.35
    fu = (u - shift) / sq  # feature coordinates
    hu = u - shift * 0.4  # head outline coordinates

    fw, fh = ident.face_w, ident.face_h
    if ident.hair_style in (1, 2):  # long or medium hair behind the head
        drop = 0.55 if ident.hair_style == 1 else 0.15
        _paint(
            img, _ellipse(hu, v, 0, -0.08 + drop / 2, fw * 1.18, fh * 0.65 + drop / 2), ident.hair
        )
    # Face outline: an ellipse whose lower half narrows (jaw > 0) or widens (jaw < 0).
    ru = fw * (1 - ident.jaw * np.clip(v / fh, 0, 1) * 2)
    face = _soft((np.sqrt((hu / ru) ** 2 + ((v - 0.02) / fh) ** 2) - 1.0) * fw)
    _paint(img, face, ident.skin)
    ears = _ellipse(np.abs(hu), v, fw * 0.98, -0.02, 0.07, 0.14) * (1 - face)
    _paint(img, ears, ident.skin * 0.92)
    if ident.beard > 0:
        chin = face * _soft(ident.mouth_y - 0.06 - v, 0.05)
        _paint(img, ident.beard * chin, ident.hair * 0.9)
    if ident.hair_style != 3:  # 3 = bald
        cap = _ellipse(hu, v, 0, -0.2, fw * 1.06, fh * 0.75) * (
            v < ident.fringe + 0.15 * np.abs(hu)
        )
        _paint(img, cap, ident.hair)

    # Eyes with iris and lids; brows.
    for side in (-1, 1):
        cu, cv = side * ident.eye_dx, ident.eye_y
        open_v = 0.15 if blink else 0.55 + 0.1 * (1 - smile)
        white = _ellipse(fu, v, cu, cv, ident.eye_r, ident.eye_r * open_v)
        _paint(img, white, (240, 240, 235))
        look = yaw * 0.02
        _paint(
            img,
            white * _ellipse(fu, v, cu + look, cv, ident.eye_r * 0.5, ident.eye_r * 0.5),
            ident.iris,
        )
        _paint(
            img,
            white * _ellipse(fu, v, cu + look, cv, ident.eye_r * 0.2, ident.eye_r * 0.2),
            (10, 10, 10),
        )
        bu = fu - cu
        bv = v - (
            cv
            - ident.brow_dy
            - side * ident.brow_tilt * bu * 0
            - ident.brow_tilt * np.abs(bu) * 0.5
        )
        brow = _soft(np.maximum(np.abs(bu) - ident.eye_r * 1.3, np.abs(bv) - ident.brow_w))
        _paint(img, brow, ident.hair * 0.7)
        if ident.glasses:
            d = (
                np.sqrt((fu - cu) ** 2 + (v - cv) ** 2) - ident.eye_r * 1.6
                if ident.glasses == 1
                else np.maximum(np.abs(fu - cu), np.abs(v - cv) * 1.3) - ident.eye_r * 1.6
            )
            _paint(img, _soft(np.abs(d) - 0.012), ident.frame)
    if ident.glasses:
        bridge = _soft(
            np.maximum(
                np.abs(fu) - (ident.eye_dx - ident.eye_r * 1.6), np.abs(v - ident.eye_y) - 0.01
            )
        )
        _paint(img, bridge, ident.frame)

    # Nose (a shaded wedge) and mouth (a curved band, open mouth darker inside).
    nv0 = ident.eye_y + 0.05
    within = (v > nv0) & (v < nv0 + ident.nose_len)
    frac = np.clip((v - nv0) / ident.nose_len, 0, 1)
    nose = _soft(np.abs(fu + yaw * 0.05 * frac) - ident.nose_w * frac) * within
    _paint(img, nose * 0.35, ident.skin * 0.6)
    _paint(
        img, _ellipse(fu, v, 0, nv0 + ident.nose_len, ident.nose_w * 0.9, 0.025), ident.skin * 0.7
    )
    mu = fu / ident.mouth_w
    curve = ident.mouth_y - smile * 0.05 * (1 - np.clip(mu**2, 0, 1))
    band = 0.018 + mouth_open * 0.05
    mouth = _soft(np.maximum(np.abs(mu) - 1, 0) * ident.mouth_w + np.abs(v - curve) - band)
    _paint(img, mouth, ident.lips)
    if mouth_open > 0.05:
        _paint(
            img,
            _soft(np.maximum(np.abs(mu) - 0.8, 0) * ident.mouth_w + np.abs(v - curve) - band * 0.6),
            (60, 20, 20),
        )
    mu_, mv_, has_mole = ident.mole
    if has_mole:
        _paint(img, _ellipse(fu, v, mu_, mv_, 0.018, 0.018) * face, ident.skin * 0.45)

    # Light: a directional ramp and a colour cast; then blur and noise.
    angle = rng.uniform(0, 2 * math.pi)
    ramp = (np.cos(angle) * x + np.sin(angle) * y) * rng.uniform(0.0, 0.35)
    light = rng.uniform(0.7, 1.25) * (1 + ramp)[..., None] * rng.uniform(0.9, 1.1, size=3)
    img = np.clip(img * light, 0, 255)
    pil = Image.fromarray(img.astype(np.uint8))
    radius = rng.uniform(0, 1.3)
    if radius > 0.3:
        pil = pil.filter(ImageFilter.GaussianBlur(radius))
    out = np.asarray(pil, dtype=np.float32) + rng.normal(0, rng.uniform(1, 6), size=(SIZE, SIZE, 3))
    return np.clip(out, 0, 255).astype(np.uint8)


def _jpeg(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def generate_synthetic_faces(
    out_dir: str,
    num_train_ids: int = 200,
    images_per_id: int = 30,
    num_val_ids: int = 200,
    num_pairs: int = 1200,
    seed: int = 0,
) -> dict:
    """Write ``train.rec``/``train.idx`` and ``val.bin`` (see the module docstring).

    The validation identities are disjoint from the training ones. Half the pairs are of
    one identity (two different images), half of two identities. Returns the counts.
    """
    if num_pairs % 2 or num_pairs < 20:
        raise ValueError(f"num_pairs must be an even number >= 20, got {num_pairs}.")
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(seed)
    train_ids = [random_identity(rng) for _ in range(num_train_ids)]
    val_ids = [random_identity(rng) for _ in range(num_val_ids)]

    def train_images() -> Iterator[Tuple[int, bytes]]:
        for cls, ident in enumerate(train_ids):
            for _ in range(images_per_id):
                yield cls, _jpeg(render_face(ident, rng))

    n_images, n_classes = write_face_rec(os.path.join(out_dir, "train.rec"), train_images())

    images: List[bytes] = []
    issame: List[bool] = []
    for k in range(num_pairs):
        same = k % 2 == 0
        a = int(rng.integers(num_val_ids))
        b = a if same else int((a + rng.integers(1, num_val_ids)) % num_val_ids)
        images += [_jpeg(render_face(val_ids[a], rng)), _jpeg(render_face(val_ids[b], rng))]
        issame.append(same)
    write_pairs(os.path.join(out_dir, "val.bin"), images, issame)
    return {"train_images": n_images, "train_ids": n_classes, "val_pairs": num_pairs}


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join("datasets", "SyntheticFace"))
    parser.add_argument("--train-ids", type=int, default=200)
    parser.add_argument("--images-per-id", type=int, default=30)
    parser.add_argument("--val-ids", type=int, default=200)
    parser.add_argument("--pairs", type=int, default=1200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    counts = generate_synthetic_faces(
        args.out, args.train_ids, args.images_per_id, args.val_ids, args.pairs, args.seed
    )
    print(f"wrote {args.out}: {counts}")


if __name__ == "__main__":
    from fastreid.utils.errors import exit_on_bad_input

    exit_on_bad_input(main)
