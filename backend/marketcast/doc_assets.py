"""Browser assets of the docs pages, served by this app from npm packages, never from a CDN.

Docs pages that load their JavaScript from a public CDN are blank offline and behind strict
egress, and they run third-party code fetched at view time. Every docs page here (AsyncAPI,
Swagger UI, ReDoc) takes its bundle from a package that ``make setup`` installs into
``frontend-types/node_modules``, pinned by its package-lock, and serves only the files listed
for it. A missing package is reported per request (404 naming the fix), so the API itself
still starts on a machine where the Node side was never installed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse, Response

#: Where npm packages sit relative to the repository root.
_NODE_MODULES: Final = Path("frontend-types/node_modules")
MISSING_ASSETS: Final = "docs assets not installed: run make setup"

JS: Final = "text/javascript; charset=utf-8"
CSS: Final = "text/css; charset=utf-8"


@dataclass(frozen=True)
class Asset:
    """One file a docs page loads: its URL name, its path inside the package, its type.

    ``offline``: (external URL, local replacement) pairs for a bundle that hard-codes a URL
    it would fetch whatever its options say (ReDoc's sidebar logo), so that the page asks
    no other host. Applied once, when the file is first served.
    """

    name: str
    path: str
    content_type: str
    offline: tuple[tuple[str, str], ...] = ()


def npm_package_dir(package: str) -> Path | None:
    """The installed npm ``package`` of this checkout, or None if absent.

    Looked up from this file upwards, so it works from a source checkout or an editable
    install; a wheel installed elsewhere has no ``frontend-types`` and gets None.
    """
    for parent in Path(__file__).resolve().parents:
        candidate = parent / _NODE_MODULES / package
        if candidate.is_dir():
            return candidate
    return None


def mount_assets(
    app: FastAPI, prefix: str, package_dir: Path | None, assets: Sequence[Asset]
) -> None:
    """Serve ``{prefix}/{name}`` for each of ``assets`` and nothing else of the package.

    Out of the OpenAPI schema: these are files of the docs, not of the REST API.
    """
    by_name = {asset.name: asset for asset in assets}
    #: Rewritten bundles, read and patched once (a few MB at most, for the life of the app).
    patched: dict[str, bytes] = {}

    async def serve(name: str) -> Response:
        asset = by_name.get(name)
        if asset is None:
            known = ", ".join(sorted(by_name))
            return JSONResponse(
                {"detail": f"unknown docs asset {name!r}; this page has: {known}"},
                status_code=404,
            )
        path = package_dir / asset.path if package_dir is not None else None
        if path is None or not path.is_file():
            return JSONResponse({"detail": MISSING_ASSETS}, status_code=404)
        if not asset.offline:
            return FileResponse(path, media_type=asset.content_type)
        if name not in patched:
            patched[name] = _rewrite(path.read_bytes(), asset.offline)
        return Response(patched[name], media_type=asset.content_type)

    route = f"{prefix.rstrip('/')}/{{name}}"
    app.add_api_route(route, serve, methods=["GET"], include_in_schema=False)


def _rewrite(content: bytes, offline: tuple[tuple[str, str], ...]) -> bytes:
    """``content`` with each external URL replaced; a URL that is no longer there is an error,
    so that a new package version cannot silently bring the request back."""
    for external, local in offline:
        if external.encode() not in content:
            raise RuntimeError(f"docs asset no longer contains {external!r}: update its rewrite")
        content = content.replace(external.encode(), local.encode())
    return content
