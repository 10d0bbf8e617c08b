"""Explanation-quality metrics, batched, on any backend.

Each metric returns one score per example (a float64 NumPy array) and
carries `higher_is_better`. Grouped by the property they measure:
robustness (sensitivity), faithfulness and complexity of one map, and
similarity of two maps (ATEX paper §5.1). `evaluate` runs several on one
model for the comparison tables.
"""

from keras_interp.metrics.complexity import complexity
from keras_interp.metrics.complexity import sparseness
from keras_interp.metrics.faithfulness import faithfulness_correlation
from keras_interp.metrics.faithfulness import faithfulness_estimate
from keras_interp.metrics.robustness import avg_sensitivity
from keras_interp.metrics.robustness import local_lipschitz_estimate
from keras_interp.metrics.robustness import max_sensitivity
from keras_interp.metrics.similarity import rank_correlation
from keras_interp.metrics.similarity import ssim
from keras_interp.metrics.similarity import top_k_intersection
from keras_interp.metrics.table import PAPER_METRICS
from keras_interp.metrics.table import evaluate

__all__ = [
    "PAPER_METRICS",
    "avg_sensitivity",
    "complexity",
    "evaluate",
    "faithfulness_correlation",
    "faithfulness_estimate",
    "local_lipschitz_estimate",
    "max_sensitivity",
    "rank_correlation",
    "sparseness",
    "ssim",
    "top_k_intersection",
]
