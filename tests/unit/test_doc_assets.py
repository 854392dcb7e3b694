"""Docs assets: only listed files are served, a missing package says how to fix it, and a
bundle's hard-coded external URL is rewritten (or the rewrite fails loudly once it is gone)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from marketcast import rest_docs
from marketcast.doc_assets import JS, MISSING_ASSETS, Asset, mount_assets


def _client(package_dir: Path | None, *assets: Asset) -> TestClient:
    app = FastAPI()
    mount_assets(app, "/docs/assets", package_dir, assets)
    return TestClient(app)


def test_serves_listed_files_only(tmp_path: Path) -> None:
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist/app.js").write_text("var x = 1;")
    (tmp_path / "secret.txt").write_text("no")
    client = _client(tmp_path, Asset("app.js", "dist/app.js", JS))
    served = client.get("/docs/assets/app.js")
    assert served.status_code == 200
    assert served.text == "var x = 1;"
    assert served.headers["content-type"] == JS
    refused = client.get("/docs/assets/secret.txt")
    assert refused.status_code == 404
    assert refused.json()["detail"] == "unknown docs asset 'secret.txt'; this page has: app.js"


def test_missing_package_names_the_fix() -> None:
    answer = _client(None, Asset("app.js", "dist/app.js", JS)).get("/docs/assets/app.js")
    assert answer.status_code == 404
    assert answer.json()["detail"] == MISSING_ASSETS


def test_external_url_in_a_bundle_is_rewritten(tmp_path: Path) -> None:
    (tmp_path / "b.js").write_text('img.src="https://cdn.example/logo.svg";')
    asset = Asset("b.js", "b.js", JS, offline=(("https://cdn.example/logo.svg", "data:,"),))
    client = _client(tmp_path, asset)
    assert client.get("/docs/assets/b.js").text == 'img.src="data:,";'
    assert client.get("/docs/assets/b.js").text == 'img.src="data:,";'  # cached, same bytes


def test_a_rewrite_that_no_longer_matches_fails_loudly(tmp_path: Path) -> None:
    (tmp_path / "b.js").write_text("nothing external here")
    asset = Asset("b.js", "b.js", JS, offline=(("https://cdn.example/logo.svg", "data:,"),))
    with pytest.raises(RuntimeError, match="no longer contains"):
        _client(tmp_path, asset).get("/docs/assets/b.js")


def test_rest_docs_say_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the npm packages (an install outside the checkout) the pages name the fix
    instead of rendering blank."""
    monkeypatch.setattr(rest_docs, "npm_package_dir", lambda package: None)
    app = FastAPI(docs_url=None, redoc_url=None)
    rest_docs.mount_rest_docs(app, title="marketcast")
    client = TestClient(app)
    for path in ("/docs", "/redoc"):
        page = client.get(path)
        assert page.status_code == 503
        assert MISSING_ASSETS in page.text
