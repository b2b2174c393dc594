# expect-zero: test_structured_filters test_structured_accuracy test_removal_models test_finetuning
# expect-status: ok
# Mistake: the part 2 sweep hands test_model the whole `data` dict instead of test_data, so the cell raises at
# its first target (ValueError) and structured_results stays empty; the removal loop then has nothing to remove
# and the fine-tuning finds no removed model at 0.5. Its functions are right: their checks pass. The feedback page
# must start from the sweep's error, not from the four checks it took down.
### sweep_structured
structured_results = []
for target in TARGETS:
    pruned = prune_structured(model, target)
    accuracy = test_model(pruned, data)
    structured_results.append({"target": target, "model": pruned,
                               "sparsity": global_sparsity(pruned, (nn.Conv2d,)), "accuracy": accuracy})
