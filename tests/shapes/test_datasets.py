"""ModelNet download code path, offline: ``urlopen`` is replaced by an in-memory zip."""

from __future__ import annotations

import hashlib
import io
import json
import urllib.request
import zipfile

import pytest
import trimesh

from common.errors import DataError
from shapes import datasets


def _modelnet_zip(classes=("chair", "table"), n=3) -> bytes:
    """A ModelNet-layout zip (``ModelNet10/<class>/<split>/<class>_<i>.off``) of boxes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for cls in classes:
            for split in ("train", "test"):
                for i in range(n):
                    box = trimesh.creation.box((0.5 + 0.1 * i, 0.4, 0.3 + 0.05 * i))
                    zf.writestr(f"ModelNet10/{cls}/{split}/{cls}_{i:04d}.off",
                                box.export(file_type="off"))
    return buf.getvalue()


class _Response(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def test_download_is_atomic_checksummed_and_reused(tmp_path, monkeypatch):
    payload, calls = _modelnet_zip(), []

    def fake_urlopen(url, timeout):
        calls.append(url)
        return _Response(payload)

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    zpath = datasets.fetch_zip("modelnet10", tmp_path)
    assert calls == [datasets.MODELNET_URLS["modelnet10"]]
    assert zpath.read_bytes() == payload and not list(tmp_path.glob("*.part"))
    recorded = (tmp_path / "modelnet10.zip.sha256").read_text().strip()
    assert recorded == hashlib.sha256(payload).hexdigest()
    assert datasets.fetch_zip("modelnet10", tmp_path) == zpath and len(calls) == 1  # cached
    folder = datasets.modelnet("modelnet10", ["table"], "train", cache_dir=tmp_path)
    assert sorted(p.name for p in (folder / "table").iterdir()) == [
        f"table_{i:04d}.off" for i in range(3)]


def test_failed_or_bogus_download_is_a_clear_error(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DataError, match="download failed.*unreachable"):
        datasets.fetch_zip("modelnet40", tmp_path)
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: _Response(b"<html>"))
    with pytest.raises(DataError, match="not a zip"):
        datasets.fetch_zip("modelnet40", tmp_path)
    assert not list(tmp_path.iterdir())  # nothing half-written left behind
    with pytest.raises(DataError, match="unknown corpus"):
        datasets.fetch_zip("shapenet", tmp_path)


def test_pipeline_prepares_a_downloaded_modelnet_class(tmp_path, monkeypatch):
    from pipelines.cli import main

    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda url, timeout: _Response(_modelnet_zip(n=5)))
    monkeypatch.setattr(datasets, "default_cache", lambda: tmp_path / "cache")
    out = tmp_path / "run"
    assert main(["shapes", "prepare", "--out", str(out), "--set", "data.dataset=modelnet10",
                 "--set", "data.modelnet_classes=[chair]", "--set", "model.resolution=16",
                 "--set", "model.latent_size=4"]) == 0
    info = json.loads((out / "data" / "info.json").read_text())
    assert info["source"].startswith("modelnet10 (train split")
    assert info["n_train"] + info["n_holdout"] == 5 and not info["rejected"]
