"""The demo page's file serving (``demo_page``): what is served, with which policy, and what
is refused — on a throw-away frontend directory, no Node needed."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from marketcast.demo_page import CHART_LIBRARY_URL, NOT_BUILT, mount_demo_page


def frontend(root: Path, *, built: bool) -> Path:
    files = {
        "demo/index.html": "<!doctype html><title>demo</title>",
        "demo/style.css": "body {}",
        "node_modules/lightweight-charts/dist/"
        "lightweight-charts.standalone.production.js": "var LightweightCharts = {};",
        "package.json": "{}",
    }
    if built:
        files["dist/demo/demo/main.js"] = "export {};"
        files["dist/demo/src/index.js"] = "export {};"
        files["dist/demo/src/index.d.ts"] = "export {};"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def client_for(frontend_dir: Path | None) -> TestClient:
    app = FastAPI()
    mount_demo_page(app, frontend_dir=frontend_dir)
    return TestClient(app)


def test_page_and_assets_are_served_with_a_local_only_policy(tmp_path: Path) -> None:
    with client_for(frontend(tmp_path, built=True)) as http:
        page = http.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "default-src 'self'" in policy
        assert "connect-src 'self'" in policy
        for url, kind in [
            ("/demo/style.css", "text/css"),
            (CHART_LIBRARY_URL, "text/javascript"),
            ("/demo/app/demo/main.js", "text/javascript"),
            ("/demo/app/src/index.js", "text/javascript"),
        ]:
            response = http.get(url)
            assert response.status_code == 200, url
            assert response.headers["content-type"].startswith(kind)


@pytest.mark.parametrize(
    "path",
    [
        "/demo/app/src/index.d.ts",  # only compiled modules
        "/demo/app/demo/%2E%2E/%2E%2E/%2E%2E/package.json",  # nothing outside the build
        "/demo/app/../../node_modules/x.js",
        "/demo/app/demo/missing.js",
    ],
)
def test_nothing_but_built_modules_is_served(tmp_path: Path, path: str) -> None:
    with client_for(frontend(tmp_path, built=True)) as http:
        assert http.get(path).status_code == 404


def test_a_missing_build_says_how_to_fix_it(tmp_path: Path) -> None:
    with client_for(frontend(tmp_path, built=False)) as http:
        page = http.get("/")
        assert page.status_code == 503
        assert "make setup" in page.text
        assert http.get("/demo/app/demo/main.js").status_code == 404
    with client_for(None) as http:
        assert http.get("/").text.count(NOT_BUILT) == 1
