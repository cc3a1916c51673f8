"""Option bundles: a dataclass of Typer options that several commands share, declared once.

Typer builds a command's options from its function's parameters and has no way to group
them. A bundle is a frozen dataclass whose fields are ``Annotated`` Typer options with their
defaults (``cli/options.py``: ``JobOptions``, ``OutputOptions``). A command takes it as one
parameter typed with the class and is wrapped with :func:`expand`::

    @expand
    def submit(ctx: typer.Context, source: ..., job: JobOptions, json_out: o.Json = False):
        job.model, job.whisper_params() ...

Typer then sees the bundle's fields in that parameter's place (their order in ``--help``),
and the command receives the dataclass built from the values given. Adding an option to every
command of a bundle is adding one field to the dataclass.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def _is_bundle(annotation: Any) -> bool:
    return isinstance(annotation, type) and dataclasses.is_dataclass(annotation)


def _fields_as_parameters(bundle: type) -> list[inspect.Parameter]:
    hints = typing.get_type_hints(bundle, include_extras=True)
    return [
        inspect.Parameter(
            field.name,
            inspect.Parameter.KEYWORD_ONLY,
            annotation=hints[field.name],
            default=field.default,
        )
        for field in dataclasses.fields(bundle)
    ]


def expand(command: F) -> F:
    """``command`` with each bundle-typed parameter replaced, for Typer, by the bundle's
    fields; a field named like another parameter is a ``TypeError`` at import time."""
    hints = typing.get_type_hints(command, include_extras=True)
    parameters: list[inspect.Parameter] = []
    bundles: dict[str, tuple[type, list[str]]] = {}
    for param in inspect.signature(command).parameters.values():
        annotation = hints.get(param.name, param.annotation)
        if _is_bundle(annotation):
            fields = _fields_as_parameters(annotation)
            bundles[param.name] = (annotation, [f.name for f in fields])
            parameters.extend(fields)
        else:
            parameters.append(
                param.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=annotation)
            )
    names = [p.name for p in parameters]
    if len(names) != len(set(names)):
        raise TypeError(f"{command.__name__}: a bundle's field repeats a parameter name")

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        for name, (bundle, fields) in bundles.items():
            kwargs[name] = bundle(**{field: kwargs.pop(field) for field in fields})
        return command(**kwargs)

    signature = inspect.Signature(parameters)
    wrapper.__signature__ = signature  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    return typing.cast(F, wrapper)
