"""Fixtures of the template tests: template.yaml loaded once per module with the project's loader."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.template import load_template


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = template["Resources"]
    return found
