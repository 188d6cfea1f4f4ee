"""The tree ensemble of the pixel classifier: fit, class probabilities, pickle-free bytes.

One backend, extremely randomised trees from scikit-learn, picked by the library race in
``benchmarks/bench_classifier.py`` (docs/benchmarks.md, "Pixel classifier"): on scribbles of
real data it was the most accurate of scikit-learn's random forest and extra trees,
LightGBM, XGBoost and CatBoost, and the fastest to train. Its trees are stored as plain
arrays (children, feature, threshold, class fractions) behind a JSON header, checked when
read: a model file holding them runs no code when loaded. Another backend registers in
``BACKENDS`` with the same four methods (fit, predict_proba, to_bytes, from_bytes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import InputError

# 50 trees, at most 8 levels, leaves of >= 3 pixels: chosen on a validation split of the
# race's training images (unpainted ones, not the held-out): as accurate as 100 unlimited
# trees on STEM, better on MetalDAM (strokes are few and alike: deep trees learn them by
# heart), 2-3x faster to predict and files of a few MB
EXTRA_TREES = 50
MAX_DEPTH = 8


_NODE_FIELDS = (
    ("left_child", "<i4"),
    ("right_child", "<i4"),
    ("feature", "<i2"),
    ("threshold", "<f4"),
)


@dataclass
class ExtraTreesForest:
    """Extremely randomised trees (scikit-learn), stored compactly: per node the two
    children, the feature, the threshold (float32) and the class fractions (float16), behind
    a JSON header - no pickle; the trees are rebuilt with scikit-learn's ``Tree`` state."""

    k: int
    rounds: int = EXTRA_TREES
    min_leaf: int = 3
    max_depth: int = MAX_DEPTH
    model: object | None = None

    name = "extra-trees"

    def fit(self, x: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None, threads=0):
        from sklearn.ensemble import ExtraTreesClassifier

        m = ExtraTreesClassifier(
            n_estimators=self.rounds,
            min_samples_leaf=self.min_leaf,
            max_depth=self.max_depth,
            n_jobs=threads or -1,
            random_state=0,
        ).fit(np.ascontiguousarray(x, np.float32), y, sample_weight=weight)
        # what is kept is what the file holds: predict from the compact trees from now on
        self.model = _rebuild(_pack(m))
        return self

    def predict_proba(self, x: np.ndarray, threads: int = 0) -> np.ndarray:
        if self.model is None:
            raise InputError("the pixel classifier has not been trained: train it first")
        self.model.n_jobs = threads or -1
        p = self.model.predict_proba(np.ascontiguousarray(x, np.float32))
        out = np.zeros((len(x), self.k), np.float32)
        out[:, self.model.classes_] = p  # a class absent from the strokes gets 0
        out /= out.sum(1, keepdims=True)  # the float16 class fractions sum to 1 - 1e-4
        return out

    def to_bytes(self) -> bytes:
        return _pack(self.model) if self.model is not None else b""

    @classmethod
    def from_bytes(cls, data: bytes, k: int, rounds: int = EXTRA_TREES) -> ExtraTreesForest:
        forest = cls(k=k, rounds=rounds)
        if data:
            forest.model = _rebuild(data)
        return forest


def _pack(m) -> bytes:
    """A fitted scikit-learn forest -> header length, JSON header, per tree its arrays."""
    import json

    trees = [e.tree_ for e in m.estimators_]
    head = {
        "n_features": int(m.n_features_in_),
        "classes": [int(c) for c in m.classes_],
        "nodes": [int(t.node_count) for t in trees],
        "depth": [int(t.max_depth) for t in trees],
    }
    parts = []
    for t in trees:
        for name, dtype in _NODE_FIELDS:
            parts.append(
                getattr(
                    t,
                    {"left_child": "children_left", "right_child": "children_right"}.get(
                        name, name
                    ),
                )
                .astype(dtype)
                .tobytes()
            )
        parts.append(t.value[:, 0, :].astype("<f2").tobytes())
    h = json.dumps(head).encode()
    return len(h).to_bytes(4, "little") + h + b"".join(parts)


def _rebuild(data: bytes):
    """Bytes of :func:`_pack` -> a scikit-learn ExtraTreesClassifier that predicts."""
    import json

    from sklearn.ensemble import ExtraTreesClassifier
    from sklearn.tree import ExtraTreeClassifier
    from sklearn.tree._tree import Tree

    try:
        n = int.from_bytes(data[:4], "little")
        head = json.loads(data[4 : 4 + n])
        nf, classes = int(head["n_features"]), np.asarray(head["classes"], np.int64)
        counts, depths = head["nodes"], head["depth"]
    except (ValueError, KeyError, TypeError) as e:
        raise _damaged(f"its header cannot be read ({type(e).__name__})") from None
    c, pos, estimators = len(classes), 4 + n, []
    for nodes, depth in zip(counts, depths, strict=True):
        tree = Tree(nf, np.array([c], dtype=np.intp), 1)
        state = tree.__getstate__()
        arr = np.zeros(nodes, dtype=state["nodes"].dtype)
        for name, dtype in _NODE_FIELDS:
            size = nodes * np.dtype(dtype).itemsize
            arr[name] = np.frombuffer(data, dtype, nodes, pos)
            pos += size
        values = np.frombuffer(data, "<f2", nodes * c, pos).astype(np.float64)
        pos += nodes * c * 2
        _check_tree(arr, nf, nodes)
        state.update(max_depth=depth, node_count=nodes, nodes=arr, values=values.reshape(-1, 1, c))
        tree.__setstate__(state)
        est = ExtraTreeClassifier()
        est.tree_, est.n_features_in_, est.n_outputs_ = tree, nf, 1
        est.classes_, est.n_classes_ = classes, c
        estimators.append(est)
    forest = ExtraTreesClassifier(n_estimators=len(estimators))
    forest.estimators_, forest.n_features_in_, forest.n_outputs_ = estimators, nf, 1
    forest.classes_, forest.n_classes_ = classes, c
    return forest


def _check_tree(arr: np.ndarray, nf: int, nodes: int) -> None:
    """Children inside the tree and features inside the feature set: a damaged or crafted
    file must not make the tree walk read outside its arrays."""
    leaf = arr["left_child"] == -1
    kids = np.concatenate([arr["left_child"][~leaf], arr["right_child"][~leaf]])
    ok = (
        np.all((kids > 0) & (kids < nodes))
        and np.all(arr["right_child"][leaf] == -1)
        and np.all((arr["feature"][~leaf] >= 0) & (arr["feature"][~leaf] < nf))
    )
    if not ok:
        raise _damaged("a tree points outside itself")


def _damaged(what: str):
    from ...errors import ModelFileError

    return ModelFileError(
        f"the pixel classifier's trees are damaged ({what}): use the original file or retrain"
    )


BACKENDS = {"extra-trees": ExtraTreesForest}
DEFAULT_BACKEND = "extra-trees"


def make_forest(k: int, backend: str = DEFAULT_BACKEND, rounds: int = EXTRA_TREES):
    if backend not in BACKENDS:
        raise InputError(
            f"unknown classifier backend {backend!r}: use one of {', '.join(BACKENDS)}"
        )
    return BACKENDS[backend](k=k, rounds=rounds)
