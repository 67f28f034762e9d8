"""The console's files (callcenter/console/assets.py): third-party ones are served only as web/assets.json
pins them (its sha384, which the pages' integrity= attributes carry); a missing or altered file is refused
with the reason, and the shipped manifest matches what `npm ci` installed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from callcenter.console.assets import WEB, AssetError, sri, vendor_files


def web_dir(tmp_path: Path, body: bytes, pinned: bytes) -> Path:
    (tmp_path / "node_modules" / "lib").mkdir(parents=True)
    (tmp_path / "node_modules" / "lib" / "x.js").write_bytes(body)
    (tmp_path / "assets.json").write_text(json.dumps({"files": {"x.js": {"path": "lib/x.js",
                                                                         "integrity": sri(pinned)}}}))
    return tmp_path


def test_a_pinned_file_is_served_with_its_digest(tmp_path: Path) -> None:
    files = vendor_files(web_dir(tmp_path, b"let a = 1;", b"let a = 1;"))
    assert files["x.js"].body == b"let a = 1;" and files["x.js"].integrity == sri(b"let a = 1;")
    assert files["x.js"].content_type.startswith("text/javascript")


def test_an_altered_or_missing_file_is_refused(tmp_path: Path) -> None:
    web = web_dir(tmp_path, b"alert('owned')", b"let a = 1;")
    with pytest.raises(AssetError, match="not the one"):
        vendor_files(web)
    (web / "node_modules" / "lib" / "x.js").unlink()
    with pytest.raises(AssetError, match="missing: run scripts/setup.sh"):
        vendor_files(web)


def test_the_shipped_manifest_matches_the_installed_packages() -> None:
    if not (WEB / "node_modules").exists():
        pytest.skip("web/node_modules not installed (scripts/setup.sh runs npm ci)")
    assert set(vendor_files()) == {"htm-preact.js", "jssip.js"}
