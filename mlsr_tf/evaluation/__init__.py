"""Evaluation stage: benchmark scoring, the IDN authors' protocol, the paper's tables, the ZSSR baseline."""
