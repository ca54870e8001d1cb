"""mlsr_tf: Fast Adaptation to Super-Resolution Networks via Meta-Learning, in TensorFlow 2 / Keras 3.

Park, Yoo, Cho, Kim, Kim, "Fast Adaptation to Super-Resolution Networks via
Meta-Learning", ECCV 2020 (MLSR).

Data flows one way: images -> degradation -> tasks -> model -> inner/outer loop
-> evaluation / export.  ``mlsr_tf.data`` and ``mlsr_tf.models`` never import each
other; nothing here imports ``tools``.
"""

__version__ = "0.1.0"


def adapt(*args, **kwargs):
  """Algorithm 2 (test-time adaptation); see ``mlsr_tf.meta.adaptation.adapt``."""
  from mlsr_tf.meta.adaptation import adapt as _adapt  # Lazy: keeps `import mlsr_tf` light.
  return _adapt(*args, **kwargs)
