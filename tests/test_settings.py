"""``expbook.toml``: finding it, reading the [run] table, and one-line errors naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from expbook.errors import InvalidValueError
from expbook.runner.settings import (
    RunSettings,
    find_settings_file,
    load_settings,
    normalize_flag,
)

FULL_EXAMPLE = """\
[run]
booleans = ["amp", "fast"]
lists = ["features"]
strings = ["note"]
ignore = ["gematria_checkpoint_dir", "output-dir"]
ignore_metrics = ["Seed", " *_time", "batch_size"]

[[run.patterns]]
regex = '^val (?P<key>\\w+): (?P<value>\\S+)'

[[run.patterns]]
regex = 'BLEU = (?P<value>[\\d.]+)'
key = "bleu"
kind = "summary"
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str) -> str:
    path = write(tmp_path / "expbook.toml", text)
    with pytest.raises(InvalidValueError) as info:
        load_settings(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    return message[len(str(path)) :]


# --- RunSettings and normalize_flag ---------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "expected"),
    [("batch-size", "batch_size"), ("--Batch-Size", "batch_size"), ("-lr", "lr"), ("a_b", "a_b")],
)
def test_normalize_flag(flag: str, expected: str) -> None:
    assert normalize_flag(flag) == expected


def test_defaults_are_empty() -> None:
    settings = RunSettings()
    assert (settings.booleans, settings.lists, settings.strings, settings.ignore) == (
        frozenset(),
        frozenset(),
        frozenset(),
        frozenset(),
    )
    assert settings.patterns == ()
    assert settings.source is None


def test_flag_names_are_normalised_on_construction() -> None:
    settings = RunSettings(
        booleans=frozenset({"--Dry-Run"}),
        lists=frozenset({"Features"}),
        strings=frozenset({"my-note"}),
        ignore=frozenset({"-o"}),
    )
    assert settings.booleans == {"dry_run"}
    assert settings.lists == {"features"}
    assert settings.strings == {"my_note"}
    assert settings.ignore == {"o"}


def test_settings_are_frozen() -> None:
    with pytest.raises(AttributeError):
        RunSettings().booleans = frozenset({"x"})  # type: ignore[misc]


# --- find_settings_file ---------------------------------------------------------------------


def test_finds_the_file_in_cwd(tmp_path: Path) -> None:
    path = write(tmp_path / "expbook.toml", "")
    assert find_settings_file(tmp_path) == path.resolve()


