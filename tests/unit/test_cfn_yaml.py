"""The CloudFormation YAML loader (local/cfn_yaml.py) that template.yaml is read with, here and locally."""

from __future__ import annotations

import pytest
import yaml

from local.cfn_yaml import load_cfn

SHORT_FORMS = """
ref: !Ref OrderQueue
condition: !Condition HasAlarmEmail
get_att_dotted: !GetAtt OrderQueue.Arn
get_att_list: !GetAtt [OrderQueue, Arn]
sub: !Sub "${AWS::StackName}-orders"
if: !If [SnapStartEnabled, PublishedVersions, None]
not: !Not [!Equals [!Ref EnableSnapStart, "true"]]
and: !And [!Condition A, !Condition B]
or: !Or [!Condition A, !Condition B]
select: !Select [0, !Split [",", "a,b"]]
join: !Join ["-", [a, b]]
find_in_map: !FindInMap [Sizes, !Ref Env, Memory]
base64: !Base64 text
get_azs: !GetAZs ""
import_value: !ImportValue shared-bus
cidr: !Cidr [10.0.0.0/16, 4, 8]
"""


def test_every_short_form_loads_as_its_long_form() -> None:
    # Given a document with each of CloudFormation's short-form tags
    # When it is loaded
    document = load_cfn(SHORT_FORMS)

    # Then each is the long form CloudFormation itself would see
    assert document == {
        "ref": {"Ref": "OrderQueue"},
        "condition": {"Condition": "HasAlarmEmail"},
        "get_att_dotted": {"Fn::GetAtt": ["OrderQueue", "Arn"]},
        "get_att_list": {"Fn::GetAtt": ["OrderQueue", "Arn"]},
        "sub": {"Fn::Sub": "${AWS::StackName}-orders"},
        "if": {"Fn::If": ["SnapStartEnabled", "PublishedVersions", "None"]},
        "not": {"Fn::Not": [{"Fn::Equals": [{"Ref": "EnableSnapStart"}, "true"]}]},
        "and": {"Fn::And": [{"Condition": "A"}, {"Condition": "B"}]},
        "or": {"Fn::Or": [{"Condition": "A"}, {"Condition": "B"}]},
        "select": {"Fn::Select": [0, {"Fn::Split": [",", "a,b"]}]},
        "join": {"Fn::Join": ["-", ["a", "b"]]},
        "find_in_map": {"Fn::FindInMap": ["Sizes", {"Ref": "Env"}, "Memory"]},
        "base64": {"Fn::Base64": "text"},
        "get_azs": {"Fn::GetAZs": ""},
        "import_value": {"Fn::ImportValue": "shared-bus"},
        "cidr": {"Fn::Cidr": ["10.0.0.0/16", 4, 8]},
    }


def test_a_dotted_get_att_keeps_the_dots_of_its_attribute() -> None:
    # Given an attribute name that itself holds a dot (e.g. Endpoint.Address)
    # When it is loaded
    # Then only the first dot separates the logical id from the attribute
    assert load_cfn("x: !GetAtt Database.Endpoint.Address") == {
        "x": {"Fn::GetAtt": ["Database", "Endpoint.Address"]}
    }


def test_an_unknown_tag_fails_to_load_rather_than_being_guessed() -> None:
    # Given a tag CloudFormation does not define
    # When it is loaded
    # Then loading fails
    with pytest.raises(yaml.constructor.ConstructorError):
        load_cfn("x: !Reff OrderQueue")


def test_python_object_tags_are_refused() -> None:
    # Given a document asking for a Python object (what an unsafe loader would build)
    # When it is loaded
    # Then loading fails: the loader is a SafeLoader
    with pytest.raises(yaml.constructor.ConstructorError):
        load_cfn("x: !!python/object/apply:os.system [echo hi]")
