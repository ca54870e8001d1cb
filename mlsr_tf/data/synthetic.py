"""Procedural test images, available offline (no dataset needed).

``demo_image`` draws a facade-like scene rich in repeated structure (brick courses, a grid of
windows, stripes and a zone plate), the kind of content where MLSR's self-supervision
(patch recurrence across scales) helps most.  It is deterministic for a given seed, so the
README's first command works on a fresh machine without ../shared.

Layout: HWC uint8 RGB.
"""

from __future__ import annotations

import numpy as np


def demo_image(height: int = 192, width: int = 256, seed: int = 0) -> np.ndarray:
  """Returns a deterministic HWC uint8 RGB image of ``height`` x ``width`` pixels."""
  if height < 16 or width < 16:
    raise ValueError(f"demo image must be at least 16x16, got {height}x{width}")
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[0:height, 0:width].astype(np.float64)
  # Bricks: courses of 12 px, bricks 28 px wide, every other course offset by half a brick.
  course = np.floor(y / 12.0)
  offset = (course % 2) * 14.0
  mortar = ((y % 12.0) < 2.0) | (((x + offset) % 28.0) < 2.0)
  brick_tone = 0.55 + 0.1 * rng.standard_normal((int(course.max()) + 1, width // 28 + 3))
  tone = brick_tone[course.astype(int), ((x + offset) // 28.0).astype(int)]
  red = np.where(mortar, 0.82, tone)
  green = np.where(mortar, 0.80, tone * 0.55)
  blue = np.where(mortar, 0.76, tone * 0.45)
  image = np.stack([red, green, blue], axis=-1)
  # Windows: a regular grid of dark panes with light frames, on the upper half.
  panes = (((x % 48.0) > 10.0) & ((x % 48.0) < 38.0) &
           ((y % 40.0) > 8.0) & ((y % 40.0) < 32.0) & (y < height * 0.55))
  frames = panes & ((((x % 48.0) - 24.0) ** 2 < 1.5) | (((y % 40.0) - 20.0) ** 2 < 1.5))
  image[panes] = [0.18, 0.24, 0.32]
  image[frames] = [0.92, 0.92, 0.9]
  # Awning stripes and a zone plate (all spatial frequencies) in the lower right.
  stripes = (y > height * 0.6) & (y < height * 0.68)
  image[stripes] = np.where((np.floor(x[stripes] / 5.0) % 2)[:, None] == 0,
                            [0.95, 0.95, 0.95], [0.1, 0.35, 0.6])
  cy, cx = height * 0.82, width * 0.8
  radius = min(height, width) * 0.15
  r2 = (y - cy) ** 2 + (x - cx) ** 2
  zone = r2 < radius ** 2
  plate = 0.5 + 0.5 * np.cos(np.pi * r2 / (2.2 * radius))
  image[zone] = plate[zone][:, None]
  return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)
