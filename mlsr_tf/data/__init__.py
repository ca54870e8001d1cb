"""Images, degradations, benchmark datasets and meta-learning tasks (NumPy + TensorFlow)."""
