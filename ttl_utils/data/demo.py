"""A procedurally drawn stand-in for TTL: pairs that look alike without being alike.

Each pair is one random *concept* (a silhouette, a colour palette, a layout of a main
shape and small companions, a texture) drawn twice in two styles, as TTL pairs a photo
with a cartoon:

- left, "photo": shaded, textured object on a busy background with clutter and noise;
- right, "cartoon": flat colours, black outlines, a plain background, a posterised
  texture, and the concept slightly moved, scaled, turned and recoloured.

So matching needs the generic features (shape, colour, layout, texture), not pixel
equality. Every pair depends only on `(seed, index)`: the first 100 pairs of a
1000-pair set are the 100 pairs of a 100-pair set.

>>> pairs = make_demo_pairs(4, size=64, seed=0)
>>> len(pairs), pairs.left_image(0).size
(4, (64, 64))
"""

from __future__ import annotations

import colorsys
import csv
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..digests import content_digest
from ..progress import progress
from .pairs import PairSet

__all__ = ["make_demo_pairs", "render_demo_pair", "write_demo_pool", "DEMO_VERSION"]

DEMO_VERSION = 1  # bump when the drawing changes, so splits and caches keyed on it change too

TEXTURES = ("stripes", "dots", "checker", "waves", "plain")


@dataclass(frozen=True)
class _Shape:
    """A star-shaped blob: centre, radius, rotation and the harmonics of its outline."""

    cx: float
    cy: float
    radius: float
    angle: float
    orders: np.ndarray
    amplitudes: np.ndarray
    phases: np.ndarray


@dataclass(frozen=True)
class _Concept:
    main: _Shape
    companions: tuple[_Shape, ...]
    primary: np.ndarray     # RGB in [0, 1]
    secondary: np.ndarray
    texture: str
    frequency: float        # texture cycles across the image
    orientation: float


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    return np.meshgrid(coords, coords)  # x, y in [0, 1]


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, np.clip(s, 0, 1), np.clip(v, 0, 1)), dtype=np.float32)


def _random_shape(rng: np.random.Generator, radius: tuple[float, float], centre: tuple[float, float]) -> _Shape:
    n_harmonics = int(rng.integers(1, 4))
    orders = rng.choice(np.arange(2, 9), size=n_harmonics, replace=False)
    amplitudes = rng.uniform(0.05, 0.45, size=n_harmonics) / np.sqrt(n_harmonics)
    return _Shape(
        cx=float(rng.uniform(*centre)), cy=float(rng.uniform(*centre)),
        radius=float(rng.uniform(*radius)), angle=float(rng.uniform(0, 2 * np.pi)),
        orders=orders.astype(np.float32), amplitudes=amplitudes.astype(np.float32),
        phases=rng.uniform(0, 2 * np.pi, size=n_harmonics).astype(np.float32),
    )


def _random_concept(rng: np.random.Generator) -> _Concept:
    hue = rng.uniform()
    primary = _hsv(hue, rng.uniform(0.45, 1.0), rng.uniform(0.45, 1.0))
    secondary = _hsv(hue + rng.choice([0.5, 0.33, -0.33, 0.1]), rng.uniform(0.3, 1.0), rng.uniform(0.3, 1.0))
    companions = tuple(
        _random_shape(rng, radius=(0.06, 0.12), centre=(0.12, 0.88)) for _ in range(int(rng.integers(0, 3)))
    )
    return _Concept(
        main=_random_shape(rng, radius=(0.24, 0.36), centre=(0.35, 0.65)),
        companions=companions, primary=primary, secondary=secondary,
        texture=str(rng.choice(TEXTURES)), frequency=float(rng.uniform(3, 10)),
        orientation=float(rng.uniform(0, np.pi)),
    )


def _jitter(concept: _Concept, rng: np.random.Generator) -> _Concept:
    """Return the concept as the second image draws it: moved, scaled, turned, recoloured."""
    def move(shape: _Shape) -> _Shape:
        return replace(
            shape,
            cx=shape.cx + float(rng.normal(0, 0.05)), cy=shape.cy + float(rng.normal(0, 0.05)),
            radius=shape.radius * float(rng.uniform(0.8, 1.2)), angle=shape.angle + float(rng.normal(0, 0.3)),
            amplitudes=shape.amplitudes * rng.uniform(0.7, 1.3, size=shape.amplitudes.shape).astype(np.float32),
        )

    def recolour(rgb: np.ndarray) -> np.ndarray:
        h, s, v = colorsys.rgb_to_hsv(*rgb)
        return _hsv(h + rng.normal(0, 0.03), s * rng.uniform(0.8, 1.2), v * rng.uniform(0.8, 1.2))

    return replace(
        concept, main=move(concept.main), companions=tuple(move(c) for c in concept.companions),
        primary=recolour(concept.primary), secondary=recolour(concept.secondary),
        frequency=concept.frequency * float(rng.uniform(0.8, 1.25)),
        orientation=concept.orientation + float(rng.normal(0, 0.2)),
    )


