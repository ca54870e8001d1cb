"""The paper's step sizes and their conversion between pixel ranges (no Keras needed).

MLSR (Park et al., ECCV 2020) trains with pixels in 0..255: inner SGD step alpha = 1e-5,
outer Adam step beta = 1e-6.  For an L2 loss on [0, 1] pixels the same update needs
``alpha * 255**2`` (L1: ``alpha * 255``); Adam is invariant to the loss scale, so beta
is unchanged.  See :mod:`mlsr_tf.meta.maml`.
"""

LOSSES = ("l2", "l1")

PAPER_ALPHA_255 = 1e-5
PAPER_BETA = 1e-6


def alpha_for_pixel_range(alpha_255: float, loss: str = "l2") -> float:
  """Converts an SGD step size for 0..255 pixels into the one for [0, 1] pixels."""
  if loss == "l2":
    return alpha_255 * 255.0**2
  if loss == "l1":
    return alpha_255 * 255.0
  raise ValueError(f"unknown loss {loss!r}; expected one of {LOSSES}")


PAPER_ALPHA = alpha_for_pixel_range(PAPER_ALPHA_255)  # 0.65025 for [0, 1] pixels, L2.
