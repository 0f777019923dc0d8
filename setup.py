"""Compiles the DALI operator library (dali_cmo/ops/build.py) as part of building the package.

Metadata and dependencies are in setup.cfg; this file only hooks the compilation into
``build_py``, which runs for wheels and for editable installs alike.
"""
import importlib.util
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


def _load_builder():
    # Load dali_cmo/ops/build.py by path: importing the package itself is not needed to build it.
    path = Path(__file__).resolve().parent / "dali_cmo" / "ops" / "build.py"
    spec = importlib.util.spec_from_file_location("dali_cmo_build", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildWithOperators(build_py):
    def run(self):
        builder = _load_builder()
        try:
            info = builder.build()
        except builder.BuildError as err:
            raise SystemExit(f"dali-cmo: building the operator library failed: {err}")
        print(f"dali-cmo: built the operator library "
              f"({'with CUDA' if info['cuda'] else 'CPU only'}, DALI {info['dali_version']})")
        super().run()


setup(cmdclass={"build_py": BuildWithOperators})
