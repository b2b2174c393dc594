# expect-zero: test_structured_filters test_structured_accuracy test_structured_function
# expect-status: ok
# Mistake: prunes along dim=1 (input channels) instead of whole filters (dim=0).
### prune_structured
def prune_structured(model, amount):
    pruned = copy.deepcopy(model)
    for m in pruned.modules():
        if isinstance(m, nn.Conv2d):
            prune.ln_structured(m, "weight", amount=amount, n=2, dim=1)  # input channels, not filters
    return pruned


structured_results = []
for target in TARGETS:
    pruned = prune_structured(model, target)
    structured_results.append({"target": target, "model": pruned,
                               "sparsity": global_sparsity(pruned, (nn.Conv2d,)),
                               "accuracy": test_model(pruned, test_data)})
