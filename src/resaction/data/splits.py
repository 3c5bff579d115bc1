"""Honest train/test splits and k-fold: clips of one group never sit on both sides.

Clips cut from one source video (UCF101 groups), of one person (``P1`` in ``PS7A1P1T2.avi``) or
one subject look alike, so a split by clip leaks and flatters accuracy. A group comes from
``group_by`` (a regex on the file name, or a function of the entry) or else from ``entry.group``;
with no groups each clip is its own group and the split is a plain stratified one. Groups are
dealt to the sides so that each class keeps about the asked proportion (stratification).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence

import numpy as np

from resaction.data.manifests import Manifest, VideoEntry
from resaction.errors import DatasetError

GroupBy = str | re.Pattern[str] | Callable[[VideoEntry], str] | None

GROUPED_NAME_PATTERNS = {
    r"_g(\d+)_": re.compile(r"_g\d+_"),
    r"P(\d+)": re.compile(r"P\d"),
    r"(?i)subject(\d+)": re.compile(r"(?i)subject\d"),
    r"(?i)person(\d+)": re.compile(r"(?i)person\d"),
}
_warned: set[str] = set()


def entry_groups(manifest: Manifest, group_by: GroupBy = None) -> list[str] | None:
    """The group of every entry, or ``None`` when the entries carry no groups."""
    if group_by is None:
        if any(entry.group is not None for entry in manifest):
            return [entry.group or f"<entry {i}>" for i, entry in enumerate(manifest)]
        return None
    if callable(group_by) and not isinstance(group_by, re.Pattern):
        return [str(group_by(entry)) for entry in manifest]
    try:
        pattern = re.compile(group_by) if isinstance(group_by, str) else group_by
    except re.error as error:
        raise DatasetError(f"group_by pattern '{group_by}' is not a valid regex: {error}") from None
    groups = []
    for entry in manifest:
        match = pattern.search(entry.path.name)
        group = None if match is None else match.group(1) if pattern.groups else match.group(0)
        if group is None:
            raise DatasetError(
                f"group_by pattern '{pattern.pattern}' gives no group for file {entry.path.name}: "
                "fix the pattern so every file name has one (a capture group that always matches)"
            )
        groups.append(group)
    return groups


def train_test_split(
    manifest: Manifest, test_size: float = 0.2, group_by: GroupBy = None, seed: int = 0
) -> tuple[Manifest, Manifest]:
    """Split into (train, test) with about ``test_size`` of each class in test, groups whole."""
    if not 0.0 < test_size < 1.0:
        raise DatasetError(f"test_size {test_size} must be between 0 and 1 (a fraction)")
    groups = _groups_or_warn(manifest, group_by)
    labels = np.asarray(manifest.labels)
    rng = np.random.default_rng(seed)
    if groups is None:
        test = _stratified_test_indices(labels, test_size, rng)
    else:
        assignment = _assign_groups(labels, groups, [1.0 - test_size, test_size], rng)
        test = np.flatnonzero(assignment == 1)
    train = np.setdiff1d(np.arange(len(manifest)), test)
    if len(train) == 0 or len(test) == 0:
        raise DatasetError(
            f"cannot split {len(manifest)} videos with test_size {test_size}: one side is empty "
            "(too few videos or groups)"
        )
    return manifest.subset(train.tolist()), manifest.subset(sorted(test.tolist()))


def kfold(
    manifest: Manifest, k: int = 5, group_by: GroupBy = None, seed: int = 0
) -> list[tuple[Manifest, Manifest]]:
    """``k`` (train, test) pairs whose test sides partition the data, stratified, groups whole."""
    if k < 2:
        raise DatasetError(f"k-fold needs k >= 2, got {k}")
    groups = _groups_or_warn(manifest, group_by)
    labels = np.asarray(manifest.labels)
    rng = np.random.default_rng(seed)
    if groups is None:
        if len(manifest) < k:
            raise DatasetError(f"cannot make {k} folds from {len(manifest)} videos: lower k")
        assignment = _stratified_folds(labels, k, rng)
    else:
        if len(set(groups)) < k:
            raise DatasetError(
                f"cannot make {k} folds from {len(set(groups))} groups: lower k (at most the "
                "number of groups)"
            )
        assignment = _assign_groups(labels, groups, [1.0 / k] * k, rng)
        if len(np.unique(assignment)) < k:
            raise DatasetError(
                f"cannot make {k} non-empty folds: a few groups hold most videos; lower k"
            )
    folds = []
    for fold in range(k):
        test = np.flatnonzero(assignment == fold).tolist()
        train = np.flatnonzero(assignment != fold).tolist()
        folds.append((manifest.subset(train), manifest.subset(test)))
    return folds


def without_groups(manifest: Manifest, group_by: GroupBy, exclude: Sequence[str]) -> Manifest:
    """The manifest without the videos of the ``exclude`` groups (all of them must exist)."""
    if not exclude:
        return manifest
    groups = entry_groups(manifest, group_by)
    if groups is None:
        raise DatasetError(
            f"cannot exclude groups {', '.join(exclude)}: the data has no groups "
            "(add groups.csv or pass --group-by)"
        )
    unknown = sorted(set(exclude) - set(groups))
    if unknown:
        raise DatasetError(f"group {unknown[0]!r} to exclude is not in the data")
    keep = [i for i, group in enumerate(groups) if group not in set(exclude)]
    return manifest.subset(keep)


def shared_groups(first: Manifest, second: Manifest, group_by: GroupBy = None) -> set[str]:
    """Groups found on both sides: a leak check for any pair of manifests."""
    a = entry_groups(first, group_by) or []
    b = entry_groups(second, group_by) or []
    return set(a) & set(b)


def _groups_or_warn(manifest: Manifest, group_by: GroupBy) -> list[str] | None:
    if len(manifest) == 0:
        raise DatasetError("cannot split an empty dataset")
    groups = entry_groups(manifest, group_by)
    if groups is None:
        _warn_if_names_look_grouped(manifest)
    return groups


def _warn_if_names_look_grouped(manifest: Manifest) -> None:
    names = [entry.path.name for entry in manifest]
    for suggestion, pattern in GROUPED_NAME_PATTERNS.items():
        if sum(bool(pattern.search(name)) for name in names) * 2 >= len(names):
            message = (
                f"splitting without groups, but file names like {names[0]!r} look grouped: "
                "clips of one group on both sides inflate accuracy; "
                f"pass --group-by '{suggestion}' (in Python: group_by=r\"{suggestion}\")"
            )
            if message not in _warned:
                _warned.add(message)
                warnings.warn(message, UserWarning, stacklevel=4)
            return


def _stratified_test_indices(
    labels: np.ndarray, test_size: float, rng: np.random.Generator
) -> np.ndarray:
    test = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        count = round(test_size * len(members))
        if len(members) > 1:
            count = min(max(count, 1), len(members) - 1)
        test.extend(members[:count].tolist())
    return np.asarray(sorted(test), dtype=np.int64)


def _stratified_folds(labels: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Deal each class's shuffled clips round-robin, continuing the count across classes."""
    assignment = np.empty(len(labels), dtype=np.int64)
    position = int(rng.integers(k))
    for label in np.unique(labels):
        for index in rng.permutation(np.flatnonzero(labels == label)):
            assignment[index] = position % k
            position += 1
    return assignment


