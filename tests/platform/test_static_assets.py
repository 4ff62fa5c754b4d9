"""Static files as production serves them: collected with WhiteNoise's compressed manifest storage (fingerprinted
names, gzip and Brotli copies), served compressed with a year-long immutable Cache-Control; and the API docs pages
load nothing from other hosts."""

from __future__ import annotations

import json
import os
import re

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client, override_settings

PRODUCTION_STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "analytics_platform.static_storage.StaticFilesStorage"},
}


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    root = tmp_path_factory.mktemp("static")
    # Our own files only: compressing plotly.js, the admin's and the API docs' files at Brotli's best takes minutes
    # on this machine (the Dockerfile and `make demo` collect everything).
    own = {"STATICFILES_FINDERS": ["django.contrib.staticfiles.finders.FileSystemFinder"],
           "STATICFILES_DIRS": [settings.BASE_DIR / "static"]}  # fmt: skip
    with override_settings(STATIC_ROOT=root, STORAGES=PRODUCTION_STORAGES, WHITENOISE_USE_FINDERS=False, **own):
        call_command("collectstatic", interactive=False, verbosity=0)
    return root


def test_collectstatic_fingerprints_and_compresses(collected):
    manifest = json.loads((collected / "staticfiles.json").read_text())["paths"]
    hashed = manifest["js/dashboards/dashboard.js"]
    assert re.fullmatch(r"js/dashboards/dashboard\.[0-9a-f]{12}\.js", hashed)
    # Modules import each other by relative path; the manifest rewrites those imports to the hashed names too.
    api = manifest["js/dashboards/api.js"].rsplit("/", 1)[1]
    assert f'from "./{api}";' in (collected / hashed).read_text()
    for suffix in (".gz", ".br"):
        assert (collected / f"{hashed}{suffix}").stat().st_size < (collected / hashed).stat().st_size


def test_compression_keeps_current_copies_and_redoes_stale_ones(tmp_path):
    from analytics_platform.static_storage import IncrementalCompressor

    path = tmp_path / "module.js"
    path.write_text("export const answer = 42;\n" * 200)
    compressor = IncrementalCompressor(quiet=True)
    assert compressor.compress(str(path)) == [f"{path}.br", f"{path}.gz"]
    first = {suffix: (tmp_path / f"module.js{suffix}").stat().st_mtime_ns for suffix in (".br", ".gz")}
    compressor.compress(str(path))
    assert {suffix: (tmp_path / f"module.js{suffix}").stat().st_mtime_ns for suffix in (".br", ".gz")} == first
    path.write_text("export const answer = 43;\n" * 200)
    compressor.compress(str(path))
    import brotli

    assert brotli.decompress((tmp_path / "module.js.br").read_bytes()) == path.read_bytes()
    path.write_bytes(os.urandom(4096))  # incompressible now: the old copies must go
    assert compressor.compress(str(path)) == []
    assert not (tmp_path / "module.js.br").exists()
    assert not (tmp_path / "module.js.gz").exists()


@pytest.mark.django_db
def test_pages_link_fingerprinted_files_served_compressed_and_cached_for_a_year(collected, user):
    with override_settings(STATIC_ROOT=collected, STORAGES=PRODUCTION_STORAGES, WHITENOISE_USE_FINDERS=False):
        client = Client()
        client.force_login(user)
        page = client.get("/dashboards/").content.decode()
        url = re.search(r'src="(/static/js/dashboards/list\.[0-9a-f]{12}\.js)"', page)[1]
        response = client.get(url, HTTP_ACCEPT_ENCODING="gzip, br")
        assert response.status_code == 200
        assert response["Content-Encoding"] == "br"
        assert response["Cache-Control"] == "max-age=315360000, public, immutable"
        plain = client.get(url)
        assert "Content-Encoding" not in plain
        # An unfingerprinted name may change content, so it is cached briefly only.
        assert "immutable" not in client.get("/static/js/dashboards/list.js")["Cache-Control"]


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/redoc/", "/api/docs/"])
def test_api_docs_pages_load_nothing_from_other_hosts(client, path):
    page = client.get(path).content.decode()
    assert "fonts.googleapis.com" not in page
    references = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert references, page
    assert [reference for reference in references if re.match(r"(https?:)?//", reference)] == []
    assert any("drf_spectacular_sidecar" in reference for reference in references)
