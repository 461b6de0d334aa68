"""rgmorph: reproducible radio-galaxy morphology classification on FIRST and NVSS cutouts."""

__version__ = "0.1.0"
