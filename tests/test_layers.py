"""The import graph has a top and a bottom: the `flowerbot` command (flowerbot/) imports bot,
web, model_training and storage; the bot and the web page import model_training and storage;
model_training and storage import neither the bot, nor the web page, nor the command.

Read off the source (every import statement, relative ones resolved, and importlib or
__import__ with a literal name), so an import inside a function or under TYPE_CHECKING counts
as much as one at the top of a module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Each package, and the packages it must not import.
FORBIDDEN = {
    "model_training": {"bot", "web", "flowerbot"},
    "storage": {"bot", "web", "flowerbot"},
    "bot": {"flowerbot"},
    "web": {"flowerbot"},
}


def module_name(path: Path, root: Path) -> list[str]:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def imported(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, module) for every module the file imports, in the order of the lines."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(path, root)
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # from . import x, from ..y import z
                base = package[: len(package) - node.level + 1]
                name = ".".join([*base, *([node.module] if node.module else [])])
            else:
                name = node.module or ""
            found.append((node.lineno, name))
        elif isinstance(node, ast.Call) and (name := literal_import(node)):
            found.append((node.lineno, name))
    return sorted(found)


def literal_import(call: ast.Call) -> str | None:
    """The name in importlib.import_module("x.y"), import_module("x.y") or __import__("x.y")."""
    func = call.func
    callee = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
    if callee not in ("import_module", "__import__") or not call.args:
        return None
    first = call.args[0]
    return first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None


def violations(package: str, forbidden: set[str], root: Path = ROOT) -> list[str]:
    return [
        f"{path.relative_to(root)}:{line} imports {name}"
        for path in sorted((root / package).rglob("*.py"))
        for line, name in imported(path, root)
        if name.split(".")[0] in forbidden
    ]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_package_imports_one_above_it(package) -> None:
    assert violations(package, FORBIDDEN[package]) == []


def test_the_check_sees_imports_of_every_kind(tmp_path) -> None:
    """The command does import the packages below it, and the reader finds absolute, relative
    and importlib imports, inside functions too."""
    assert {"bot", "web", "model_training"} <= {
        name.split(".")[0] for _, name in imported(ROOT / "flowerbot" / "cli.py")
    }
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "sub" / "mod.py").write_text(
        "import importlib\n"
        "from .. import other\n"
        "from ..sibling import thing\n"
        "def later():\n"
        "    import bot.i18n\n"
        "    importlib.import_module('web.server')\n"
    )
    names = [name for _, name in imported(tmp_path / "pkg" / "sub" / "mod.py", tmp_path)]
    assert names == ["importlib", "pkg", "pkg.sibling", "bot.i18n", "web.server"]
    assert violations("pkg", {"bot", "web"}, tmp_path) == [
        "pkg/sub/mod.py:5 imports bot.i18n",
        "pkg/sub/mod.py:6 imports web.server",
    ]
