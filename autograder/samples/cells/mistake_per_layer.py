# expect-zero: test_unstructured_sparsity test_unstructured_accuracy test_unstructured_function
# expect-status: ok
# Mistake: per-layer L1 pruning (each layer loses the same fraction) instead of global.
### prune_unstructured
def prune_unstructured(model, amount):
    pruned = copy.deepcopy(model)
    for m in pruned.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            prune.l1_unstructured(m, "weight", amount=amount)
    return pruned


unstructured_results = []
for target in TARGETS:
    pruned = prune_unstructured(model, target)
    unstructured_results.append({"target": target, "model": pruned, "sparsity": global_sparsity(pruned),
                                 "accuracy": test_model(pruned, test_data)})
