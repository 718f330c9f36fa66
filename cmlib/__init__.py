"""cmlib: galaxy cluster masses from (mock) eROSITA X-ray images with CNNs.

Executable companion to the bachelor thesis *Galaxy Cluster Mass Estimation
Using Deep Neural Networks on Simulated eROSITA X-Ray Data* (M. Heim, LMU
Munich, 2023).  Data flows one way::

    simulate / import  ->  HDF5  ->  data pipeline  ->  model  ->  run artifacts
    ->  metrics / plots  ->  book

Importing :mod:`cmlib` is cheap: TensorFlow, JAX or torch are only imported
by the modules that build or train models.
"""
from . import _env  # noqa: F401  (quiet TensorFlow/absl logging before any backend import)

__version__ = "0.1.0"

__all__ = ["__version__"]
