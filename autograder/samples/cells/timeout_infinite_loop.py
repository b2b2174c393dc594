# expect-zero: test_unstructured_sparsity test_unstructured_accuracy test_unstructured_function test_structured_filters test_structured_accuracy test_structured_function test_removal_models test_removal_function test_finetuning
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
