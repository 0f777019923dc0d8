"""Compiles the DALI operator library (dali_cmo/ops/build.py) as part of building the package.

Metadata and the library's own dependencies are in setup.cfg; this file adds what depends on
the build: the compilation, hooked into ``build_py`` (which runs for wheels and for editable
installs alike), the DALI that the library was compiled against as a requirement, and the
wheel's platform tag.
"""
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build_py import build_py
from setuptools.config.setupcfg import read_configuration

from dali_cmo.ops import build as builder  # the package being built: its folder is on sys.path
from dali_cmo.ops.library import DaliNotFound, dali_requirement, installed_dali

HERE = Path(__file__).resolve().parent


class BuildWithOperators(build_py):
    def run(self):
        try:
            info = builder.build(if_stale=True)
        except builder.BuildError as err:
            raise SystemExit(f"dali-cmo: building the operator library failed: {err}")
        print(f"dali-cmo: {'kept' if info.get('reused') else 'built'} the operator library "
              f"({'with CUDA' if info['cuda'] else 'CPU only'}, "
              f"{info['dali_distribution']} {info['dali_version']})")
        super().run()


class WithCompiledLibrary(Distribution):
    """The package holds libdali_cmo.so: compiled, so platform-specific (platlib, not purelib)."""

    def has_ext_modules(self):
        return True


class PlatformWheel(bdist_wheel):
    """Tagged py3-none-<platform>: the library is compiled for one platform, but uses no Python C
    API (DALI loads it), so any Python 3 can carry it, as DALI's own wheels are tagged."""

    def get_tag(self):
        return ("py3", "none", super().get_tag()[2])


def dali_requirements() -> list[str]:
    """The DALI the library is compiled against, where one is installed (an sdist needs none)."""
    try:
        return [dali_requirement(installed_dali())]
    except DaliNotFound:
        return []


setup(distclass=WithCompiledLibrary,
      cmdclass={"build_py": BuildWithOperators, "bdist_wheel": PlatformWheel},
      install_requires=[*read_configuration(HERE / "setup.cfg")["options"]["install_requires"],
                        *dali_requirements()])