def _level(shape: _Shape, size: int) -> np.ndarray:
    """Return the outline's level function: < 1 inside the shape, 1 on its outline."""
    x, y = _grid(size)
    dx, dy = x - shape.cx, y - shape.cy
    rho = np.hypot(dx, dy)
    theta = np.arctan2(dy, dx) - shape.angle
    wobble = np.tensordot(shape.amplitudes, np.cos(shape.orders[:, None, None] * theta + shape.phases[:, None, None]), 1)
    return rho / (shape.radius * np.maximum(1.0 + wobble, 0.3))


def _coverage(level: np.ndarray, shape: _Shape, size: int) -> np.ndarray:
    """Return an anti-aliased mask (1 inside, 0 outside, a one-pixel ramp between)."""
    return np.clip((1.0 - level) * shape.radius * size + 0.5, 0.0, 1.0)


def _texture(concept: _Concept, size: int) -> np.ndarray:
    x, y = _grid(size)
    u = np.cos(concept.orientation) * x + np.sin(concept.orientation) * y
    v = -np.sin(concept.orientation) * x + np.cos(concept.orientation) * y
    f = 2 * np.pi * concept.frequency
    if concept.texture == "stripes":
        return 0.5 + 0.5 * np.sin(f * u)
    if concept.texture == "dots":
        return np.clip(2.0 * (np.cos(f * u) * np.cos(f * v)), 0, 1)
    if concept.texture == "checker":
        return 0.5 + 0.5 * np.sign(np.sin(f * u) * np.sin(f * v))
    if concept.texture == "waves":
        return 0.5 + 0.5 * np.sin(f * u + 2.0 * np.sin(0.5 * f * v))
    return np.zeros_like(x)


def _paint(canvas: np.ndarray, mask: np.ndarray, colour: np.ndarray) -> None:
    canvas *= 1.0 - mask[..., None]
    canvas += mask[..., None] * colour


def _busy_background(rng: np.random.Generator, size: int) -> np.ndarray:
    x, y = _grid(size)
    base = _hsv(rng.uniform(), rng.uniform(0.0, 0.6), rng.uniform(0.3, 0.9))
    canvas = np.broadcast_to(base, (size, size, 3)).copy()
    for _ in range(3):  # low-frequency colour waves
        kx, ky, phase = (float(v) for v in rng.uniform((1, 1, 0), (4, 4, 2 * np.pi)))
        wave = np.sin(2 * np.pi * (kx * x + ky * y) + phase)
        canvas += 0.08 * wave[..., None] * rng.uniform(-1, 1, size=3).astype(np.float32)
    for _ in range(int(rng.integers(2, 5))):  # clutter: blurry blobs of unrelated colours
        blob = _random_shape(rng, radius=(0.05, 0.2), centre=(0.0, 1.0))
        level = _level(blob, size)
        _paint(canvas, 0.4 * np.clip(1.5 - level, 0, 1), _hsv(rng.uniform(), rng.uniform(0.2, 0.8), rng.uniform(0.2, 1)))
    return canvas


def _render_photo(concept: _Concept, rng: np.random.Generator, size: int) -> np.ndarray:
    canvas = _busy_background(rng, size)
    x, y = _grid(size)
    light_x, light_y = (float(v) for v in rng.uniform(-1, 1, size=2))
    for shape, colour in [(c, concept.secondary) for c in concept.companions] + [(concept.main, None)]:
        level = _level(shape, size)
        mask = _coverage(level, shape, size)
        if colour is None:  # the main shape: textured and shaded like a lit, rounded object
            tex = _texture(concept, size)[..., None]
            fill = (1 - tex) * concept.primary + tex * concept.secondary
            dome = np.sqrt(np.clip(1.0 - level**2, 0.0, 1.0))
            slant = light_x * (x - shape.cx) + light_y * (y - shape.cy)
            shade = 0.55 + 0.45 * dome - slant
            fill = fill * shade[..., None]
        else:
            fill = colour * (0.8 + 0.2 * np.sqrt(np.clip(1.0 - level**2, 0.0, 1.0)))[..., None]
        canvas *= 1.0 - mask[..., None]
        canvas += mask[..., None] * fill
    canvas += 0.03 * rng.standard_normal(canvas.shape, dtype=np.float32)
    return canvas


