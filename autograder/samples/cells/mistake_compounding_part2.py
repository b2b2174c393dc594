# expect-zero: test_structured_filters test_structured_accuracy
# expect-status: ok
# Mistake: each structured step prunes the previous pruned model again (compounds).
### prune_structured
def prune_structured(model, amount):
    pruned = copy_model(model)
    for m in pruned.modules():
        if isinstance(m, nn.Conv2d):
            prune.ln_structured(m, "weight", amount=amount, n=2, dim=0)
    return pruned


structured_results = []
pruned = model
for target in TARGETS:
    pruned = prune_structured(pruned, target)  # prunes the previous step again: compounds
    structured_results.append({"target": target, "model": pruned,
                               "sparsity": global_sparsity(pruned, (nn.Conv2d,)),
                               "accuracy": test_model(pruned, test_data)})
