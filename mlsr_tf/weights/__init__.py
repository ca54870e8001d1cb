"""Importers of public pretrained weights (TF1 checkpoints, Caffe, PyTorch) into Keras models."""
