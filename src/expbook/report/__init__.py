"""The lab notebook: experiments as questions, generated markdown reports, honest statistics.

``stats`` (repeats, confidence intervals, Welch's t-test) and the report renderer; used by
``expbook report`` and ``expbook compare``. Nothing here is imported by ``import expbook``.
"""
