"""`expbook run`: record any program without changing its code."""
