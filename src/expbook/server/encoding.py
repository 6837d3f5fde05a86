"""JSON for the API: NaN and infinities survive, as the strings ``"NaN"``, ``"Infinity"`` and
``"-Infinity"`` (what JavaScript's ``Number()`` reads back), since JSON has no such numbers and
a metric's NaN is a result worth showing, not an error."""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.responses import JSONResponse

_NONFINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by its string."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else _NONFINITE[value]
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


def float_list(values: Any) -> list[Any]:
    """A numpy array or float sequence as a JSON-ready list (fast for the finite case)."""
    import numpy as np

    array = np.asarray(values, dtype=np.float64)
    if np.isfinite(array).all():
        return array.tolist()
    return [json_safe(item) for item in array.tolist()]


class ApiJSON(JSONResponse):
    """A JSON response whose non-finite floats are strings (see the module docstring)."""

    def render(self, content: Any) -> bytes:
        try:
            text = json.dumps(content, allow_nan=False, separators=(",", ":"))
        except ValueError:  # a non-finite float somewhere: the slower, complete walk
            text = json.dumps(json_safe(content), allow_nan=False, separators=(",", ":"))
        return text.encode()
