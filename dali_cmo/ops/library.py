"""Where the operator library lives, and which DALI it must be used with.

The library is compiled against one DALI distribution (``nvidia-dali-cuda120`` or
``nvidia-dali-cuda130``) at one version, and works only with that one: the build records both
(:func:`installed_dali`), :func:`dali_cmo.load_plugin` refuses any other, and a wheel requires
exactly that one (:func:`dali_requirement`).

Light on purpose (no DALI, no compiler tooling): ``import dali_cmo`` reads it, and the build
backend runs it as a script in the environment being installed into, where it prints the
requirement for the DALI found there.
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
SOURCE_DIR = PACKAGE_DIR / "csrc"
LIB_DIR = PACKAGE_DIR / "lib"
LIBRARY_NAME = "libdali_cmo.so"
BUILD_INFO_NAME = "build_info.json"


class DaliNotFound(RuntimeError):
    """No DALI, or no single DALI distribution, is installed in this Python."""


def installed_dali() -> dict:
    """The distribution and version of the DALI that ``import nvidia.dali`` finds, as
    ``{"dali_distribution": "nvidia-dali-cuda120", "dali_version": "2.4.0"}``.

    Read from the package metadata beside ``nvidia/dali``, without importing DALI.
    """
    import importlib.metadata  # here, not at the top: it costs more than the rest of the import

    spec = importlib.util.find_spec("nvidia.dali") if importlib.util.find_spec("nvidia") else None
    if spec is None or spec.origin is None:
        raise DaliNotFound("DALI is not installed in this Python; install nvidia-dali-cuda120 "
                           "or nvidia-dali-cuda130 first")
    site = Path(spec.origin).parents[2]
    found = {}
    for path in site.glob("nvidia_dali*.dist-info"):
        meta = importlib.metadata.PathDistribution(path).metadata
        found[re.sub(r"[-_.]+", "-", meta["Name"]).lower()] = meta["Version"]
    if len(found) != 1:
        raise DaliNotFound(f"cannot tell which DALI is installed in {site}: "
                           f"{', '.join(sorted(found)) or 'no nvidia-dali distribution'}; "
                           "keep exactly one of nvidia-dali-cuda120, nvidia-dali-cuda130")
    (name, version), = found.items()
    return {"dali_distribution": name, "dali_version": version}


def same_dali(info: dict, installed: dict) -> bool:
    """Whether a library built as ``info`` says can run with the ``installed`` DALI."""
    return all(info.get(key) == value for key, value in installed.items())


def dali_requirement(info: dict) -> str:
    """The pip requirement for the one DALI :func:`same_dali` accepts, e.g.
    ``nvidia-dali-cuda120==2.4.0``."""
    return f"{info['dali_distribution']}=={info['dali_version']}"


if __name__ == "__main__":
    try:
        print(dali_requirement(installed_dali()))
    except DaliNotFound as err:
        raise SystemExit(str(err))
