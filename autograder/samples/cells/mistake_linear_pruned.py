# expect-zero: test_structured_filters test_structured_accuracy test_structured_function
# expect-status: ok
# Mistake: structured pruning applied to the Linear layers too.
### prune_structured
def prune_structured(model, amount):
    pruned = copy.deepcopy(model)
    for m in pruned.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):  # Linear layers must stay untouched
            prune.ln_structured(m, "weight", amount=amount, n=2, dim=0)
    return pruned


structured_results = []
for target in TARGETS:
    pruned = prune_structured(model, target)
    structured_results.append({"target": target, "model": pruned,
                               "sparsity": global_sparsity(pruned, (nn.Conv2d,)),
                               "accuracy": test_model(pruned, test_data)})
