"""Plain ``--help`` and usage lines, the same across typer versions: ``FILE...`` and
``[JOB]...`` as Click writes them, and options named by a metavar (``--timeout TIMEOUT``)
instead of recent typer's type tags (``<str>``, ``<list[str]>``, ``<int range>``)."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperCommand


def _usage(arg: Any) -> str:
    name = arg.metavar or arg.name.upper()
    if not arg.required and not name.startswith("["):
        name = f"[{name}]"
    return name + ("..." if arg.nargs != 1 and not name.endswith("...") else "")


def _argument_row(arg: Any) -> tuple[str, str]:
    extra = "required" if arg.required else None
    if not arg.required and arg.default not in (None, (), []):
        extra = f"default: {arg.default}"
    parts = [arg.help, f"[{extra}]" if extra else None]
    return _usage(arg), "  ".join(p for p in parts if p)


def _name_option(option: Any) -> None:
    """An option that takes a value and has no metavar gets one from its longest name."""
    if option.metavar is None and not getattr(option, "is_flag", False) and not option.count:
        longest = max(option.opts, key=len).lstrip("-")
        option.metavar = longest.replace("-", "_").upper()


class PlainHelpCommand(TyperCommand):
    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        pieces += [_usage(p) for p in self.get_params(ctx) if p.param_type_name == "argument"]
        return pieces

    def format_options(self, ctx: Any, formatter: Any) -> None:
        arguments, options = [], []
        for param in self.get_params(ctx):
            if getattr(param, "hidden", False):
                continue
            if param.param_type_name == "argument":
                arguments.append(_argument_row(param))
                continue
            _name_option(param)
            record = param.get_help_record(ctx)
            if record is not None:
                options.append(record)
        for title, rows in (("Arguments", arguments), ("Options", options)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


def use_plain_help(app: typer.Typer) -> None:
    """Give every command of ``app`` (and of its sub-apps) the plain help above."""
    for command in app.registered_commands:
        if command.cls in (None, TyperCommand):
            command.cls = PlainHelpCommand
    for group in app.registered_groups:
        if group.typer_instance is not None:
            use_plain_help(group.typer_instance)
