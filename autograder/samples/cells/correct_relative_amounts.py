# expect-zero:
# expect-status: ok
# Correct: one model pruned step by step, each amount computed relative to what remains,
# keeping a copy of each step with copy_model (plain deepcopy fails on pruned models).
### prune_unstructured
def prune_unstructured(model, amount):
    pruned = copy_model(model)
    params = [(m, "weight") for m in pruned.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=amount)
    return pruned


unstructured_results = []
work = copy_model(model)
params = [(m, "weight") for m in work.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
previous = 0.0
for target in TARGETS:
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured,
                              amount=(target - previous) / (1 - previous))
    previous = target
    snapshot = copy_model(work)
    unstructured_results.append({"target": target, "model": snapshot, "sparsity": global_sparsity(snapshot),
                                 "accuracy": test_model(snapshot, test_data)})
### prune_structured
def prune_structured(model, amount):
    pruned = copy_model(model)
    for m in pruned.modules():
        if isinstance(m, nn.Conv2d):
            prune.ln_structured(m, "weight", amount=amount, n=2, dim=0)
    return pruned


structured_results = []
for target in TARGETS:
    pruned = prune_structured(model, target)
    structured_results.append({"target": target, "model": pruned,
                               "sparsity": global_sparsity(pruned, (nn.Conv2d,)),
                               "accuracy": test_model(pruned, test_data)})
