"""README.md keeps up with the code: its first commands, and a row for every setting."""

import re

import pytest

from config import Config
from tests.conftest import ROOT

pytestmark = pytest.mark.nodb


def _readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def _configuration_rows() -> dict[str, str]:
    section = _readme().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `([A-Z_0-9]+)` \| ([^|]+) \|", section, flags=re.MULTILINE))


def test_readme_starts_with_make_run_and_make_test():
    first_block = _readme().split("```", 2)[1]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()[1:]]
    assert [c for c in commands if c] == ["make run", "make test"]


def test_every_environment_variable_of_config_py_has_a_row_with_its_default():
    source = (ROOT / "config.py").read_text(encoding="utf-8")
    read = set(re.findall(r'env_(?:str|int|float|bool)\(\s*"([A-Z_0-9]+)"', source))
    read |= set(re.findall(r'os\.environ\.get\(\s*"([A-Z_0-9]+)"', source))
    rows = _configuration_rows()
    assert read, "config.py reads its settings with env_*() / os.environ.get()"
    assert sorted(read - set(rows)) == [], "settings missing from README's Configuration table"
    assert sorted(set(rows) - read) == [], "README documents settings config.py does not read"
    assert all(default.strip() for default in rows.values())


def _documented_value(cell: str):
    """The default a table cell states, or None when it only describes it in words."""
    literal = re.match(r"`([^`]*)`", cell)
    if literal:
        return literal.group(1)
    words = cell.split(" (")[0].strip()
    return {"(none)": "", "off": False, "on": True}.get(words)


def test_documented_defaults_are_the_real_ones(monkeypatch):
    rows = _configuration_rows()
    for name in rows:
        monkeypatch.delenv(name, raising=False)
    config = Config()
    checked = 0
    for name, cell in rows.items():
        documented = _documented_value(cell.strip())
        if documented is None or name in {"DATABASE_URL", "MAILER_INSTANCE_DIR"}:
            continue  # described in words, or an absolute path of this clone
        real = getattr(config, "DEBUG" if name == "FLASK_DEBUG" else name)
        if isinstance(real, list):  # comma-separated in the environment
            real = ",".join(real)
        if isinstance(real, bool) or isinstance(documented, bool):
            assert real is documented, name
        elif isinstance(real, int | float):
            assert float(documented) == real, name
        else:
            assert real == documented, name
        checked += 1
    assert checked > 40
