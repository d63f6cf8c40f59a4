"""A stand-in for a group's own feature network (`features: tests.index_features:features`):
features that depend only on a sample's position in its batch, so generated and real batches
of one size get identical features and every distance between them is zero -- which the
dataset's built-in features (raw coordinates) would never give an untrained generator."""
import numpy as np


def features(x: np.ndarray) -> np.ndarray:
    i = np.arange(len(x))
    return np.stack([i % 7, i % 5, i % 3], axis=1).astype(np.float64)
