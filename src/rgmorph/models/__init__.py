"""The model variants, by name: the registry (``rgmorph.models.registry``) filled with the networks.

Importing this package imports torch and the network modules only; the Gabor-feature SVM
(``rgmorph.models.gabor_svm``, scikit-learn and scipy) is imported when it is built or trained.
"""

from __future__ import annotations

from rgmorph.models.registry import (TrunkHead, available, build, count_parameters, estimator_module,
                                     flattened_size, is_estimator, register, variants)

# Importing the network modules fills the registry.
from rgmorph.models import alexnet, dn_equivariant, lenet, resnet, tang2019, vgg  # noqa: E402,F401

__all__ = ["TrunkHead", "available", "build", "count_parameters", "estimator_module", "flattened_size", "is_estimator",
           "register", "variants"]
