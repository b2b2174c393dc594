# expect-zero: test_unstructured_sparsity test_unstructured_accuracy test_unstructured_function
# expect-status: ok
# Mistake: random instead of magnitude selection (global, right amount).
### prune_unstructured
def prune_unstructured(model, amount):
    pruned = copy.deepcopy(model)
    params = [(m, "weight") for m in pruned.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    prune.global_unstructured(params, pruning_method=prune.RandomUnstructured, amount=amount)
    return pruned


unstructured_results = []
for target in TARGETS:
    pruned = prune_unstructured(model, target)
    unstructured_results.append({"target": target, "model": pruned, "sparsity": global_sparsity(pruned),
                                 "accuracy": test_model(pruned, test_data)})
