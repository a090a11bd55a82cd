"""CloudFormation YAML: the short-form intrinsic tags (``!Ref``, ``!GetAtt``, ``!Sub``, ...) read as their
long JSON forms, so a template loads as CloudFormation itself would see it.

The one loader of the project: local/template.py and tests/unit/test_template.py both read template.yaml
with it. A tag not listed here fails to load rather than being guessed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import yaml

# Short tag -> the long form's key. !Ref and !Condition keep their bare names; the others are Fn::.
SHORT_FORMS: Final[Mapping[str, str]] = {
    "Ref": "Ref",
    "Condition": "Condition",
    **{
        name: f"Fn::{name}"
        for name in (
            "And",
            "Base64",
            "Cidr",
            "Equals",
            "FindInMap",
            "GetAZs",
            "GetAtt",
            "If",
            "ImportValue",
            "Join",
            "Not",
            "Or",
            "Select",
            "Split",
            "Sub",
        )
    },
}


class CfnLoader(yaml.SafeLoader):
    """A SafeLoader that reads CloudFormation's short tags as their long forms."""


def _node_value(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    raise yaml.constructor.ConstructorError(None, None, f"unexpected node {node!r}", node.start_mark)


def _long_form(key: str) -> Callable[[yaml.SafeLoader, yaml.Node], dict[str, Any]]:
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        value = _node_value(loader, node)
        if key == "Fn::GetAtt" and isinstance(value, str):
            # The dotted form: !GetAtt Queue.Arn is [Queue, Arn] (the attribute may hold dots itself).
            logical_id, _, attribute = value.partition(".")
            value = [logical_id, attribute]
        return {key: value}

    return construct


for _tag, _key in SHORT_FORMS.items():
    CfnLoader.add_constructor(f"!{_tag}", _long_form(_key))


def load_cfn(text: str) -> Any:
    """A CloudFormation YAML document, short tags in their long forms."""
    return yaml.load(text, Loader=CfnLoader)  # a SafeLoader subclass: no arbitrary objects


def load_cfn_file(path: Path) -> dict[str, Any]:
    """A CloudFormation template file: a mapping at the top, or ValueError."""
    document = load_cfn(path.read_text(encoding="utf-8"))
    if isinstance(document, dict):
        return document
    raise ValueError(f"{path}: not a CloudFormation template")
