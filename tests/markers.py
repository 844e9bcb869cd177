"""Skip markers shared by the test modules (imported as ``from markers import needs_toy``)."""
from __future__ import annotations

import pytest

from lrkit.models.pairs import PairNotPreparedError, resolve_pair


def toy_pair_missing() -> bool:
    """True when the bundled toy pair (data/toy) is not there to load."""
    try:
        resolve_pair("toy")
    except PairNotPreparedError:
        return True
    return False


needs_toy = pytest.mark.skipif(toy_pair_missing(), reason="the bundled toy pair (data/toy) is missing; "
                               "rebuild it with `lrkit build-toy`")
