# expect-zero: test_finetuning
# expect-status: ok
# Mistake: makes the unstructured model's zeros permanent with prune.remove before fine-tuning, so
# training brings them back: the 90% model is no longer 90% sparse.
### finetune
FINETUNE_EPOCHS = 1
train_data = [data["X_train"], data["y_train"]]
finetune_results = []
starts = {"structured": next(r["model"] for r in removal_results if r["target"] == 0.5),
          "unstructured": next(r["model"] for r in unstructured_results if r["target"] == 0.9)}
for kind, start in starts.items():
    tuned = copy_model(start)
    for m in tuned.modules():
        if hasattr(m, "weight_mask"):
            prune.remove(m, "weight")  # the masks are gone: zeros are ordinary weights now
    before = test_model(tuned, test_data, verbose=False)
    fine_tune(tuned, train_data, epochs=FINETUNE_EPOCHS)
    after = test_model(tuned, test_data, verbose=False)
    finetune_results.append({"kind": kind, "target": 0.5 if kind == "structured" else 0.9, "model": tuned,
                             "before": before, "after": after})
