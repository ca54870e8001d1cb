"""Benchmark and training image sets under the data root.

Layout (see ``../shared/README.md``)::

  <root>/datasets/{Set5,Set14,B100,Urban100}/HR/*.png|jpg
  <root>/datasets/train291/*.png|jpg

``root`` is resolved by :func:`mlsr_tf.paths.data_root` (argument, then
``$MLSR_DATA``, then ``../shared``).  NumPy only.
"""

import os
import pathlib
from typing import Iterator, List, Optional, Tuple, Union

import numpy as np

from mlsr_tf import paths
from mlsr_tf.data import degradation as degradation_lib
from mlsr_tf.data import image_io

BENCHMARKS = ("Set5", "Set14", "B100", "Urban100")
TRAINING_SETS = ("train291",)

PathLike = Union[str, os.PathLike]


def _image_files(directory: pathlib.Path) -> List[pathlib.Path]:
  return sorted(p for p in directory.iterdir()
                if p.is_file() and p.suffix.lower() in image_io.SUPPORTED_EXTENSIONS)


def _dataset_dir(name: str, root: Optional[PathLike]) -> pathlib.Path:
  base = paths.data_root(root) / "datasets"
  if name in BENCHMARKS:
    return base / name / "HR"
  if name in TRAINING_SETS:
    return base / name
  raise ValueError(
      f"unknown dataset {name!r}; expected one of {BENCHMARKS + TRAINING_SETS} "
      "or a folder of images")


def find_dataset(name: str, root: Optional[PathLike] = None) -> List[pathlib.Path]:
  """Sorted image files of a named set (``Set5`` ... ``train291``).

  Raises:
    ValueError: unknown name, or the folder is missing or holds no images.
  """
  directory = _dataset_dir(name, root)
  if not directory.is_dir():
    raise ValueError(f"dataset {name!r} not found: no folder {str(directory)!r}")
  files = _image_files(directory)
  if not files:
    raise ValueError(f"dataset {name!r} has no images in {str(directory)!r}")
  return files


def list_training_images(name_or_dir: PathLike,
                         root: Optional[PathLike] = None) -> List[pathlib.Path]:
  """Image files of a named set (e.g. ``'train291'``) or of any folder."""
  if str(name_or_dir) in BENCHMARKS + TRAINING_SETS:
    return find_dataset(str(name_or_dir), root)
  directory = pathlib.Path(name_or_dir).expanduser()
  if not directory.is_dir():
    raise ValueError(
        f"training images {str(name_or_dir)!r}: not a known set "
        f"({', '.join(BENCHMARKS + TRAINING_SETS)}) nor a folder")
  files = _image_files(directory)
  if not files:
    raise ValueError(f"no images in folder {str(directory)!r}")
  return files


def crop_to_multiple(image: np.ndarray, scale: int) -> np.ndarray:
  """Crops the bottom/right so height and width are multiples of ``scale``."""
  h, w = image.shape[:2]
  return image[:h - h % scale, :w - w % scale]


def load_benchmark(
    name: str, scale: int,
    degradation: Optional[degradation_lib.Degradation] = None,
    root: Optional[PathLike] = None,
) -> Iterator[Tuple[str, np.ndarray, np.ndarray]]:
  """Yields ``(image name, HR, LR)``, uint8 ``HWC``, in file order.

  HR is cropped to a multiple of ``scale``; LR = ``degrade(HR, degradation)``
  (MATLAB bicubic by default), so LR is exactly ``HR / scale`` in size.
  """
  if degradation is None:
    degradation = degradation_lib.bicubic(scale)
  if degradation.scale != scale:
    raise ValueError(
        f"degradation scale {degradation.scale} differs from scale {scale!r}")
  for path in find_dataset(name, root):
    hr = image_io.read_image(path)
    if hr.dtype != np.uint8:
      raise image_io.ImageError(f"benchmark image {str(path)!r} is not 8-bit")
    if hr.shape[2] == 4:
      hr = hr[:, :, :3]  # Benchmarks are scored on colour only.
    hr = crop_to_multiple(hr, scale)
    yield path.stem, hr, degradation_lib.degrade(hr, degradation)
