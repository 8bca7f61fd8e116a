"""A deterministic synthetic re-ID dataset in Market-1501 layout.

Identities keep their appearance across images (clothing colors and patterns, body shape, hair,
hat, bag, shoes); every camera has its own viewpoint (front/back, mirror, shear), lighting and
color cast, person scale, blur, noise, JPEG quality and background. Poses and positions jitter
per image. Clothing colors come from a small palette so colors alone don't identify a person,
and the strong per-camera look makes an untrained network match cameras rather than people.

Output (``<root>/SyntheticReID/``)::

    bounding_box_train/  PPPP_cCsS_FFFFFF_NN.jpg   training identities
    query/               one image per (test identity, camera)
    bounding_box_test/   the rest, plus distractors (0000_...) and junk (-1_...)
    attributes.json      {"attribute_names": [...], "identities": {"0001": {"hat": 0, ...}}}
    (and the registered attribute files: the same labels in other formats, see
    ``register_attribute_writer``)

Command line: ``python -m fastreid.data.synthetic --output DIR --num-ids 300 --seed 0``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
from PIL import Image, ImageFilter

from fastreid.utils.errors import exit_on_bad_input
from fastreid.utils.file_io import atomic_folder, ensure_dir

from ..datasets.bases import resolve_datasets_root
from ..datasets.synthetic import ATTRIBUTES_FILE, DATASET_FOLDER

logger = logging.getLogger(__name__)

# Clothing palette (RGB). Several identities share each color, so colors alone don't identify.
COLORS: Dict[str, Tuple[int, int, int]] = {
    "black": (30, 30, 34),
    "white": (225, 225, 220),
    "gray": (125, 125, 128),
    "red": (180, 35, 40),
    "blue": (40, 70, 170),
    "green": (45, 130, 60),
    "yellow": (215, 190, 50),
    "purple": (110, 50, 140),
    "brown": (115, 75, 45),
    "pink": (220, 140, 170),
}
COLOR_NAMES = list(COLORS)
PALETTE = np.array([COLORS[n] for n in COLOR_NAMES], dtype=np.float32)
SKIN_TONES = np.array([(235, 200, 170), (205, 160, 125), (160, 115, 80), (105, 70, 50)], np.float32)
HAIR_COLORS = np.array([(25, 20, 18), (85, 55, 35), (200, 170, 110), (150, 150, 150)], np.float32)
SHOE_COLORS = np.array([(20, 20, 20), (230, 230, 230), (90, 60, 40), (160, 40, 40)], np.float32)
PATTERNS = ("plain", "hstripes", "vstripes", "checks")
LOWER_TYPES = ("pants", "shorts", "skirt")
BAGS = ("none", "backpack", "handbag")

ATTRIBUTE_NAMES: List[str] = (
    ["hat", "backpack", "handbag", "long_hair", "short_sleeve", "lower_short", "skirt"]
    + ["upper_striped", "upper_checked", "logo"]
    + [f"upper_{c}" for c in COLOR_NAMES]
    + [f"lower_{c}" for c in COLOR_NAMES]
)


@dataclass
class Identity:
    """The persistent appearance of one person."""

    skin: np.ndarray
    hair: np.ndarray
    long_hair: bool
    height: float  # fraction of the camera's person height
    width: float  # body width factor
    leg_ratio: float  # legs' share of the body height
    upper: int  # palette index
    upper_second: int  # second color of a pattern
    pattern: str
    period: float  # stripe period, in body heights
    short_sleeve: bool
    lower: int
    lower_type: str
    shoes: np.ndarray
    hat: Optional[int]  # palette index or None
    bag: str
    bag_color: int
    logo: Optional[int]  # palette index of a chest logo, or None

    def attributes(self) -> Dict[str, int]:
        values = {
            "hat": self.hat is not None,
            "backpack": self.bag == "backpack",
            "handbag": self.bag == "handbag",
            "long_hair": self.long_hair,
            "short_sleeve": self.short_sleeve,
            "lower_short": self.lower_type == "shorts",
            "skirt": self.lower_type == "skirt",
            "upper_striped": self.pattern in ("hstripes", "vstripes"),
            "upper_checked": self.pattern == "checks",
            "logo": self.logo is not None,
        }
        for i, c in enumerate(COLOR_NAMES):
            values[f"upper_{c}"] = self.upper == i
            values[f"lower_{c}"] = self.lower == i
        return {name: int(values[name]) for name in ATTRIBUTE_NAMES}


# Extra attribute files of the set, by file name: ``writer(path, attributes, train_pids,
# test_pids)`` with ``attributes[pid]`` the {attribute name: 0/1} of each identity. A package
# that reads the attributes in another format registers its writer here
# (:func:`register_attribute_writer`); the set then carries that file too.
AttributeWriter = Callable[[str, Dict[int, Dict[str, int]], List[int], List[int]], None]
ATTRIBUTE_WRITERS: Dict[str, AttributeWriter] = {}


def register_attribute_writer(filename: str, writer: AttributeWriter) -> None:
    """Have every synthetic set carry ``filename``, written by ``writer`` from its attributes
    (sets generated before are completed by :func:`ensure_synthetic_dataset`)."""
    ATTRIBUTE_WRITERS[filename] = writer


def _split_pids(identities: Dict[str, Dict[str, int]]) -> Tuple[List[int], List[int]]:
    pids = sorted(int(p) for p in identities)
    num_train = len(pids) // 2  # the first half of the ids train (see generate_synthetic_dataset)
    return pids[:num_train], pids[num_train:]


def write_attribute_files(dataset_dir: str, only_missing: bool = True) -> List[str]:
    """Write the registered attribute files into ``dataset_dir`` from its ``attributes.json``
    (each to a temporary name, then renamed); returns the paths written."""
    with open(os.path.join(dataset_dir, ATTRIBUTES_FILE)) as f:
        identities = json.load(f)["identities"]
    train_pids, test_pids = _split_pids(identities)
    attributes = {int(p): values for p, values in identities.items()}
    written = []
    for filename, writer in ATTRIBUTE_WRITERS.items():
        path = os.path.join(dataset_dir, filename)
        if only_missing and os.path.exists(path):
            continue
        partial = f"{path}.tmp{os.getpid()}"
        try:
            writer(partial, attributes, train_pids, test_pids)
            os.replace(partial, path)
        finally:
            if os.path.exists(partial):
                os.remove(partial)
        written.append(path)
    return written


@dataclass
class Camera:
    """How one camera sees the world."""

    back_view: bool
    mirror: bool
    shear: float
    gain: np.ndarray  # per-channel color cast
    gamma: float
    person_scale: float  # person height / image height
    blur: float
    noise: float
    quality: int
    resolution: float  # < 1: captured at lower resolution then upscaled
    background: np.ndarray  # (2H, 2W, 3) texture, cropped per image


def random_identity(rng: np.random.Generator) -> Identity:
    n_colors = len(COLOR_NAMES)
    upper = int(rng.integers(n_colors))
    return Identity(
        skin=SKIN_TONES[rng.integers(len(SKIN_TONES))],
        hair=HAIR_COLORS[rng.integers(len(HAIR_COLORS))],
        long_hair=bool(rng.random() < 0.35),
        height=float(rng.uniform(0.86, 1.0)),
        width=float(rng.uniform(0.8, 1.25)),
        leg_ratio=float(rng.uniform(0.42, 0.52)),
        upper=upper,
        upper_second=int((upper + rng.integers(1, n_colors)) % n_colors),
        pattern=PATTERNS[rng.choice(4, p=[0.4, 0.2, 0.2, 0.2])],
        period=float(rng.uniform(0.035, 0.08)),
        short_sleeve=bool(rng.random() < 0.4),
        lower=int(rng.integers(n_colors)),
        lower_type=LOWER_TYPES[rng.choice(3, p=[0.6, 0.25, 0.15])],
        shoes=SHOE_COLORS[rng.integers(len(SHOE_COLORS))],
        hat=int(rng.integers(n_colors)) if rng.random() < 0.25 else None,
        bag=BAGS[rng.choice(3, p=[0.45, 0.3, 0.25])],
        bag_color=int(rng.integers(n_colors)),
        logo=int(rng.integers(n_colors)) if rng.random() < 0.3 else None,
    )


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [0, 1] of shape (h, w): a random grid, bilinearly upsampled."""
    grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
    ys = np.linspace(0, cells, h, dtype=np.float32)
    xs = np.linspace(0, cells, w, dtype=np.float32)
    y0 = np.minimum(ys.astype(int), cells - 1)
    x0 = np.minimum(xs.astype(int), cells - 1)
    fy = (ys - y0)[:, None]
    fx = (xs - x0)[None, :]
    top = grid[y0][:, x0] * (1 - fx) + grid[y0][:, x0 + 1] * fx
    bottom = grid[y0 + 1][:, x0] * (1 - fx) + grid[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def random_background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A (2h, 2w, 3) float texture: wall, floor, clutter boxes and low-frequency noise."""
    bh, bw = 2 * h, 2 * w
    wall, floor = rng.uniform(40, 220, (2, 3)).astype(np.float32)
    horizon = int(rng.uniform(0.45, 0.8) * bh)
    tex = np.empty((bh, bw, 3), np.float32)
    tex[:horizon] = wall
    tex[horizon:] = floor
    yy = np.arange(bh, dtype=np.float32)[:, None]
    xx = np.arange(bw, dtype=np.float32)[None, :]
    kind = rng.integers(3)
    if kind == 0:  # tiles / bricks
        period = rng.uniform(6, 18) * h / 128
        lines = ((yy % period) < 1.5) | ((xx + (yy // period) * period / 2) % (2 * period) < 1.5)
        tex[lines] *= 0.7
    elif kind == 1:  # vertical posts
        period = rng.uniform(10, 30) * h / 128
        tex[np.broadcast_to((xx % period) < period / 4, (bh, bw))] *= 0.75
    for _ in range(int(rng.integers(3, 9))):  # clutter: shelves, windows, signs
        y0, x0 = rng.integers(0, bh - 4), rng.integers(0, bw - 4)
        y1 = y0 + int(rng.integers(4, max(5, bh // 3)))
        x1 = x0 + int(rng.integers(4, max(5, bw // 2)))
        tex[y0:y1, x0:x1] = rng.uniform(20, 240, 3)
    shade = 0.7 + 0.6 * _smooth_noise(rng, bh, bw, 4)
    return tex * shade[..., None]


def random_camera(rng: np.random.Generator, index: int, h: int, w: int) -> Camera:
    return Camera(
        back_view=bool(index % 2),
        mirror=bool(rng.random() < 0.5),
        shear=float(rng.uniform(-0.12, 0.12)),
        gain=rng.uniform(0.7, 1.3, 3).astype(np.float32),
        gamma=float(rng.uniform(0.7, 1.4)),
        person_scale=float(rng.uniform(0.72, 0.95)),
        blur=float(rng.choice([0.0, 0.4, 0.8, 1.2])) * h / 128,
        noise=float(rng.uniform(2, 9)),
        quality=int(rng.integers(70, 95)),
        resolution=float(rng.choice([1.0, 0.75, 0.5])),
        background=random_background(rng, h, w),
    )


def _paint(img: np.ndarray, alpha: np.ndarray, color) -> None:
    """Blend ``color`` (3,) or (H, W, 3) into ``img`` (H, W, 3) where ``alpha`` (H, W) is 1.

    Only the window around the non-zero alpha is touched (parts are small next to the frame).
    """
    rows = np.flatnonzero(alpha.any(axis=1))
    if rows.size == 0:
        return
    cols = np.flatnonzero(alpha.any(axis=0))
    window = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    if np.ndim(color) == 3:
        color = color[window]
    target = img[window]
    target += alpha[window][..., None] * (color - target)


def _ellipse(x, y, cx, cy, rx, ry, edge):
    d = np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)
    return np.clip((1 - d) * min(rx, ry) / edge + 0.5, 0, 1)


def _box(x, y, x0, x1, y0, y1, edge):
    inside = np.minimum(np.minimum(x - x0, x1 - x), np.minimum(y - y0, y1 - y))
    return np.clip(inside / edge + 0.5, 0, 1)


def _capsule(x, y, p0, p1, radius, edge):
    """A limb: the points within ``radius`` of the segment p0-p1."""
    (x0, y0), (x1, y1) = p0, p1
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy + 1e-9), 0, 1)
    d = np.sqrt((x - x0 - t * dx) ** 2 + (y - y0 - t * dy) ** 2)
    return np.clip((radius - d) / edge + 0.5, 0, 1)


def render_person(
    rng: np.random.Generator,
    person: Identity,
    camera: Camera,
    h: int,
    w: int,
    crop: Optional[Tuple[float, float]] = None,
) -> np.ndarray:
    """Render one image (h, w, 3) uint8 of ``person`` seen by ``camera``.

    ``crop`` = (top, bottom) in body heights keeps only that part of the body (junk boxes).
    """
    # Background: a random window of the camera's texture.
    by, bx = rng.integers(0, h), rng.integers(0, w)
    img = camera.background[by : by + h, bx : bx + w].copy()

    # Person box: height in pixels, feet position, jittered per image.
    ph = h * camera.person_scale * person.height * rng.uniform(0.93, 1.07)
    top = h - ph - rng.uniform(0.01, 0.06) * h
    cx = w / 2 + rng.uniform(-0.1, 0.1) * w
    shear = camera.shear + rng.uniform(-0.04, 0.04)
    if crop is not None:  # stretch the kept body part over the whole box, like a bad detection
        ph = h / (crop[1] - crop[0])
        top = -crop[0] * ph
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    y = (yy - top) / ph  # 0 = top of head, 1 = feet
    x = (xx - cx) / ph - shear * (y - 0.5)
    if camera.mirror:
        x = -x
    edge = 1.0 / ph  # one pixel, in body heights: soft, anti-aliased edges
    wf = person.width
    waist = 1.0 - person.leg_ratio
    stride = rng.uniform(-0.07, 0.07)  # walking phase: legs and arms swing
    swing = rng.uniform(-0.05, 0.05)
    sleeve_color = PALETTE[person.upper]

    # Legs and shoes.
    lower = PALETTE[person.lower] * rng.uniform(0.9, 1.1)
    knee = waist + 0.5 * (0.97 - waist)
    for side in (-1, 1):
        hip = (side * 0.045 * wf, waist)
        foot = (side * 0.045 * wf + side * stride, 0.955)
        leg = _capsule(x, y, hip, foot, 0.04 * wf, edge)
        if person.lower_type == "pants":
            _paint(img, leg, lower)
        else:
            _paint(img, leg, person.skin)
            if person.lower_type == "shorts":
                _paint(img, leg * (y < knee - 0.06), lower)
        _paint(img, _ellipse(x, y, foot[0] + 0.015 * side, 0.97, 0.045, 0.025, edge), person.shoes)
    if person.lower_type == "skirt":
        half = 0.11 * wf + 0.12 * (y - waist)
        _paint(img, _box(np.abs(x), y, -1.0, half, waist - 0.01, knee + 0.02, edge), lower)

    # Arms (behind the torso) with sleeves.
    for side in (-1, 1):
        shoulder = (side * 0.13 * wf, 0.2)
        hand = (side * (0.17 * wf) + side * 0.01 + swing * side, 0.52)
        arm = _capsule(x, y, shoulder, hand, 0.032 * wf, edge)
        _paint(img, arm, person.skin)
        sleeve_end = 0.3 if person.short_sleeve else 0.48
        _paint(img, arm * (y < sleeve_end), sleeve_color)

    # Torso with its pattern.
    half_width = 0.14 * wf - 0.03 * (y - 0.18) / max(waist - 0.18, 1e-3)
    torso = _box(np.abs(x), y, -1.0, half_width, 0.17, waist + 0.02, edge)
    top_color = np.broadcast_to(PALETTE[person.upper], img.shape).copy()
    phase = rng.uniform(0, person.period)
    if person.pattern != "plain":
        stripes_h = ((y + phase) % person.period) < person.period / 2
        stripes_v = ((x + phase) % person.period) < person.period / 2
        mask = {"hstripes": stripes_h, "vstripes": stripes_v, "checks": stripes_h ^ stripes_v}
        top_color[mask[person.pattern]] = PALETTE[person.upper_second]
    _paint(img, torso, top_color * rng.uniform(0.9, 1.1))
    if person.logo is not None and not camera.back_view:
        _paint(img, _box(x, y, -0.04, 0.04, 0.24, 0.31, edge), PALETTE[person.logo])

    # Bags: a backpack covers the back, shows straps from the front; a handbag hangs at one hand.
    bag = PALETTE[person.bag_color]
    if person.bag == "backpack":
        if camera.back_view:
            _paint(img, _box(x, y, -0.1 * wf, 0.1 * wf, 0.21, waist - 0.04, edge), bag)
        else:
            for side in (-1, 1):
                _paint(
                    img, _box(x, y, side * 0.07 - 0.015, side * 0.07 + 0.015, 0.18, 0.4, edge), bag
                )
    elif person.bag == "handbag":
        hx = 0.2 * wf + swing
        _paint(img, _box(x, y, hx - 0.04, hx + 0.05, 0.48, 0.6, edge), bag)

    # Head, hair, hat.
    _paint(img, _box(x, y, -0.025, 0.025, 0.12, 0.18, edge), person.skin)  # neck
    head = _ellipse(x, y, 0.0, 0.08, 0.058, 0.072, edge)
    _paint(img, head, person.skin)
    hair_bottom = 0.2 if person.long_hair else 0.07
    if camera.back_view:
        hair_bottom += 0.06
    hair = np.maximum(
        _ellipse(x, y, 0.0, 0.065, 0.064, 0.062, edge) * (y < hair_bottom),
        _box(x, y, -0.06, 0.06, 0.06, hair_bottom, edge) * (person.long_hair or camera.back_view),
    )
    _paint(img, hair, person.hair)
    if person.hat is not None:
        hat = _box(x, y, -0.07, 0.07, 0.0, 0.045, edge)
        _paint(img, np.maximum(hat, _box(x, y, -0.1, 0.1, 0.035, 0.05, edge)), PALETTE[person.hat])

    # Occluder (a passer-by's bag, a pole, a car) in a few images.
    if rng.random() < 0.15:
        ox0 = rng.integers(0, w)
        oy0 = rng.integers(h // 2, h)
        img[oy0:, ox0 : ox0 + int(rng.integers(w // 8, w // 2))] = rng.uniform(20, 230, 3)
    return img


def capture(rng: np.random.Generator, img: np.ndarray, camera: Camera) -> Image.Image:
    """Apply the camera's lighting, color cast, resolution, blur and noise; returns a PIL image."""
    light = rng.uniform(0.85, 1.15)
    out = 255.0 * (np.clip(img / 255.0, 0, 1) ** camera.gamma) * camera.gain * light
    out += rng.normal(0, camera.noise, out.shape).astype(np.float32)
    pil = Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))
    h, w = img.shape[:2]
    if camera.resolution < 1:
        small = (max(1, int(w * camera.resolution)), max(1, int(h * camera.resolution)))
        pil = pil.resize(small, Image.BILINEAR).resize((w, h), Image.BILINEAR)
    if camera.blur > 0:
        pil = pil.filter(ImageFilter.GaussianBlur(camera.blur))
    return pil


