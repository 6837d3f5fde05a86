"""``import expbook`` stays light: heavy libraries load only when they are needed."""

from __future__ import annotations

import json

from tests.helpers import run_python

HEAVY = ("sqlalchemy", "alembic", "pandas", "numpy", "pyarrow", "fastapi", "uvicorn",
         "starlette", "matplotlib", "scipy", "sklearn", "optuna", "rich", "click", "psutil",
         "pynvml", "psycopg")  # fmt: skip


def loaded_after(statement: str) -> list[str]:
    code = f"import sys, json\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_import_expbook_loads_no_heavy_library() -> None:
    modules = loaded_after("import expbook")
    assert "expbook" in modules
    heavy = sorted({m.split(".")[0] for m in modules} & set(HEAVY))
    assert heavy == [], f"import expbook pulled in {heavy}"


def test_the_cli_help_does_not_load_the_store() -> None:
    modules = loaded_after(
        "from expbook.cli.main import cli\n"
        "try:\n    cli.main(['--help'], standalone_mode=False)\nexcept SystemExit:\n    pass"
    )
    assert "sqlalchemy" not in modules and "rich" not in modules


def test_opening_a_store_loads_sqlalchemy_but_not_alembic_or_pandas(tmp_path) -> None:
    store = tmp_path / "s.db"
    run_python(f"import expbook; expbook.open_store({str(store)!r})")  # create it first
    modules = loaded_after(f"import expbook; expbook.open_store({str(store)!r}).runs()")
    assert "sqlalchemy" in modules
    assert "alembic" not in modules and "pandas" not in modules and "numpy" not in modules
