"""The files the console's pages load, each with its Subresource Integrity digest.

Third-party files come from the npm registry: ``web/package.json`` pins them, ``web/package-lock.json`` holds
the tarballs' integrity hashes and ``scripts/setup.sh`` installs them with ``npm ci`` into ``web/node_modules``
(gitignored, never committed). ``web/assets.json`` names each file a page loads (a short name -> its path under
node_modules) with the sha384 digest the pages put in ``integrity=``: a file that differs is refused here
(a worker then serves no console, and says why) and would be refused by the browser anyway. Our own files
(``callcenter/console/static``) get their digests when loaded. Everything is read once, at start.

    python -m callcenter.console.assets web      # check an install (scripts/setup.sh runs it)
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

STATIC = Path(__file__).parent / "static"
WEB = Path(__file__).resolve().parent.parent.parent / "web"     # the source tree's web/ (setup installs there)
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}


class AssetError(Exception):
    """The console's files are missing or not the pinned ones."""


@dataclass(frozen=True)
class Asset:
    name: str               # what the pages ask for: /console/static/<name> or /console/vendor/<name>
    body: bytes
    integrity: str          # "sha384-<base64>"
    content_type: str


def sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def _asset(name: str, body: bytes, integrity: str | None = None) -> Asset:
    return Asset(name, body, integrity or sri(body), TYPES.get(Path(name).suffix, "application/octet-stream"))


def own_files(directory: Path = STATIC) -> dict[str, Asset]:
    return {p.name: _asset(p.name, p.read_bytes()) for p in sorted(directory.iterdir())
            if p.is_file() and p.suffix in TYPES}


def vendor_files(web: Path = WEB) -> dict[str, Asset]:
    """The third-party files ``web/assets.json`` names, read from ``web/node_modules`` and checked against
    their pinned digests (AssetError names the first problem)."""
    manifest = web / "assets.json"
    try:
        files = json.loads(manifest.read_text())["files"]
    except (OSError, ValueError, KeyError) as exc:
        raise AssetError(f"{manifest}: {exc}") from None
    out: dict[str, Asset] = {}
    for name, entry in files.items():
        path = web / "node_modules" / entry["path"]
        try:
            body = path.read_bytes()
        except OSError:
            raise AssetError(f"{path} is missing: run scripts/setup.sh (npm ci in {web})") from None
        if sri(body) != entry["integrity"]:
            raise AssetError(f"{path}: its digest {sri(body)} is not the one {manifest} pins "
                             f"({entry['integrity']}); reinstall with npm ci")
        out[name] = _asset(name, body, entry["integrity"])
    return out


def main(argv: list[str]) -> int:
    web = Path(argv[0]) if argv else WEB
    try:
        found = vendor_files(web.resolve())
    except AssetError as exc:
        print(f"console assets: {exc}", file=sys.stderr)
        return 1
    print(f"console assets: {', '.join(sorted(found))} match {web / 'assets.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