def _assign_groups(
    labels: np.ndarray, groups: Sequence[str], targets: Sequence[float], rng: np.random.Generator
) -> np.ndarray:
    """Give whole groups to folds with target fractions ``targets``, keeping class proportions.

    Greedy, largest groups first (ties in random order): each group goes to the fold where it
    most reduces the squared gap between that fold's class counts and its target, with gaps
    divided by class size so that small classes count as much as large ones.
    """
    names, group_index = np.unique(np.asarray(groups, dtype=object), return_inverse=True)
    classes, label_index = np.unique(labels, return_inverse=True)
    per_group = np.zeros((len(names), len(classes)))
    np.add.at(per_group, (group_index, label_index), 1)
    class_totals = per_group.sum(axis=0)
    goal = np.outer(np.asarray(targets, dtype=float), class_totals)
    counts = np.zeros_like(goal)
    order = rng.permutation(len(names))
    order = order[np.argsort(-per_group[order].sum(axis=1), kind="stable")]
    fold_of_group = np.empty(len(names), dtype=np.int64)
    for group in order:
        before = ((counts - goal) ** 2 / class_totals).sum(axis=1)
        after = ((counts + per_group[group] - goal) ** 2 / class_totals).sum(axis=1)
        gain = after - before
        empty = counts.sum(axis=1) == 0
        gain[empty] -= 1e-9
        fold = int(np.argmin(gain))
        fold_of_group[group] = fold
        counts[fold] += per_group[group]
    return fold_of_group[group_index]
