# expect-zero: test_removal_models test_removal_function
# expect-status: ok
# Mistake: removes the surviving filters and keeps the zeroed ones (the mask read the wrong way round).
# At target 0.5 the filter counts even look right; the logits do not.
### remove_filters
def remove_filters(model):
    removed = copy_model(model)
    for m in removed.modules():
        if hasattr(m, "weight_mask"):
            prune.remove(m, "weight")
    graph = tp.DependencyGraph().build_dependency(removed, example_inputs=torch.zeros(1, 3, 32, 32))
    for conv in [m for m in removed.modules() if isinstance(m, nn.Conv2d)]:
        alive = (conv.weight.detach().flatten(1) != 0).any(dim=1).nonzero().flatten().tolist()
        if alive and len(alive) < conv.out_channels:
            graph.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=alive).prune()
    return removed


removal_results = []
for r in structured_results:
    removed = remove_filters(r["model"])
    macs, params = count_macs(removed)
    accuracy = test_model(removed, test_data, mode=mode)
    removal_results.append({"target": r["target"], "model": removed, "macs": macs, "accuracy": accuracy})
