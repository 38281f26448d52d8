"""The meshd binary links FoundationEssentials and none of Foundation proper (libFoundation,
FoundationInternationalization, _FoundationICU): about 9 MiB of idle RSS
(docs/performance.md, "Memory")."""
import shutil
import subprocess

import pytest

from conftest import MESHD

FOUNDATION_PROPER = ("libFoundation.so", "libFoundationInternationalization.so", "lib_FoundationICU.so")


def test_links_foundation_essentials_only():
    if shutil.which("ldd") is None:
        pytest.skip("ldd is not installed")
    libraries = subprocess.run(["ldd", MESHD], capture_output=True, text=True, check=True, timeout=30).stdout
    names = [line.split()[0] for line in libraries.splitlines() if line.strip()]
    assert [n for n in names if n in FOUNDATION_PROPER] == [], libraries
    assert "libFoundationEssentials.so" in names, libraries
