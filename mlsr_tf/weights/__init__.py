"""Importers of public pretrained weights (TF1 checkpoints, Caffe, PyTorch) into Keras models.

  * `mapping`: JSON name maps (Keras weight -> source tensor, optional split /
    transpose) and strict matching (`WeightMismatchError` lists missing,
    unexpected and mis-shaped names); shipped maps in `maps/`.
  * `tf1`: TF1 name-based checkpoints (IDN-TF -> `idn`, MZSR -> `zssr`, or any
    layout through a user's map).
  * `caffe`: a protobuf wire-format reader for `.caffemodel` (no Caffe needed)
    and the Caffe -> Keras importer (`idn_caffe`).
  * `torch_rcan`: the official PyTorch RCAN state dict -> `rcan` (torch optional).

This package does not import `mlsr_tf.models`; `mlsr_tf.models_io` combines both.
"""
