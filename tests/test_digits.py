"""fnn.datasets.digits: scikit-learn's 8x8 digits as NHWC images."""
import sys

import numpy as np
import pytest

from fnn import datasets


def test_digits_shape_and_range():
    x, y = datasets.digits()
    assert x.shape == (1797, 8, 8, 1) and x.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int32
    assert x.min() == 0.0 and x.max() == 1.0
    assert set(np.unique(y)) == set(range(10))


def test_digits_without_sklearn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"pip install 'fnn\[data\]'"):
        datasets.digits()
