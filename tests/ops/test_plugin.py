"""Loading the operator library: idempotent, clear errors for a missing or stale build, and
DALI's own plugin loading (DALI_PRELOAD_PLUGINS) with the path the package gives."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

import dali_cmo
from dali_cmo.ops import plugin as plugin_module


def test_load_plugin_is_idempotent(plugin):
    assert dali_cmo.load_plugin() == plugin == dali_cmo.load_plugin()


def test_build_info_records_the_installed_dali(plugin):
    import nvidia.dali

    info = dali_cmo.build_info()
    assert info["dali_version"] == nvidia.dali.__version__
    assert info["dali_distribution"] in ("nvidia-dali-cuda120", "nvidia-dali-cuda130")
    assert info["size_bytes"] == plugin.stat().st_size


def test_missing_library_says_how_to_rebuild(tmp_path, monkeypatch):
    monkeypatch.setattr(plugin_module, "_loaded_from", None)
    with pytest.raises(dali_cmo.PluginError, match="not built.*python -m dali_cmo build"):
        dali_cmo.load_plugin(tmp_path)


@pytest.mark.parametrize("other", [{"dali_version": "1.0.0"},
                                   {"dali_distribution": "nvidia-dali-cuda110"}])
def test_library_built_for_another_dali_is_refused(tmp_path, monkeypatch, plugin, other):
    shutil.copy(plugin, tmp_path / plugin.name)
    info = dict(dali_cmo.build_info(), **other)
    (tmp_path / "build_info.json").write_text(json.dumps(info))
    monkeypatch.setattr(plugin_module, "_loaded_from", None)
    built_for = f"{info['dali_distribution']} {info['dali_version']}"
    with pytest.raises(dali_cmo.PluginError,
                       match=f"built for {built_for}, but .*python -m dali_cmo build"):
        dali_cmo.load_plugin(tmp_path)
    cli = subprocess.run([sys.executable, "-m", "dali_cmo", "build", "--print-path",
                          "--out-dir", str(tmp_path)], capture_output=True, text=True)
    assert cli.returncode == 1 and f"built for {built_for}" in cli.stderr


def test_dali_preloads_the_library_by_the_path_the_package_prints(plugin, tmp_path):
    """DALI's convention for plugins: DALI_PRELOAD_PLUGINS loads them into any process that
    starts DALI; here a Python one that never imports dali_cmo."""
    cli = subprocess.run([sys.executable, "-m", "dali_cmo", "build", "--print-path"],
                         capture_output=True, text=True, check=True)
    assert cli.stdout.strip() == str(dali_cmo.library_path()) == str(plugin)
    script = """
import sys
import numpy as np
from nvidia.dali import fn, pipeline_def

@pipeline_def(batch_size=2, num_threads=1, device_id=None, seed=1)
def paste():
    image = fn.external_source(source=lambda: [np.zeros((8, 8, 3), np.uint8)] * 2, layout="HWC")
    images, lam = fn.cmo_paste(image, image, probability=1.0)
    return images, lam

pipe = paste()
pipe.build()
images, lam = pipe.run()
assert "dali_cmo" not in sys.modules
print(images.as_tensor().shape())
"""
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                         text=True, env=dict(os.environ, DALI_PRELOAD_PLUGINS=cli.stdout.strip()))
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["[2,", "8,", "8,", "3]"]


def test_a_build_from_the_same_sources_is_kept_and_a_changed_one_is_not(tmp_path, plugin):
    from dali_cmo.ops import build

    info = dali_cmo.build_info()
    wanted = {k: info[k] for k in ("dali_distribution", "dali_version", "cuda", "cuda_archs")}
    wanted["sources_sha256"] = info["sources_sha256"] = build.sources_digest()
    shutil.copy(plugin, tmp_path / plugin.name)
    (tmp_path / "build_info.json").write_text(json.dumps(info))
    assert build.reusable_build(tmp_path, wanted) == dict(info, reused=True)
    for key, other in (("sources_sha256", "0" * 64), ("cuda_archs", ["75"]),
                       ("dali_version", "1.0.0"), ("dali_distribution", "nvidia-dali-cuda110")):
        assert build.reusable_build(tmp_path, dict(wanted, **{key: other})) is None, key


def test_builds_require_the_dali_the_library_was_built_for(plugin, monkeypatch):
    """The build backend adds the installed DALI to the build requirements (found as pip finds
    it, from the installing environment's Python), or the one DALI_CMO_DALI names."""
    import build_backend
    from dali_cmo.ops.library import dali_requirement

    monkeypatch.delenv("DALI_CMO_DALI", raising=False)
    assert build_backend.dali_requirement() == dali_requirement(dali_cmo.build_info())
    monkeypatch.setenv("DALI_CMO_DALI", "nvidia-dali-cuda130==2.4.0")
    assert build_backend.dali_requirement() == "nvidia-dali-cuda130==2.4.0"
