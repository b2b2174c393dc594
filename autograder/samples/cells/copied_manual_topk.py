# expect-zero:
# expect-status: ok
# A copy of correct_manual_topk in disguise (for the class report's pairs worth comparing): every name of its
# own changed, independent lines reordered, comments added, written answers reworded. Correct, so full marks;
# the report lists it with correct_manual_topk and with no other sample.
### prune_unstructured
def prune_unstructured(model, amount):
    # work on a copy so the original network stays as it is
    net = copy.deepcopy(model)
    layer_list = [lyr for lyr in net.modules() if isinstance(lyr, (nn.Conv2d, nn.Linear))]
    # all the weights in one long vector (absolute values)
    all_abs = torch.cat([lyr.weight.detach().abs().flatten() for lyr in layer_list])
    ranking = torch.argsort(all_abs, stable=True)
    n_cut = int(round(amount * all_abs.numel()))
    keep = torch.ones_like(all_abs)
    keep[ranking[:n_cut]] = 0  # smallest first
    pos = 0
    with torch.no_grad():
        for lyr in layer_list:
            size = lyr.weight.numel()
            lyr.weight.mul_(keep[pos:pos + size].view_as(lyr.weight))
            pos += size
    return net


def zero_fraction(mdl):
    # my own sparsity count
    weights = [lyr.weight for lyr in mdl.modules() if isinstance(lyr, (nn.Conv2d, nn.Linear))]
    return sum(int((wt == 0).sum()) for wt in weights) / sum(wt.numel() for wt in weights)


unstructured_results = []
for amt in TARGETS:
    net = prune_unstructured(model, amt)
    # store everything the checks need
    unstructured_results.append({"target": amt, "model": net, "sparsity": zero_fraction(net),
                                 "accuracy": test_model(net, test_data)})
### prune_structured
def prune_structured(model, amount):
    net = copy.deepcopy(model)
    with torch.no_grad():
        for lyr in net.modules():
            if isinstance(lyr, nn.Conv2d):
                # L2 norm of each output filter
                filt_norm = lyr.weight.flatten(1).norm(dim=1)
                n_cut = int(round(amount * lyr.out_channels))
                gone = torch.argsort(filt_norm, stable=True)[:n_cut]
                lyr.weight[gone] = 0
    return net


structured_results = []
for amt in TARGETS:
    net = prune_structured(model, amt)
    structured_results.append({"target": amt, "model": net,
                               "sparsity": global_sparsity(net, (nn.Conv2d,)),
                               "accuracy": test_model(net, test_data)})
### finetune
train_data = [data["X_train"], data["y_train"]]
FINETUNE_EPOCHS = 1
finetune_results = []
# the two starting points
begin = {"structured": next(r["model"] for r in removal_results if r["target"] == 0.5),
         "unstructured": next(r["model"] for r in unstructured_results if r["target"] == 0.9)}
for which, first in begin.items():
    ft = copy_model(first)
    if which == "unstructured":  # no masks on this one, so add masks of its zeros to keep them at zero
        for lyr in ft.modules():
            if isinstance(lyr, (nn.Conv2d, nn.Linear)):
                prune.custom_from_mask(lyr, "weight", (lyr.weight != 0).float())
    acc_before = test_model(ft, test_data, verbose=False)
    fine_tune(ft, train_data, epochs=FINETUNE_EPOCHS)
    acc_after = test_model(ft, test_data, verbose=False)
    finetune_results.append({"kind": which, "target": 0.5 if which == "structured" else 0.9, "model": ft,
                             "before": acc_before, "after": acc_after})
### answer_unstructured
# Until roughly 80% sparsity accuracy stayed within one or two points of the full model, then dropped towards
# chance between 90% and 98%. The histogram explains it: most weights are near zero, so early steps remove weights
# that barely contribute; only the final steps hit the weights that matter.
### answer_structured
# Dropout zeroes random units in training only, newly chosen at each step, and all units return at test time.
# Structured pruning removes the smallest-L2-norm filters, chosen by importance, after training, for good.
# Dropout makes the network robust to losing units, so a network trained with it prunes better.
### answer_removal
# At batch 1 latency dropped less than MACs since small convolutions are dominated by fixed costs (operator launch,
# memory traffic, Python). At batch 256 time tracked MACs more closely. Unstructured zeros only save time with a
# sparse format and a kernel or hardware that skips zeros.
