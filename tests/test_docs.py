"""The documentation: it builds without warnings, lists every public name, and its
examples run."""

import doctest
import importlib
import inspect
import pathlib
import re
import subprocess
import sys

import pytest

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"
DOCUMENTED_MODULES = ["groupconv", "groupconv.tf", "groupconv.tricks", "groupconv.reference"]


def _public_names(module_name):
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    if names is None:
        names = [
            name for name, obj in vars(module).items()
            if not name.startswith("_") and getattr(obj, "__module__", None) == module_name
        ]
    return [f"{module_name}.{name}" for name in names]


def _documented_names():
    """Fully qualified names of the api.rst entries (auto* directives and py:data)."""
    names, current = set(), "groupconv"
    text = (DOCS / "api.rst").read_text(encoding="utf-8")
    for directive, argument in re.findall(r"^\.\. ([\w:]+):: (\S+)", text, flags=re.M):
        if directive in ("module", "currentmodule", "automodule", "py:module"):
            current = argument
            names.add(argument)
        elif directive in ("autofunction", "autoclass", "autodata", "py:data"):
            names.add(argument if "." in argument else f"{current}.{argument}")
    return names


@pytest.mark.parametrize("module_name", DOCUMENTED_MODULES)
def test_api_page_lists_every_public_name(module_name):
    missing = set(_public_names(module_name)) - _documented_names()
    assert not missing, f"add these to docs/api.rst: {sorted(missing)}"


def test_api_page_names_exist():
    for name in _documented_names():
        module_name, _, attribute = name.rpartition(".")
        try:
            importlib.import_module(name)
            continue
        except ImportError:
            pass
        module = importlib.import_module(module_name)
        assert hasattr(module, attribute), f"docs/api.rst documents {name}, which does not exist"
        assert inspect.getdoc(getattr(module, attribute)) or attribute == "__version__"


@pytest.mark.parametrize("page", ["usage.rst"])
def test_user_guide_examples_run(page):
    result = doctest.testfile(
        str(DOCS / page),
        module_relative=False,
        optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS,
        verbose=False,
    )
    assert result.attempted > 0
    assert result.failed == 0, f"{result.failed} example(s) in docs/{page} failed (see stdout)"


@pytest.mark.docs
def test_sphinx_build_has_no_warnings(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("numpydoc")
    command = [
        sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
        "-d", str(tmp_path / "doctrees"), str(DOCS), str(tmp_path / "html"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "html" / "api.html").is_file()
