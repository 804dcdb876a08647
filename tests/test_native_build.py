"""CI builds the compiled inner loops: a broken build must fail the run, not fall back unnoticed.

Kept apart from tests/test_native.py, whose tests are skipped when the extension is absent.
"""

import os

import pytest

from classifier import native


@pytest.mark.skipif(os.environ.get("GROUPSCORE_REQUIRE_NATIVE") != "1",
                    reason="only where the extension must be built (GROUPSCORE_REQUIRE_NATIVE=1, set by .ci/run)")
def test_the_extension_was_built():
    assert native.built(), "classifier._native did not build (see pip's output)"


def test_the_cue_scan_can_read_the_cue_patterns():
    from classifier.features import _native_spec

    if not native.built():
        pytest.skip("classifier._native not built")
    assert _native_spec(native._compiled) is not None
