import numpy as np
import pytest

from pipeline.adapter.selection import keep_mask


def counts(labels, mask):
    return np.bincount(labels[mask], minlength=labels.max() + 1).tolist()


def test_class_balanced_keeps_exact_share_of_every_class():
    labels = np.repeat([0, 1, 2], [30, 30, 10])
    assert counts(labels, keep_mask(labels, 0.5, "class_balanced", seed=0)) == [15, 15, 5]
    assert counts(labels, keep_mask(labels, 0.1, "class_balanced", seed=3)) == [3, 3, 1]
    assert counts(labels, keep_mask(labels, 0.0, "class_balanced", seed=0)) == [0, 0, 0]
    assert counts(labels, keep_mask(labels, 1.0, "class_balanced", seed=0)) == [30, 30, 10]


def test_selection_is_seeded_and_nested_across_ratios():
    labels = np.repeat(np.arange(5), 20)
    a = keep_mask(labels, 0.6, "class_balanced", seed=7)
    assert np.array_equal(a, keep_mask(labels, 0.6, "class_balanced", seed=7))
    assert not np.array_equal(a, keep_mask(labels, 0.6, "class_balanced", seed=8))
    low = keep_mask(labels, 0.3, "class_balanced", seed=7)
    assert np.all(a[low])  # what 30% keeps, 60% keeps too


def test_global_differs_from_class_balanced_on_unbalanced_classes():
    labels = np.repeat([0, 1], [90, 10])
    balanced = [counts(labels, keep_mask(labels, 0.1, "class_balanced", s))[1] for s in range(20)]
    global_ = [counts(labels, keep_mask(labels, 0.1, "global", s))[1] for s in range(20)]
    assert balanced == [1] * 20
    assert all(sum(counts(labels, keep_mask(labels, 0.1, "global", s))) == 10 for s in range(20))
    assert len(set(global_)) > 1  # the small class's share is left to chance
    assert 0 in global_  # ... and sometimes it loses all its images


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="image_ratio"):
        keep_mask(np.zeros(3, int), 1.5, "global", 0)
    with pytest.raises(ValueError, match="selection"):
        keep_mask(np.zeros(3, int), 0.5, "random", 0)


def test_validation_slice_is_class_balanced_seeded_and_never_empties_a_class():
    from pipeline.adapter.selection import validation_mask

    labels = np.repeat([0, 1, 2, 3], [30, 30, 10, 2])
    held = validation_mask(labels, 0.1, seed=0)
    assert counts(labels, held) == [3, 3, 1, 1]  # at least one per class, never all of a class
    assert np.array_equal(held, validation_mask(labels, 0.1, seed=0))
    assert not np.array_equal(held, validation_mask(labels, 0.1, seed=1))
    assert counts(labels, validation_mask(labels, 0.5, seed=0)) == [15, 15, 5, 1]
    # its own draw: not the images keep_mask would replace first
    assert not np.array_equal(held, ~keep_mask(labels, 0.9, "class_balanced", seed=0))
    with pytest.raises(ValueError, match="validation fraction"):
        validation_mask(labels, 0.0, seed=0)
