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
