"""Serving stage: adapting image files, shipped-model use, SavedModel export, the TF Serving client."""
