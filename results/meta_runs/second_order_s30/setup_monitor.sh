# Sourced by command.sh and step_sizes_command.sh from the repository root: makes the monitor's
# inputs if missing (gitignored): runs/s29_val (links to B100 img021-025) and
# runs/s30/val_kernel_median.npy (kernel 832 of the 1k validation split, median width 1.01).
export PYTHONPATH=. MLSR_DATA="${MLSR_DATA:-../shared}"
python - <<'PY'
import os, pathlib
import numpy as np
from mlsr_tf.data import degradation
from mlsr_tf.evaluation import reproduce
folder = pathlib.Path("runs/s29_val")
if not folder.is_dir():
  folder.mkdir(parents=True)
  for path in reproduce.select_files(reproduce.ImageSet("B100", 21, 25)):
    (folder / path.name).symlink_to(path.resolve())
kernel = pathlib.Path("runs/s30/val_kernel_median.npy")
if not kernel.exists():
  kernel.parent.mkdir(parents=True, exist_ok=True)
  np.save(kernel, degradation.kernel_split("validation")[832])
PY
