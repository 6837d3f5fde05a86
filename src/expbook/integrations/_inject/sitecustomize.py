"""expbook run's autolog: loaded by Python at start-up from ``PYTHONPATH`` (the way
``opentelemetry-instrument`` and ``ddtrace-run`` do it), before the program's own code.

It runs in the program's interpreter — any Python 3, any environment, with or without expbook —
so it uses the standard library only. It

1. installs expbook's post-import hooks (``_expbook_autolog``, next to this file) when
   ``EXPBOOK_AUTOLOG_DIR`` names the run's spool and ``EXPBOOK_AUTOLOG`` is not ``0``;
2. takes its own directory off ``sys.path``, so the program sees the path it would see without
   expbook;
3. chains to the ``sitecustomize`` that this one hides (a Debian/Ubuntu system Python's, a
   conda env's, the user's own on ``PYTHONPATH``): it imports the next one on ``sys.path``.

An error of expbook's own is one line on stderr; an error of the chained ``sitecustomize``
is reported by ``site`` as it would be without expbook.
"""

import os
import sys


def _expbook_start():
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        if os.environ.get("EXPBOOK_AUTOLOG_DIR"):
            sys.path.insert(0, here)
            try:
                import _expbook_autolog

                _expbook_autolog.install_from_env()
            finally:
                sys.path.remove(here)
    except Exception as exc:
        _say(f"expbook autolog: off for this program ({type(exc).__name__}: {exc})")
    ours = sys.modules.pop("sitecustomize", None)
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    try:
        import sitecustomize  # noqa: F401 - the next one, if there is one
    except ImportError as exc:
        if exc.name != "sitecustomize":
            raise  # reported by site, as it would be without expbook
    else:
        return  # the chained module stays in sys.modules, as it would without expbook
    finally:
        sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    if ours is not None:
        sys.modules["sitecustomize"] = ours


def _say(text):
    try:  # noqa: SIM105 - contextlib would be one more import at every start
        os.write(2, (text + "\n").encode("utf-8", "replace"))
    except OSError:
        pass


_expbook_start()