def _plan(
    rng: np.random.Generator, num_ids: int, num_cams: int, num_train_ids: int
) -> List[Tuple[int, int, int, str]]:
    """(pid, camera, count, split) rows: which identity appears how often in which camera."""
    rows = []
    for pid in range(1, num_ids + 1):
        is_train = pid <= num_train_ids
        n_cams = int(rng.integers(2, min(5, num_cams) + 1))
        for cam in sorted(rng.choice(num_cams, n_cams, replace=False)):
            # Test ids get >= 2 images per camera: one query, the rest in the gallery.
            count = int(rng.integers(1, 5)) if is_train else int(rng.integers(2, 5))
            rows.append((pid, int(cam), count, "train" if is_train else "test"))
    return rows


def generate_synthetic_dataset(
    output: str,
    num_ids: int = 300,
    seed: int = 0,
    height: int = 128,
    width: int = 64,
    num_cams: int = 6,
    num_distractors: Optional[int] = None,
    num_junk: Optional[int] = None,
) -> str:
    """Write the dataset to ``<output>/SyntheticReID`` (replacing it) and return that path.

    Args:
        output: the datasets root.
        num_ids: identities; the first half train, the second half test.
        seed: everything (appearance, cameras, poses, noise) follows from it.
        height, width: image size (128x64 or 256x128 are the usual ones).
        num_cams: cameras (each id appears in 2-5 of them).
        num_distractors: gallery images of pid 0 (default ``num_ids``).
        num_junk: gallery images of pid -1 (default ``num_ids // 3``).
    """
    if num_ids < 4:
        raise ValueError(f"--num-ids must be at least 4 (2 train + 2 test ids), got {num_ids}.")
    if height < 8 or width < 4:
        raise ValueError(f"--height/--width must be at least 8 x 4 pixels, got {height} x {width}.")
    if num_cams < 2:
        raise ValueError(f"num_cams must be at least 2, got {num_cams}.")
    num_distractors = num_ids if num_distractors is None else num_distractors
    num_junk = num_ids // 3 if num_junk is None else num_junk
    rng = np.random.default_rng(seed)
    people = [random_identity(rng) for _ in range(num_ids + 1)]  # index 0 unused
    cameras = [random_camera(rng, c, height, width) for c in range(num_cams)]
    num_train_ids = num_ids // 2
    plan = _plan(rng, num_ids, num_cams, num_train_ids)

    final_dir = os.path.join(output, DATASET_FOLDER)
    ensure_dir(output, what="datasets folder (--output)")
    with atomic_folder(final_dir, prefix=".synthetic-") as work_dir:
        folders = {
            s: os.path.join(work_dir, s)
            for s in ("bounding_box_train", "query", "bounding_box_test")
        }
        for folder in folders.values():
            os.makedirs(folder)
        frames = [0] * num_cams

        def write(pid: int, cam: int, img: np.ndarray, folder: str) -> None:
            frames[cam] += int(rng.integers(1, 60))
            seq = 1 + frames[cam] // 20000
            pid_str = "-1" if pid < 0 else f"{pid:04d}"
            name = f"{pid_str}_c{cam + 1}s{seq}_{frames[cam]:06d}_{int(rng.integers(0, 8)):02d}.jpg"
            capture(rng, img, cameras[cam]).save(
                os.path.join(folders[folder], name), quality=cameras[cam].quality
            )

        for pid, cam, count, split in plan:
            for k in range(count):
                img = render_person(rng, people[pid], cameras[cam], height, width)
                if split == "train":
                    folder = "bounding_box_train"
                else:
                    folder = "query" if k == 0 else "bounding_box_test"
                write(pid, cam, img, folder)
        for _ in range(num_distractors):  # one-off people far away, off-center or half-visible
            cam = int(rng.integers(num_cams))
            img = render_person(rng, random_identity(rng), cameras[cam], height, width)
            shift = int(rng.integers(width // 3, width // 2 + 1)) * (
                1 if rng.random() < 0.5 else -1
            )
            img = np.roll(img, shift, axis=1)
            write(0, cam, img, "bounding_box_test")
        for _ in range(num_junk):  # bad detections of test ids: a small part of the body
            pid = int(rng.integers(num_train_ids + 1, num_ids + 1))
            cam = int(rng.integers(num_cams))
            top = float(rng.uniform(0.0, 0.6))
            img = render_person(
                rng, people[pid], cameras[cam], height, width, crop=(top, top + 0.3)
            )
            write(-1, cam, img, "bounding_box_test")

        attributes = {
            "attribute_names": ATTRIBUTE_NAMES,
            "identities": {f"{pid:04d}": people[pid].attributes() for pid in range(1, num_ids + 1)},
        }
        for filename, writer in ATTRIBUTE_WRITERS.items():
            writer(
                os.path.join(work_dir, filename),
                {pid: people[pid].attributes() for pid in range(1, num_ids + 1)},
                list(range(1, num_train_ids + 1)),
                list(range(num_train_ids + 1, num_ids + 1)),
            )
        # Written last: its presence marks a complete dataset.
        with open(os.path.join(work_dir, ATTRIBUTES_FILE), "w") as f:
            json.dump(attributes, f, indent=1)
    return final_dir


def ensure_synthetic_dataset(root: Optional[str] = None, **sizes) -> str:
    """Generate ``<root>/SyntheticReID`` unless it is already there; return its path.

    ``root`` defaults to ``$FASTREID_DATASETS`` or ``./datasets``; ``sizes`` go to
    :func:`generate_synthetic_dataset` (``num_ids``, ``seed``, ``height``, ``width``, ...).
    A dataset is complete once its ``attributes.json`` exists (it is written last and the folder
    is moved into place in one step).
    """
    root = resolve_datasets_root(root)
    path = os.path.join(root, DATASET_FOLDER)
    if os.path.exists(os.path.join(path, ATTRIBUTES_FILE)):
        write_attribute_files(path)  # files registered since the set was generated
        return path
    start = time.perf_counter()
    generate_synthetic_dataset(root, **sizes)
    logger.info("Generated %s in %.1f s", path, time.perf_counter() - start)
    return path


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m fastreid.data.synthetic",
        description="Generate the synthetic re-ID dataset.",
    )
    parser.add_argument(
        "--output", default=None, help="datasets root (default $FASTREID_DATASETS or ./datasets)"
    )
    parser.add_argument(
        "--num-ids", type=int, default=300, help="identities (half train, half test)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--num-cams", type=int, default=6)
    args = parser.parse_args(argv)
    exit_on_bad_input(_generate, args)


def _generate(args: argparse.Namespace) -> None:
    start = time.perf_counter()
    path = generate_synthetic_dataset(
        resolve_datasets_root(args.output),
        num_ids=args.num_ids,
        seed=args.seed,
        height=args.height,
        width=args.width,
        num_cams=args.num_cams,
    )
    counts = {
        d: len(os.listdir(os.path.join(path, d)))
        for d in sorted(os.listdir(path))
        if os.path.isdir(os.path.join(path, d))
    }
    print(f"Wrote {path} in {time.perf_counter() - start:.1f} s: {counts}")


if __name__ == "__main__":
    main()
