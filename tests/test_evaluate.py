import math

import torch

from pipeline.evaluate.metrics import confusion_counts, per_class_accuracy


def one_hot_logits(predictions, num_classes):
    """Logits whose argmax is the given prediction: (H, N, C)."""
    return torch.nn.functional.one_hot(torch.tensor(predictions), num_classes).float()


def test_per_class_accuracy_and_confusion_on_hand_made_predictions():
    labels = torch.tensor([0, 0, 1, 2, 2])
    logits = one_hot_logits([[0, 1, 1, 2, 0], [0, 0, 1, 2, 2]], num_classes=4)
    accuracy = per_class_accuracy(logits, labels, 4)
    assert accuracy[0, :3].tolist() == [50.0, 100.0, 50.0]
    assert accuracy[1, :3].tolist() == [100.0, 100.0, 100.0]
    assert math.isnan(accuracy[0, 3])  # class 3 has no test image
    confusion = confusion_counts(logits, labels, 4)
    assert confusion[0].tolist() == [[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]
    assert torch.equal(confusion[1].diagonal(), torch.tensor([2, 1, 2, 0]))
    assert confusion.sum(dim=(1, 2)).tolist() == [5, 5]
