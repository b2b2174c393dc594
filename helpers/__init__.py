"""The pruning assignment's helper package: every name the notebook uses, importable from ``helpers``.

What students use::

    from helpers import get_CINIC10_data, evaluation_data, load_model, test_model
    data = get_CINIC10_data()                    # $CINIC10_ROOT, or the default cache
    test_data = evaluation_data(data)            # a fixed sample of the test split
    model = load_model(path, mode="torch")
    test_model(model, test_data)                 # prints "Test Acc: 0.5120"

The names below are the students' interface, grouped as the notebook meets them. The set-up cell calls
``helpers.notebook.setup``. The modules hold more (the grader shares ``helpers.models``, ``helpers.parts``,
``helpers.inspection``, ``helpers.removal``, ``helpers.removal_checks``, ``helpers.config``); modules whose
names start with ``_`` are the library's own and may change without notice.
"""

# isort: off
# data and the model
from .data import evaluation_data, get_CINIC10_data, to_model_input
from .models import copy_model, load_model

# measuring: accuracy and sparsity
from .evaluate import test_model
from .sparsity import global_sparsity, layer_sparsity, zeroed_filters

# the visible checks of parts 1 and 2
from .checks import TARGETS, check_accuracies, check_results, inspect_structured, inspect_unstructured

# part 3: removing filters, their cost, fine-tuning, and its checks
from .cost import cost_rows, count_macs, format_cost_table
from .finetune import fine_tune
from .removal import inspect_removal, mask_random_filters
from .removal_checks import check_finetuning, check_removal

# plots and widgets
from .notebook import pruning_slider, size_table
from .plots import plot_costs, plot_layer_sparsity, plot_sweeps, plot_weight_histograms
# isort: on

__all__ = [
    "get_CINIC10_data", "evaluation_data", "to_model_input", "load_model", "copy_model",
    "test_model", "global_sparsity", "layer_sparsity", "zeroed_filters",
    "TARGETS", "check_results", "check_accuracies", "inspect_unstructured", "inspect_structured",
    "count_macs", "cost_rows", "format_cost_table", "fine_tune", "mask_random_filters", "inspect_removal",
    "check_removal", "check_finetuning",
    "plot_weight_histograms", "plot_layer_sparsity", "plot_sweeps", "plot_costs", "pruning_slider", "size_table",
]

__version__ = "0.1.0"
