# expect-zero: test_unstructured_sparsity test_unstructured_accuracy test_unstructured_function test_structured_filters test_structured_accuracy test_structured_function
# expect-status: timeout
# Mistake: an infinite loop in part 1.
### prune_unstructured
def prune_unstructured(model, amount):
    while True:
        pass


unstructured_results = []
for target in TARGETS:
    unstructured_results.append({"target": target, "model": prune_unstructured(model, target),
                                 "sparsity": target, "accuracy": 0.5})
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
