"""Every command and every option of `license-svc` says what it is for in `--help`."""

from __future__ import annotations

import argparse

from license_svc.entrypoints.cli.main import build_parser


def commands(
    parser: argparse.ArgumentParser, path: str = "license-svc"
) -> dict[str, argparse.ArgumentParser]:
    found = {path: parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found |= commands(sub, f"{path} {name}")
    return found


def test_every_option_and_argument_of_every_command_has_help_text() -> None:
    silent = [
        f"{path}: {'/'.join(action.option_strings) or action.dest}"
        for path, parser in commands(build_parser()).items()
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction) and not action.help
    ]
    assert silent == []


def test_help_offers_one_spelling_and_only_what_can_be_issued() -> None:
    issue = commands(build_parser())["license-svc keys issue"]
    product = next(a for a in issue._actions if "--product" in a.option_strings)
    assert list(product.choices or []) == ["integrations"]
    activate = commands(build_parser())["license-svc activate"]
    product = next(a for a in activate._actions if "--product" in a.option_strings)
    assert list(product.choices or []) == ["integrations", "cloud_pos"]
    spell = product.type
    assert callable(spell) and spell("cloud-pos") == spell("PRODUCT_CLOUD_POS") == "cloud_pos"
