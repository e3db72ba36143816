"""Hooks for every tier: no private key reaches a failure report.

pytest shows the fields of dataclasses that differ, so a failed comparison
of two ``pki.CertKey`` values would print their keys although ``repr`` hides
them. Every PEM private key block, whole or cut short by pytest's
truncation, is replaced before the report is written.
"""

from __future__ import annotations

import re

import pytest

PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----(?:(?!-----END)[^'\"])*(?:-----END [A-Z ]*PRIVATE KEY-----)?")


def redact_private_keys(text: str) -> str:
    return PRIVATE_KEY.sub("<private key>", text)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and report.longrepr is not None and not isinstance(report.longrepr, tuple):
        report.longrepr = redact_private_keys(str(report.longrepr))
