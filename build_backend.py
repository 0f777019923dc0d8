"""PEP 517 build backend: setuptools', with the DALI to compile against added to the build
requirements.

The operator library must be compiled against the DALI it will run with, either flavour
(``nvidia-dali-cuda120`` or ``nvidia-dali-cuda130``); a fixed build requirement would put one
flavour into every isolated build. So the wheel and editable builds require ``DALI_CMO_DALI``
when it is set (e.g. ``nvidia-dali-cuda130==2.4.0``), else exactly the DALI installed in the
environment being installed into; with neither, the build stops and says so.
"""
import os
import subprocess
import sys
from pathlib import Path

from setuptools import build_meta
from setuptools.build_meta import *  # noqa: F401,F403  (every hook not redefined here)

LIBRARY_MODULE = Path(__file__).resolve().parent / "dali_cmo" / "ops" / "library.py"


def dali_requirement() -> str:
    if os.environ.get("DALI_CMO_DALI"):
        return os.environ["DALI_CMO_DALI"]
    # pip runs the hooks with the Python of the environment it installs into, its packages
    # hidden behind PYTHONPATH; isolated mode (-I) ignores PYTHONPATH and so sees them.
    found = subprocess.run([sys.executable, "-I", str(LIBRARY_MODULE)],
                           capture_output=True, text=True)
    if found.returncode != 0:
        raise SystemExit(f"dali-cmo: {found.stderr.strip()}; or name the DALI to build against, "
                         "e.g. DALI_CMO_DALI=nvidia-dali-cuda130==2.4.0")
    return found.stdout.strip()


def get_requires_for_build_wheel(config_settings=None):
    return [*build_meta.get_requires_for_build_wheel(config_settings), dali_requirement()]


def get_requires_for_build_editable(config_settings=None):
    return [*build_meta.get_requires_for_build_editable(config_settings), dali_requirement()]
