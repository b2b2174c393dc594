# expect-zero: test_unstructured_sparsity test_unstructured_accuracy test_unstructured_function
# expect-status: ok
# Mistake: prunes the pretrained model in place, so each target compounds on the last
# (sparsities 0.10, 0.28, 0.50, ...); every stored model is the same object.
### prune_unstructured
def prune_unstructured(model, amount):
    params = [(m, "weight") for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=amount)
    return model


unstructured_results = []
work = copy.deepcopy(model)
for target in TARGETS:
    pruned = prune_unstructured(work, target)
    unstructured_results.append({"target": target, "model": pruned, "sparsity": global_sparsity(pruned),
                                 "accuracy": test_model(pruned, test_data)})
