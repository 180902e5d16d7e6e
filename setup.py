"""Kept so that `pip install .` and `python setup.py` keep working; metadata lives in pyproject.toml."""

from setuptools import setup

setup()
