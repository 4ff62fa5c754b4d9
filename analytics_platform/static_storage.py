"""Static files storage: WhiteNoise's compressed manifest storage (fingerprinted names, .br and .gz copies, served
with a year-long immutable Cache-Control), with two changes made for a measured reason.

1. ES module imports in our own modules (static/js/) are rewritten to the fingerprinted names (`import ... from
   "./api.js"` becomes "./api.<hash>.js"), as Django does when `support_js_module_import_aggregation` is on;
   otherwise a fingerprinted dashboard.js would import the unfingerprinted modules, and a browser could mix two
   releases. Vendor files are left as published (gridstack's dist holds React/Vue modules with imports that name
   no file, which the rewriting would refuse; the pages load none of them).
2. Compression is incremental. WhiteNoise compresses every file on every `collectstatic` (Brotli at its slowest
   setting): measured 3 min 4 s on this machine for a run where nothing had changed (plotly.js alone, twice: the
   original and the fingerprinted copy), which `make demo` paid on every start. A compressed copy whose content
   decompresses to the file's current content is kept; identical content is compressed once per run.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import zlib
from typing import Any

from whitenoise.compress import Compressor
from whitenoise.storage import CompressedManifestStaticFilesStorage

try:
    import brotli
except ImportError:  # WhiteNoise then writes gzip only, and so do we
    brotli = None


class IncrementalCompressor(Compressor):
    """WhiteNoise's compressor, which keeps up-to-date compressed copies and compresses equal content once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._by_digest: dict[tuple[str, str], bytes] = {}

    def _current(self, path: str, suffix: str, data: bytes) -> bool:
        try:
            with open(path + suffix, "rb") as compressed:
                packed = compressed.read()
            unpacked = brotli.decompress(packed) if suffix == ".br" else gzip.decompress(packed)
        except (OSError, EOFError, zlib.error, getattr(brotli, "error", OSError)):
            return False
        return unpacked == data

    def compress(self, path: str) -> list[str]:
        """The compressed copies of `path`, written only when missing or stale."""
        with open(path, "rb") as source:
            data = source.read()
        wanted = [suffix for suffix, used in ((".br", self.use_brotli), (".gz", self.use_gzip)) if used]
        if wanted and all(self._current(path, suffix, data) for suffix in wanted):
            return [path + suffix for suffix in wanted]
        digest = hashlib.sha256(data).hexdigest()
        written = []
        for suffix in wanted:
            key = (digest, suffix)
            if key not in self._by_digest:
                self._by_digest[key] = self.compress_brotli(data) if suffix == ".br" else self.compress_gzip(data)
            packed = self._by_digest[key]
            label = "Brotli" if suffix == ".br" else "Gzip"
            if not self.is_compressed_effectively(label, path, len(data), packed):
                # As WhiteNoise: when Brotli does not pay, gzip will not either. A copy left from older content
                # must not be served for the new one.
                for stale in wanted[len(written) :]:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path + stale)
                break
            with open(path + suffix, "wb") as target:
                target.write(packed)
            written.append(path + suffix)
        return written


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    """The production static files storage (see the module docstring)."""

    support_js_module_import_aggregation = True
    own_modules_prefix = "js/"

    def url_converter(self, name: str, hashed_files: dict, template: str | None = None):
        """Django's converter; for module imports outside our own modules, one that leaves the text as it is."""
        converter = super().url_converter(name, hashed_files, template)
        if (
            template
            and template.lstrip().startswith(("import", "export"))
            and not name.startswith(self.own_modules_prefix)
        ):
            return lambda matchobj: matchobj["matched"]
        return converter

    def create_compressor(self, **kwargs: Any) -> Compressor:
        return IncrementalCompressor(**kwargs)
