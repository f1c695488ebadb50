"""The one version source: read by ``pyproject.toml`` (setuptools dynamic version) and by ``siamdeploy``."""
__version__ = "0.2.0"
