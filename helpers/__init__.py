"""Helper package for the neural-network pruning assignment.

What students use::

    from helpers import get_CINIC10_data, load_model, test_model
    data = get_CINIC10_data()                    # $CINIC10_ROOT, or the default cache
    test_data = [data["X_test"], data["y_test"]]
    model = load_model(path, mode="torch")
    test_model(model, test_data)                 # prints "Test Acc: 0.5120"
"""

from .config import CINIC10, CinicConfig, default_cache_dir
from .data import DatasetError, evaluation_data, get_CINIC10_data, stratified_indices
from .evaluate import predict, test_model
from .models import CheckpointError, SmallCNN, build_model, copy_model, load_model, save_model
from .sparsity import (
                       count_nonzero_parameters,
                       effective_weight,
                       global_sparsity,
                       layer_sparsity,
                       model_size,
                       prunable_layers,
                       zeroed_filters,
)

__all__ = [
    "CINIC10", "CinicConfig", "default_cache_dir",
    "DatasetError", "evaluation_data", "get_CINIC10_data", "stratified_indices",
    "predict", "test_model",
    "CheckpointError", "SmallCNN", "build_model", "copy_model", "load_model", "save_model",
    "count_nonzero_parameters", "effective_weight", "global_sparsity", "layer_sparsity",
    "model_size", "prunable_layers", "zeroed_filters",
]

__version__ = "0.1.0"
