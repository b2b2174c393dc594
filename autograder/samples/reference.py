# expect-zero:
# expect-status: ok
# The reference solution, as in the source notebook.
### prune_unstructured
def prune_unstructured(model, amount):
    pruned = copy.deepcopy(model)
    params = [(m, "weight") for m in pruned.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=amount)
    return pruned


unstructured_results = []
for target in TARGETS:
    pruned = prune_unstructured(model, target)
    sparsity = global_sparsity(pruned)
    accuracy = test_model(pruned, test_data, mode=mode)
    unstructured_results.append({"target": target, "model": pruned, "sparsity": sparsity, "accuracy": accuracy})
### prune_structured
def prune_structured(model, amount):
    pruned = copy.deepcopy(model)
    for m in pruned.modules():
        if isinstance(m, nn.Conv2d):
            prune.ln_structured(m, "weight", amount=amount, n=2, dim=0)
    return pruned


structured_results = []
for target in TARGETS:
    pruned = prune_structured(model, target)
    sparsity = global_sparsity(pruned, (nn.Conv2d,))
    accuracy = test_model(pruned, test_data, mode=mode)
    structured_results.append({"target": target, "model": pruned, "sparsity": sparsity, "accuracy": accuracy})
