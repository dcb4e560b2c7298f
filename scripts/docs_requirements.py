"""Print the requirements of pyproject.toml's ``[docs]`` extra, one per line, so CI can install
them without reinstalling qmu-hw itself (``pip install '.[docs]'`` would replace the editable
install under test)."""

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
print("\n".join(pyproject["project"]["optional-dependencies"]["docs"]))
