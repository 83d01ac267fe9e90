"""Sphinx configuration for the groupconv documentation.

Build with ``python -m sphinx -W --keep-going -b html docs docs/_build/html``.
"""

import os
import sys

# Document the checkout this file belongs to, installed or not.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "src")))

import groupconv  # noqa: E402

project = "groupconv"
author = "groupconv developers"
copyright = "groupconv developers"
release = groupconv.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "numpydoc",
]

# No network during builds: no intersphinx. References to NumPy, SciPy and
# Python objects stay plain text, which is not an error while nitpicky is off.
nitpicky = False

autosummary_generate = False
autodoc_typehints = "none"  # numpydoc's Parameters sections carry the types
autodoc_member_order = "bysource"

numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

default_role = "literal"
primary_domain = "py"
highlight_language = "python"
pygments_style = "sphinx"

exclude_patterns = ["_build"]
templates_path = []

html_theme = "alabaster"
html_static_path = []
html_title = f"groupconv {release}"
html_theme_options = {
    "description": "Grouped and depthwise convolution for NumPy, with Numba kernels",
    "fixed_sidebar": True,
}
