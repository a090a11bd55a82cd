"""template.yaml with other parameter defaults, for the linters that cannot be given parameter values.

cfn-lint and checkov check a template as its parameters' defaults make it (checkov resolves Ref and
Fn::If from them); neither takes parameter values on the command line. `make template` lints the
template as written and, through this module, once more with EnableRefunds=true:

    python -m local.template_variant --default EnableRefunds=true --default EnableConfirmations=true \
        --output .aws-sam/template-features-on.json

The copy is CloudFormation JSON (short tags in their long forms, local/cfn_yaml.py), so nothing is lost
in writing it back; only the named defaults differ.
"""

from __future__ import annotations

import argparse
import copy
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from local.template import TEMPLATE_PATH, load_document


def with_defaults(document: Mapping[str, Any], defaults: Mapping[str, str]) -> dict[str, Any]:
    """A copy of the template whose named parameters default to the given values (each must exist and
    be one of its AllowedValues, when it has any)."""
    changed = copy.deepcopy(dict(document))
    parameters: dict[str, Any] = changed.get("Parameters") or {}
    for name, value in defaults.items():
        if name not in parameters:
            raise KeyError(f"no parameter {name!r}")
        allowed = parameters[name].get("AllowedValues")
        if allowed is not None and value not in [str(item) for item in allowed]:
            raise ValueError(f"{name}={value!r} is not one of {allowed}")
        parameters[name]["Default"] = value
    return changed


def _assignment(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--template", type=Path, default=TEMPLATE_PATH)
    parser.add_argument("--default", type=_assignment, action="append", required=True, metavar="NAME=VALUE")
    parser.add_argument("--output", type=Path, required=True)
    arguments = parser.parse_args(argv)
    variant = with_defaults(load_document(arguments.template), dict(arguments.default))
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(variant, indent=1) + "\n", encoding="utf-8")
    changes = ", ".join(f"{name}={value}" for name, value in arguments.default)
    print(f"{arguments.output}: {arguments.template.name} with {changes}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
