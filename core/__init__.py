"""LossLab's Qt-free core: surfaces, optimizers, races, training and landscapes."""

__version__ = "0.1.0"
