"""Metrics: accuracy (and the accuracy each loss declares), top-k accuracy, the confusion
matrix, precision/recall/F1, and streaming versions that accumulate over batches.

    fnn.metrics.accuracy(scores, labels)                     # argmax(scores) == label
    fnn.metrics.top_k_accuracy(scores, labels, k)            # label among the k highest
    fnn.metrics.confusion_matrix(predicted_ids, labels, num_classes)   # rows: true
    fnn.metrics.precision_recall_f1(confusion, average="macro")        # dict
    fnn.metrics.streaming.top_k_accuracy(5)                  # init / update / result

Each equals scikit-learn's function of the same name (`accuracy_score`,
`top_k_accuracy_score`, `confusion_matrix`, `precision_score` / `recall_score` /
`f1_score` with `zero_division` giving 0). The modules:

- `fnn.metrics.rules`: `accuracy`, and how a loss declares the accuracy `fit`
  reports (`declare_accuracy`, `AccuracyRule`, `binary`, `CATEGORICAL`);
- `fnn.metrics.classification`: top-k accuracy, confusion matrix, precision/recall/F1;
- `fnn.metrics.streaming`: the `Metric` accumulators that `fit(metrics=[...])` and
  `fnn.train.evaluate(..., metrics=[...])` run over the validation batches.
"""
from fnn.metrics import classification, rules, streaming
from fnn.metrics.classification import confusion_matrix, precision_recall_f1, top_k_accuracy
from fnn.metrics.rules import (
    CATEGORICAL,
    CLASS_IDS,
    AccuracyRule,
    accuracy,
    accuracy_rule,
    binary,
    categorical_correct,
    declare_accuracy,
)
from fnn.metrics.streaming import Metric

__all__ = ["AccuracyRule", "CATEGORICAL", "CLASS_IDS", "binary", "categorical_correct",
           "accuracy_rule", "declare_accuracy", "accuracy", "top_k_accuracy",
           "confusion_matrix", "precision_recall_f1", "Metric", "classification", "rules",
           "streaming"]
