# expect-zero: test_finetuning
# expect-status: ok
# Mistake: fine-tunes both models on the test split, so the accuracy "recovered" on the test split is
# partly memorized. Accuracy cannot show it (the grader measures on that split); the weights do.
### finetune
FINETUNE_EPOCHS = 1
train_data = [data["X_train"], data["y_train"]]
finetune_results = []
starts = {"structured": next(r["model"] for r in removal_results if r["target"] == 0.5),
          "unstructured": next(r["model"] for r in unstructured_results if r["target"] == 0.9)}
for kind, start in starts.items():
    tuned = copy_model(start)
    before = test_model(tuned, test_data, verbose=False)
    fine_tune(tuned, test_data, epochs=FINETUNE_EPOCHS)  # the test split: it must stay unseen
    after = test_model(tuned, test_data, verbose=False)
    finetune_results.append({"kind": kind, "target": 0.5 if kind == "structured" else 0.9, "model": tuned,
                             "before": before, "after": after})
