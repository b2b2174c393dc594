# expect-zero:
# expect-status: ok
# Correct without torch.nn.utils.prune: a fresh copy per target, a global magnitude threshold
# by sorting, zeroing in place; structured by computing filter norms by hand. Sparsity is
# measured by counting zeros itself.
### prune_unstructured
def prune_unstructured(model, amount):
    pruned = copy.deepcopy(model)
    layers = [m for m in pruned.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    magnitudes = torch.cat([m.weight.detach().abs().flatten() for m in layers])
    k = int(round(amount * magnitudes.numel()))
    order = torch.argsort(magnitudes, stable=True)
    mask = torch.ones_like(magnitudes)
    mask[order[:k]] = 0
    start = 0
    with torch.no_grad():
        for m in layers:
            n = m.weight.numel()
            m.weight.mul_(mask[start:start + n].view_as(m.weight))
            start += n
    return pruned


def count_sparsity(net):
    ws = [m.weight for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    return sum(int((w == 0).sum()) for w in ws) / sum(w.numel() for w in ws)


unstructured_results = []
for target in TARGETS:
    pruned = prune_unstructured(model, target)
    unstructured_results.append({"target": target, "model": pruned, "sparsity": count_sparsity(pruned),
                                 "accuracy": test_model(pruned, test_data)})
### prune_structured
def prune_structured(model, amount):
    pruned = copy.deepcopy(model)
    with torch.no_grad():
        for m in pruned.modules():
            if isinstance(m, nn.Conv2d):
                norms = m.weight.flatten(1).norm(dim=1)
                k = int(round(amount * m.out_channels))
                drop = torch.argsort(norms, stable=True)[:k]
                m.weight[drop] = 0
    return pruned


structured_results = []
for target in TARGETS:
    pruned = prune_structured(model, target)
    structured_results.append({"target": target, "model": pruned,
                               "sparsity": global_sparsity(pruned, (nn.Conv2d,)),
                               "accuracy": test_model(pruned, test_data)})
### finetune
FINETUNE_EPOCHS = 1
train_data = [data["X_train"], data["y_train"]]
finetune_results = []
starts = {"structured": next(r["model"] for r in removal_results if r["target"] == 0.5),
          "unstructured": next(r["model"] for r in unstructured_results if r["target"] == 0.9)}
for kind, start in starts.items():
    tuned = copy_model(start)
    if kind == "unstructured":  # zeroed by hand, no masks: attach masks of the zeros so that they stay zero
        for m in tuned.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                prune.custom_from_mask(m, "weight", (m.weight != 0).float())
    before = test_model(tuned, test_data, verbose=False)
    fine_tune(tuned, train_data, epochs=FINETUNE_EPOCHS)
    after = test_model(tuned, test_data, verbose=False)
    finetune_results.append({"kind": kind, "target": 0.5 if kind == "structured" else 0.9, "model": tuned,
                             "before": before, "after": after})
### answer_unstructured
# Up to about 80% sparsity the accuracy stayed within a point or two of the unpruned model, then it fell
# towards chance between 90% and 98%. The histogram shows why: most weights sit close to zero, so the first
# steps remove weights that contribute almost nothing to any output; only the last steps reach weights that matter.
### answer_structured
# Dropout zeroes random units during training only, a new random choice at every step, and every unit comes
# back at test time. Structured pruning removes the filters with the smallest L2 norm, chosen by importance,
# after training, and they stay removed. Dropout makes the network robust to losing units, which is what
# structured pruning then does for good, so training with dropout makes a network that prunes better.
### answer_removal
# At batch 1 the latency fell less than the MACs: a small convolution is dominated by fixed costs (launching
# the operator, memory traffic, Python), not by multiply-adds. At batch 256 time followed MACs more closely.
# Unstructured zeros save time only with a sparse format and a kernel (or hardware) that skips the zeros.