def test_finds_the_file_at_the_git_root_from_a_subdirectory(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    path = write(tmp_path / "expbook.toml", "")
    deep = tmp_path / "src" / "models"
    deep.mkdir(parents=True)
    assert find_settings_file(deep) == path.resolve()
    assert find_settings_file(str(deep)) == path.resolve()


def test_cwd_wins_over_the_git_root(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    write(tmp_path / "expbook.toml", "")
    local = write(tmp_path / "exp" / "expbook.toml", "")
    assert find_settings_file(tmp_path / "exp") == local.resolve()


def test_a_git_file_marks_the_root_as_in_worktrees(tmp_path: Path) -> None:
    write(tmp_path / ".git", "gitdir: /elsewhere/.git/worktrees/x\n")
    path = write(tmp_path / "expbook.toml", "")
    (tmp_path / "sub").mkdir()
    assert find_settings_file(tmp_path / "sub") == path.resolve()


def test_stops_at_the_nearest_git_root(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    write(tmp_path / "expbook.toml", "")
    (tmp_path / "vendor" / "lib" / ".git").mkdir(parents=True)
    (tmp_path / "vendor" / "lib" / "src").mkdir()
    assert find_settings_file(tmp_path / "vendor" / "lib" / "src") is None


def test_directories_between_cwd_and_the_git_root_are_not_searched(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    write(tmp_path / "middle" / "expbook.toml", "")
    (tmp_path / "middle" / "deep").mkdir()
    assert find_settings_file(tmp_path / "middle" / "deep") is None


def test_none_outside_a_git_tree_without_a_file(tmp_path: Path) -> None:
    write(tmp_path / "expbook.toml", "")
    (tmp_path / "sub").mkdir()
    assert find_settings_file(tmp_path / "sub") is None


def test_a_directory_named_expbook_toml_is_not_a_settings_file(tmp_path: Path) -> None:
    (tmp_path / "expbook.toml").mkdir()
    assert find_settings_file(tmp_path) is None


# --- load_settings --------------------------------------------------------------------------


def test_none_gives_the_defaults() -> None:
    assert load_settings(None) == RunSettings()


def test_reads_the_full_example(tmp_path: Path) -> None:
    path = write(tmp_path / "expbook.toml", FULL_EXAMPLE)
    assert load_settings(path) == RunSettings(
        booleans=frozenset({"amp", "fast"}),
        lists=frozenset({"features"}),
        strings=frozenset({"note"}),
        ignore=frozenset({"gematria_checkpoint_dir", "output_dir"}),
        ignore_metrics=("seed", "*_time", "batch_size"),
        patterns=(
            {"regex": r"^val (?P<key>\w+): (?P<value>\S+)"},
            {"regex": r"BLEU = (?P<value>[\d.]+)", "key": "bleu", "kind": "summary"},
        ),
        source=str(path),
    )


def test_flag_names_are_read_in_normalised_form(tmp_path: Path) -> None:
    path = write(tmp_path / "expbook.toml", '[run]\nbooleans = ["Dry-Run", "--fast"]\n')
    assert load_settings(str(path)).booleans == {"dry_run", "fast"}


@pytest.mark.parametrize(
    "text", ["", "title = 'other tools may have tables here'\n[store]\nurl = 'x'\n", "[run]\n"]
)
def test_a_file_without_run_settings_gives_defaults_with_a_source(
    tmp_path: Path, text: str
) -> None:
    path = write(tmp_path / "expbook.toml", text)
    assert load_settings(path) == RunSettings(source=str(path))


def test_patterns_only(tmp_path: Path) -> None:
    path = write(tmp_path / "expbook.toml", "[[run.patterns]]\nregex = 'loss=(?P<value>\\S+)'\n")
    settings = load_settings(path)
    assert settings.patterns == ({"regex": "loss=(?P<value>\\S+)"},)
    assert settings.booleans == frozenset()


def test_invalid_toml_names_the_line(tmp_path: Path) -> None:
    assert load_error(tmp_path, "[run]\nbooleans = []\nlists\n") == (
        " line 3, column 6: Expected '=' after a key in a key/value pair"
    )


def test_invalid_toml_at_the_end(tmp_path: Path) -> None:
    assert load_error(tmp_path, "[run]\nbooleans = [") == ": Invalid value (at end of document)"


def test_unknown_key_in_run(tmp_path: Path) -> None:
    assert load_error(tmp_path, "[run]\nboolean = ['amp']\n") == (
        ": unknown key 'boolean' in [run] "
        "(known: booleans, ignore, ignore_metrics, lists, patterns, strings)"
    )


def test_run_must_be_a_table(tmp_path: Path) -> None:
    assert load_error(tmp_path, "run = 3\n") == ": run must be a table ([run]), not 3"


@pytest.mark.parametrize("field", ["booleans", "lists", "strings", "ignore"])
def test_a_flag_set_given_as_a_string(tmp_path: Path, field: str) -> None:
    assert load_error(tmp_path, f"[run]\n{field} = 'amp'\n") == (
        f": [run] {field} must be a list of flag names, not 'amp'"
    )


@pytest.mark.parametrize(
    ("value", "shown"), [("['amp', 1]", "['amp', 1]"), ("['']", "['']"), ("['--']", "['--']")]
)
def test_a_flag_set_with_a_bad_item(tmp_path: Path, value: str, shown: str) -> None:
    assert load_error(tmp_path, f"[run]\nbooleans = {value}\n") == (
        f": [run] booleans must be a list of flag names, not {shown}"
    )


def test_a_long_bad_value_is_shortened(tmp_path: Path) -> None:
    message = load_error(tmp_path, f"[run]\nignore = '{'x' * 200}'\n")
    assert message == f": [run] ignore must be a list of flag names, not '{'x' * 56}..."


@pytest.mark.parametrize(("value", "shown"), [("'seed'", "'seed'"), ("['seed', 3]", "['seed', 3]"),
                                              ("['  ']", "['  ']")])  # fmt: skip
def test_ignore_metrics_must_be_a_list_of_patterns(tmp_path: Path, value: str, shown: str) -> None:
    assert load_error(tmp_path, f"[run]\nignore_metrics = {value}\n") == (
        f': [run] ignore_metrics must be a list of metric key patterns ("seed", "*_time"), '
        f"not {shown}"
    )


def test_a_flag_in_both_strings_and_lists(tmp_path: Path) -> None:
    text = "[run]\nstrings = ['note', 'Tags']\nlists = ['tags']\n"
    assert load_error(tmp_path, text) == ": [run] 'tags' is in both strings and lists"


def test_patterns_must_be_an_array_of_tables(tmp_path: Path) -> None:
    assert load_error(tmp_path, "[run]\npatterns = 'x'\n") == (
        ": [run] patterns must be an array of tables ([[run.patterns]]), not 'x'"
    )


def test_a_pattern_must_be_a_table(tmp_path: Path) -> None:
    assert load_error(tmp_path, "[run]\npatterns = ['x']\n") == (
        ": [[run.patterns]] #1 must be a table, not 'x'"
    )


def test_a_pattern_without_regex(tmp_path: Path) -> None:
    text = "[[run.patterns]]\nregex = 'a'\n[[run.patterns]]\nkey = 'loss'\n"
    assert load_error(tmp_path, text) == ": [[run.patterns]] #2 has no regex"


def test_a_pattern_with_an_unknown_key(tmp_path: Path) -> None:
    assert load_error(tmp_path, "[[run.patterns]]\nregex = 'a'\nkidn = 'summary'\n") == (
        ": [[run.patterns]] #1 has unknown key 'kidn' (known: key, kind, regex)"
    )


def test_a_pattern_with_a_bad_kind(tmp_path: Path) -> None:
    assert load_error(tmp_path, "[[run.patterns]]\nregex = 'a'\nkind = 'metric'\n") == (
        ": [[run.patterns]] #1 kind must be 'series' or 'summary', not 'metric'"
    )


@pytest.mark.parametrize(("field", "value"), [("regex", "3"), ("key", "['a']"), ("kind", "1")])
def test_a_pattern_value_that_is_not_a_string(tmp_path: Path, field: str, value: str) -> None:
    table = {"regex": "'a'", field: value}
    text = "[[run.patterns]]\n" + "".join(f"{k} = {v}\n" for k, v in table.items())
    assert load_error(tmp_path, text) == (
        f": [[run.patterns]] #1 {field} must be a string, not {value}"
    )


def test_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "expbook.toml"
    with pytest.raises(InvalidValueError, match=r"expbook\.toml: cannot read it: No such file"):
        load_settings(path)


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "expbook.toml"
    path.write_bytes(b"[run]\nstrings = ['\xff']\n")
    with pytest.raises(InvalidValueError, match=r"expbook\.toml: not UTF-8 text"):
        load_settings(path)


def test_the_error_is_a_value_error(tmp_path: Path) -> None:
    path = write(tmp_path / "expbook.toml", "[run]\nbooleans = 1\n")
    with pytest.raises(ValueError, match=r"^.*expbook\.toml: \[run\] booleans must be a list"):
        load_settings(path)


# --- expbook rerun --set follows the settings -----------------------------------------------


def test_rerun_set_follows_the_booleans_and_sets_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import expbook
    from expbook.cli.main import run_cli
    from expbook.store import RunSpec

    write(tmp_path / "expbook.toml", '[run]\nbooleans = ["amp"]\n')
    url = str(tmp_path / "runs.db")
    store = expbook.open_store(url)
    command = ["CUDA_VISIBLE_DEVICES=1", "python", "train.py", "--amp", "data.csv", "--lr", "1"]
    store.create_run(RunSpec(name="train", command=command, cwd=str(tmp_path)))
    store.close()
    assignments = ["--set", "amp=false", "--set", "lr=2", "--set", "env.CUDA_VISIBLE_DEVICES=0"]
    with pytest.raises(SystemExit) as exited:
        run_cli(["rerun", "1", *assignments, "--dry-run", "--store", url])
    assert exited.value.code == 0
    expected = "CUDA_VISIBLE_DEVICES=0 python train.py data.csv --lr 2"
    assert capsys.readouterr().out == f"cd {tmp_path} && {expected}\n"


def test_rerun_set_goes_on_without_a_broken_expbook_toml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import expbook
    from expbook.cli.main import run_cli
    from expbook.store import RunSpec

    write(tmp_path / "expbook.toml", "[run\n")
    url = str(tmp_path / "runs.db")
    store = expbook.open_store(url)
    store.create_run(RunSpec(name="t", command=["p", "--amp", "x"], cwd=str(tmp_path)))
    store.close()
    with pytest.raises(SystemExit) as exited:
        run_cli(["rerun", "1", "--set", "amp=false", "--dry-run", "--store", url])
    assert exited.value.code == 0
    out, err = capsys.readouterr()
    assert out == f"cd {tmp_path} && p --amp false\n"  # without booleans, x was amp's value
    assert "expbook.toml" in err and "--set goes on without it" in err
