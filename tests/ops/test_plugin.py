"""Loading the operator library: idempotent, and clear errors for a missing or stale build."""
from __future__ import annotations

import json
import shutil

import pytest

import dali_cmo
from dali_cmo.ops import plugin as plugin_module


def test_load_plugin_is_idempotent(plugin):
    assert dali_cmo.load_plugin() == plugin == dali_cmo.load_plugin()


def test_build_info_records_the_installed_dali(plugin):
    import nvidia.dali

    info = dali_cmo.build_info()
    assert info["dali_version"] == nvidia.dali.__version__
    assert info["size_bytes"] == plugin.stat().st_size


def test_missing_library_says_how_to_rebuild(tmp_path, monkeypatch):
    monkeypatch.setattr(plugin_module, "_loaded_from", None)
    with pytest.raises(dali_cmo.PluginError, match="not built.*python -m dali_cmo build"):
        dali_cmo.load_plugin(tmp_path)


def test_library_built_for_another_dali_is_refused(tmp_path, monkeypatch, plugin):
    shutil.copy(plugin, tmp_path / plugin.name)
    info = dict(dali_cmo.build_info(), dali_version="1.0.0")
    (tmp_path / "build_info.json").write_text(json.dumps(info))
    monkeypatch.setattr(plugin_module, "_loaded_from", None)
    with pytest.raises(dali_cmo.PluginError, match="built for DALI 1.0.0.*python -m dali_cmo build"):
        dali_cmo.load_plugin(tmp_path)


def test_a_build_from_the_same_sources_is_kept_and_a_changed_one_is_not(tmp_path, plugin):
    from dali_cmo.ops import build

    info = dali_cmo.build_info()
    wanted = {k: info[k] for k in ("dali_version", "cuda", "cuda_archs")}
    wanted["sources_sha256"] = info["sources_sha256"] = build.sources_digest()
    shutil.copy(plugin, tmp_path / plugin.name)
    (tmp_path / "build_info.json").write_text(json.dumps(info))
    assert build.reusable_build(tmp_path, wanted) == dict(info, reused=True)
    for key, other in (("sources_sha256", "0" * 64), ("cuda_archs", ["75"]),
                       ("dali_version", "1.0.0")):
        assert build.reusable_build(tmp_path, dict(wanted, **{key: other})) is None, key