def _render_cartoon(concept: _Concept, rng: np.random.Generator, size: int) -> np.ndarray:
    background = _hsv(rng.uniform(), rng.uniform(0.0, 0.25), rng.uniform(0.85, 1.0))
    canvas = np.broadcast_to(background, (size, size, 3)).copy()
    outline_width = max(1.0, size / 64)
    for shape, is_main in [(c, False) for c in concept.companions] + [(concept.main, True)]:
        level = _level(shape, size)
        mask = _coverage(level, shape, size)
        if is_main and concept.texture != "plain":
            flat = (_texture(concept, size) > 0.5).astype(np.float32)[..., None]
            fill = (1 - flat) * concept.primary + flat * concept.secondary
        else:
            fill = concept.primary if is_main else concept.secondary
        canvas *= 1.0 - mask[..., None]
        canvas += mask[..., None] * fill
        edge = np.clip(outline_width - np.abs(1.0 - level) * shape.radius * size + 0.5, 0.0, 1.0)
        _paint(canvas, edge, np.zeros(3, np.float32))
    return canvas


def _to_uint8(canvas: np.ndarray) -> np.ndarray:
    return (np.clip(canvas, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def render_demo_pair(index: int, size: int = 128, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return pair `index` of the demo data: (left "photo", right "cartoon"), `size`x`size`x3 uint8."""
    rng = np.random.default_rng([seed, index, DEMO_VERSION])
    concept = _random_concept(rng)
    left = _render_photo(concept, rng, size)
    right = _render_cartoon(_jitter(concept, rng), rng, size)
    if rng.uniform() < 0.5:  # a mirror image still looks alike, but no longer matches pixel by pixel
        right = right[:, ::-1]
    return _to_uint8(left), _to_uint8(right)


def make_demo_pairs(n_pairs: int = 1000, size: int = 128, seed: int = 0) -> PairSet:
    """Return `n_pairs` procedurally drawn look-alike pairs of `size` px, the same for the same seed."""
    if n_pairs < 1 or size < 16:
        raise ValueError(f"The demo data needs n_pairs >= 1 and size >= 16, got n_pairs={n_pairs}, size={size}.")
    indices = progress(range(n_pairs), desc="Drawing demo pairs", unit="pair", leave=False)
    images = [render_demo_pair(i, size, seed) for i in indices]
    return PairSet(
        name=f"demo-{size}px-seed{seed}",
        layout="demo",
        ids=tuple(f"demo{i:05d}" for i in range(n_pairs)),
        left=[left for left, _ in images],
        right=[right for _, right in images],
        fingerprint=content_digest("demo", DEMO_VERSION, n_pairs, size, seed),
    )


def write_demo_pool(root: str | Path, n_pairs: int, size: int = 128, seed: int = 1, n_candidates: int = 20) -> Path:
    """Write an unlabelled pool of `n_pairs` demo pairs under `root` (`left/`, `right/`, `candidates.csv`: each
    left picture's partner among `n_candidates - 1` other right pictures, in shuffled order) and return
    `root`; the right pictures are renumbered, so a name gives no partner away. Nothing is rewritten
    when `root` already holds the candidates file."""
    root = Path(root)
    if n_pairs < n_candidates:
        raise ValueError(f"A demo pool needs at least n_candidates={n_candidates} pairs, got {n_pairs}.")
    if (root / "candidates.csv").is_file():
        return root
    rng = np.random.default_rng(seed)
    pairs = make_demo_pairs(n_pairs, size, seed)
    order = rng.permutation(n_pairs)  # right picture of pair i is saved as number order[i]
    for side in ("left", "right"):
        (root / side).mkdir(parents=True, exist_ok=True)
    for i in range(n_pairs):
        pairs.left_image(i).save(root / "left" / f"{i:05d}.png")
        pairs.right_image(i).save(root / "right" / f"{order[i]:05d}.png")
    rows = []
    for i in range(n_pairs):
        foils = rng.choice([j for j in range(n_pairs) if j != i], size=n_candidates - 1, replace=False)
        names = [f"{order[j]:05d}.png" for j in rng.permutation([i, *foils.tolist()])]
        rows.append([f"{i:05d}.png", *names])
    partial = root / ".candidates.csv.tmp"
    with open(partial, "w", newline="") as f:  # written last, whole: its presence says the pool is complete
        writer = csv.writer(f)
        writer.writerow(["left"] + [f"c{j}" for j in range(n_candidates)])
        writer.writerows(rows)
    partial.replace(root / "candidates.csv")
    return root
