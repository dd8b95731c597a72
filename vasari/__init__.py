"""Vasari: attribute European paintings from an image.

The pipeline flows one way: catalog -> dataset -> features -> heads -> bundle -> predictor
-> CLI / web service. Each stage is one module of this package.
"""

__version__ = "0.1.0"
