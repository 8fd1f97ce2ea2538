"""2-D t-SNE embeddings of penultimate features, coloured by shot group in the plots."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from nbn_tutorial.diagnosis.outputs import ModelOutputs
from nbn_tutorial.diagnosis.tables import class_groups
from nbn_tutorial.errors import UserError


def tsne_embedding(features: np.ndarray, seed: int = 0, max_points: int = 2000, perplexity: float = 30.0,
                   threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """2-D t-SNE of ``features`` [N, D]: (embedding [M, 2], indices [M] of the rows used).

    More than ``max_points`` rows are subsampled uniformly without replacement, deterministically given
    ``seed``; the perplexity is capped below M/3 so that small sets work. ``threads`` caps the OpenMP/BLAS
    threads (``threads=1`` is several times faster on a busy machine with few cores, where t-SNE's
    per-iteration barriers stall); ``None`` keeps the libraries' defaults.
    """
    from sklearn.manifold import TSNE   # deferred: scikit-learn: heavy, only this function needs it
    from threadpoolctl import threadpool_limits   # deferred: only t-SNE needs it

    features = np.asarray(features, dtype=np.float32)
    if len(features) < 3:
        raise UserError(f"t-SNE needs at least 3 points, got {len(features)}")
    indices = np.arange(len(features))
    if len(features) > max_points:
        indices = np.sort(np.random.default_rng(seed).choice(len(features), size=max_points, replace=False))
    perplexity = min(perplexity, (len(indices) - 1) / 3)
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
    with threadpool_limits(threads):
        embedding = tsne.fit_transform(features[indices])
    return embedding, indices


def tsne_table(outputs: ModelOutputs, groups: Mapping[str, Sequence[int]], seed: int = 0, max_points: int = 2000,
               threads: int | None = None) -> pd.DataFrame:
    """t-SNE of the penultimate features as a table: ``x``, ``y``, ``index``, ``target``, ``group``."""
    embedding, indices = tsne_embedding(outputs.features, seed=seed, max_points=max_points, threads=threads)
    targets = outputs.targets[indices]
    return pd.DataFrame({"x": embedding[:, 0], "y": embedding[:, 1], "index": indices, "target": targets,
                         "group": class_groups(groups, outputs.num_classes)[targets].astype(str)})
