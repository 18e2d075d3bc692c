"""The cache's memory is what it counts: glibc told to give freed pictures back."""

from __future__ import annotations

import platform

import pytest

from pipeline.cache import return_freed_memory


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_glibc_accepts_the_fixed_mmap_threshold() -> None:
    assert return_freed_memory()
