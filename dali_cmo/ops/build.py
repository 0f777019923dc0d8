"""Build the dali_cmo DALI operator library (``cmo_paste``, ``cmo_box``, ``cmo_region``,
``readers.weighted_file``).

Compiles ``dali_cmo/ops/csrc`` against the installed DALI, either flavour (its own include dir,
ABI flag and ``-ldali``) into ``dali_cmo/ops/lib/libdali_cmo.so``, and records what it was built
against (DALI distribution and version, see :mod:`dali_cmo.ops.library`) in
``dali_cmo/ops/lib/build_info.json`` so that :func:`dali_cmo.load_plugin` can refuse a stale
library with a clear message.

The CPU operators are always built. The CUDA operators are built when ``nvcc`` is found;
``DALI_CMO_CUDA=0`` forces a CPU-only library, ``DALI_CMO_CUDA=1`` makes a missing ``nvcc``
an error. ``DALI_CMO_CUDA_ARCHS`` (default ``80;90``) lists the SM versions to compile for;
PTX for the newest one is embedded too, so newer GPUs JIT-compile it.

Run it by hand with ``python -m dali_cmo build`` (``--cuda``/``--no-cuda``, ``--archs``,
``--if-stale`` to keep a library built from the same sources and settings; ``--print-path``
prints the built library's path, for ``DALI_PRELOAD_PLUGINS``, and builds nothing);
``pip install`` runs it through ``setup.py``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dali_cmo.ops.library import (BUILD_INFO_NAME, LIB_DIR, LIBRARY_NAME, SOURCE_DIR,
                                  DaliNotFound, installed_dali)

DEFAULT_ARCHS = "80;90"


class BuildError(RuntimeError):
    """The operator library could not be built; the message says which step failed."""


def _dali_flags() -> tuple[dict, list[str], list[str]]:
    """The installed DALI (:func:`installed_dali`), its compile flags and its link flags."""
    try:
        dali = installed_dali()
    except DaliNotFound as err:
        raise BuildError(str(err)) from err
    import nvidia.dali.sysconfig as sysconfig

    # the reader builds on DALI's reader framework, which lives in libdali_operators
    return (dali, sysconfig.get_compile_flags(),
            [*sysconfig.get_link_flags(), "-ldali_operators"])


def _numpy_random_flags() -> tuple[list[str], list[str]]:
    """NumPy's random C API: the bit-generator header and its distributions library.

    The reader draws its epoch orders with NumPy's own distribution code (``npyrandom``, which
    NumPy ships for extensions), so that they match ``dali_cmo.data.sampling`` exactly.
    """
    import numpy
    import numpy.random

    library = Path(numpy.random.__file__).parent / "lib" / "libnpyrandom.a"
    if not library.is_file():
        raise BuildError(f"NumPy's random C library is missing ({library}); reinstall numpy")
    return [f"-I{numpy.get_include()}"], [str(library), "-Wl,--exclude-libs=libnpyrandom.a", "-lm"]


def find_nvcc() -> str | None:
    """``nvcc`` from ``CUDA_HOME``/``CUDA_PATH``, ``PATH`` or ``/usr/local/cuda``."""
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if home and (Path(home) / "bin" / "nvcc").is_file():
            return str(Path(home) / "bin" / "nvcc")
    return shutil.which("nvcc")


def _cuda_include_dir(nvcc: str | None, header: str = "cuda_runtime_api.h") -> Path:
    """The folder with CUDA's ``header``: DALI's own headers include CUDA headers even in a
    CPU-only build (``curand_kernel.h`` too, for reader checkpoints)."""
    candidates = []
    if nvcc:
        candidates.append(Path(nvcc).resolve().parent.parent / "include")
    candidates += [Path(p) / "include" for p in
                   (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda") if p]
    # The CUDA runtime wheel that PyTorch depends on ships the headers as well.
    for site in sys.path:
        candidates += sorted(Path(site).glob("nvidia/cu*/include")) if site else []
        candidates += sorted(Path(site).glob("nvidia/cuda_runtime/include")) if site else []
        candidates += sorted(Path(site).glob("nvidia/curand/include")) if site else []
    for path in candidates:
        if (path / header).is_file():
            return path
    raise BuildError(f"CUDA headers ({header}) not found: DALI's headers need them even "
                     "for the CPU-only library. Install the CUDA toolkit (or the wheel that ships "
                     "the header: pip install nvidia-curand) or set CUDA_HOME.")


def _run(cmd: list[str], what: str, verbose: bool) -> None:
    if verbose:
        print(" ".join(cmd), flush=True)
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(f"{what} failed (exit {result.returncode}):\n{' '.join(cmd)}\n"
                         f"{result.stdout}{result.stderr}")


def _resolve_cuda(cuda: bool | None) -> str | None:
    """Which nvcc to use, or None for a CPU-only build."""
    if cuda is None:
        env = os.environ.get("DALI_CMO_CUDA", "auto").lower()
        cuda = {"0": False, "off": False, "no": False, "1": True, "on": True, "yes": True}.get(env)
    nvcc = find_nvcc()
    if cuda and not nvcc:
        raise BuildError("a CUDA build was requested but nvcc was not found "
                         "(set CUDA_HOME or put nvcc on PATH)")
    return nvcc if cuda is not False else None


def sources_digest() -> str:
    """SHA-256 over the names and contents of the C++/CUDA sources and of this file (the
    compiler flags)."""
    sources = [path for path in sorted(SOURCE_DIR.iterdir())
               if path.suffix in (".h", ".cc", ".cu", ".cuh")]
    digest = hashlib.sha256()
    for path in [*sources, Path(__file__)]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def reusable_build(out_dir: Path, wanted: dict) -> dict | None:
    """The info of the library in ``out_dir`` (with ``"reused": true``) when it records every
    item of ``wanted`` (DALI distribution and version, CUDA choice, archs, sources digest);
    else None."""
    info_path = out_dir / BUILD_INFO_NAME
    if not (out_dir / LIBRARY_NAME).is_file() or not info_path.is_file():
        return None
    info = json.loads(info_path.read_text())
    return dict(info, reused=True) if all(info.get(k) == v for k, v in wanted.items()) else None


def build(cuda: bool | None = None, archs: str | None = None, out_dir: Path = LIB_DIR,
          verbose: bool = False, if_stale: bool = False) -> dict:
    """Compile the library into ``out_dir``; returns the recorded build info.

    ``cuda``: True/False forces the choice, None decides from ``DALI_CMO_CUDA`` and ``nvcc``.
    ``if_stale``: keep the library in ``out_dir`` when it was built from the same sources for
    the same DALI, CUDA choice and archs (its info then has ``"reused": true``).
    """
    dali, compile_flags, link_flags = _dali_flags()
    numpy_compile, numpy_link = _numpy_random_flags()
    compile_flags, link_flags = [*compile_flags, *numpy_compile], [*numpy_link, *link_flags]
    nvcc = _resolve_cuda(cuda)
    archs = archs or os.environ.get("DALI_CMO_CUDA_ARCHS", DEFAULT_ARCHS)
    arch_list = [a.strip() for a in archs.replace(",", ";").split(";") if a.strip()]
    wanted = {**dali, "cuda": bool(nvcc),
              "cuda_archs": arch_list if nvcc else [], "sources_sha256": sources_digest()}
    info_path = out_dir / BUILD_INFO_NAME
    if if_stale and (reusable := reusable_build(out_dir, wanted)) is not None:
        return reusable
    cuda_includes = dict.fromkeys(_cuda_include_dir(nvcc, header)
                                  for header in ("cuda_runtime_api.h", "curand_kernel.h"))
    # No fused multiply-adds in host code: the CPU operator must compute the same float bits as
    # the GPU kernel (paste_pixel.h uses round-to-nearest intrinsics on the device).
    common = ["-std=c++20", "-O3", "-fPIC", "-ffp-contract=off", f"-I{SOURCE_DIR}",
              *[f"-I{path}" for path in cuda_includes], *compile_flags]
    if nvcc:
        common.append("-DDALI_CMO_WITH_CUDA=1")

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        jobs = [(["g++", *common, "-Wall", "-c", str(source), "-o", f"{tmp}/{source.stem}.o"],
                 f"compiling {source.name}") for source in sorted(SOURCE_DIR.glob("*.cc"))]
        if nvcc:
            gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in arch_list]
            gencode.append(f"-gencode=arch=compute_{arch_list[-1]},code=compute_{arch_list[-1]}")
            host_only = ("-fPIC", "-ffp-contract=off")
            jobs += [([nvcc, *gencode, "--expt-relaxed-constexpr", "-Xcompiler", "-fPIC",
                       "-Xcompiler", "-ffp-contract=off",
                       *[f for f in common if f not in host_only], "-c", str(source), "-o",
                       f"{tmp}/{source.stem}.cu.o"], f"compiling {source.name} with nvcc")
                     for source in sorted(SOURCE_DIR.glob("*.cu"))]
        # the sources compile independently: one compiler per core
        with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
            list(pool.map(lambda job: _run(*job, verbose), jobs))
        objects = [command[-1] for command, _ in jobs]
        staged = Path(tmp) / LIBRARY_NAME
        linker = [nvcc, "-shared", "-Xcompiler", "-fPIC"] if nvcc else ["g++", "-shared", "-fPIC"]
        if nvcc:  # nvcc hands options to the host linker with -Xlinker, not -Wl,
            link_flags = [part for flag in link_flags for part in
                          (["-Xlinker", flag[4:]] if flag.startswith("-Wl,") else [flag])]
        _run([*linker, *objects, "-o", str(staged), *link_flags], "linking", verbose)
        # Replace the library atomically: a running process keeps the old file's inode.
        target = out_dir / LIBRARY_NAME
        shutil.copy2(staged, target.with_suffix(".so.tmp"))
        os.replace(target.with_suffix(".so.tmp"), target)

    info = {**wanted, "library": LIBRARY_NAME,
            "size_bytes": (out_dir / LIBRARY_NAME).stat().st_size}
    info_path.write_text(json.dumps(info, indent=2) + "\n")
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dali_cmo build", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--cuda", dest="cuda", action="store_true", default=None,
                       help="build the CUDA operators (error if nvcc is missing)")
    group.add_argument("--no-cuda", dest="cuda", action="store_false",
                       help="build the CPU operators only")
    parser.add_argument("--archs", help=f"SM versions, e.g. '80;90' (default {DEFAULT_ARCHS})")
    parser.add_argument("--out-dir", type=Path, default=LIB_DIR,
                        help="where to write the library (default: the package's lib/)")
    parser.add_argument("--if-stale", action="store_true",
                        help="keep a library built from the same sources and settings")
    parser.add_argument("-v", "--verbose", action="store_true", help="print compiler commands")
    parser.add_argument("--print-path", action="store_true",
                        help="build nothing: print the path of the library in --out-dir, checked "
                             "against the installed DALI (for DALI_PRELOAD_PLUGINS)")
    args = parser.parse_args(argv)
    if args.print_path:
        from dali_cmo.ops.plugin import PluginError, library_path
        try:
            print(library_path(args.out_dir))
        except PluginError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        return 0
    try:
        info = build(args.cuda, args.archs, args.out_dir, args.verbose, args.if_stale)
    except BuildError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{'kept' if info.get('reused') else 'built'} {args.out_dir / LIBRARY_NAME} "
          f"({info['size_bytes'] / 2**20:.1f} MiB, "
          f"{info['dali_distribution']} {info['dali_version']}, "
          f"{'CUDA sm_' + '/sm_'.join(info['cuda_archs']) if info['cuda'] else 'CPU only'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
