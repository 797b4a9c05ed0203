"""Typed reading of a YAML file into dataclasses: every value checked once, at load, against its
field's type and range, every error one line naming the file, the line and the key.

A field's type annotation says what it accepts (int, float, bool, str, Literal choices, a fixed
tuple, a mapping, None where Optional); `ranged(default, ...)` adds a range or a check. Floats
must be finite unless a field says otherwise; an unknown key is named with the nearest known one.
"""

from __future__ import annotations

import difflib
import math
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Literal

import yaml


class ConfigError(ValueError):
    """A config that cannot be used; the message names the file, line and key, and what fits."""


def ranged(default: Any, *, min: float | None = None, gt: float | None = None,
           max: float | None = None, check: Callable[[Any], str | None] | None = None) -> Any:
    """A dataclass field with a range (min <= v, gt < v, v <= max) or a check (returns the
    problem, or None), applied after the type check."""
    return field(default=default, metadata={"min": min, "gt": gt, "max": max, "check": check})


@dataclass
class Source:
    """Where values came from, to point at them: the file and the line of each dotted key, and
    the keys set on the command line (flag per key)."""

    path: Path
    lines: dict[str, int] = field(default_factory=dict)
    flags: dict[str, str] = field(default_factory=dict)

    def where(self, key: str) -> str:
        if key in self.flags:
            return f"{self.flags[key]}: {key}"
        line = self.lines.get(key) or self.lines.get(key.rsplit(".", 1)[0])
        return f"{self.path}:{line}: {key}" if line else f"{self.path}: {key}"

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.where(key)}: {problem}")


def read_yaml(path: str | Path) -> tuple[dict, Source]:
    """The top-level mapping of a YAML file and the line of every key in it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8"
        raise ConfigError(f"{path}: cannot read the config ({(reason or str(error)).lower()})") \
            from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{path}{at}: not valid YAML ({problem})") from None
    source = Source(path)
    if raw is None:
        return {}, source
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections (model:, data:, train:, ...), "
                          f"found {describe(raw)}")
    _key_lines(node, "", source.lines)
    return raw, source


def _key_lines(node: Any, prefix: str, lines: dict[str, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = f"{prefix}{key.value}"
            lines.setdefault(name, key.start_mark.line + 1)
            _key_lines(value, name + ".", lines)


def describe(value: Any) -> str:
    """A value as a message shows it: its repr, shortened, with its YAML kind for containers."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return f"a list ({_short(value)})"
    return _short(value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def read_section(cls: type, values: Any, name: str, source: Source) -> Any:
    """An instance of dataclass `cls` from the mapping `values` of section `name`."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise source.error(name, f"expected a mapping of keys, found {describe(values)}")
    known = {f.name: f for f in fields(cls)}
    for key in values:
        if key not in known:
            near = difflib.get_close_matches(str(key), list(known), n=1)
            hint = f"did you mean {near[0]!r}?" if near else f"known keys: {', '.join(known)}"
            raise source.error(f"{name}.{key}", f"unknown key; {hint}")
    hints = typing.get_type_hints(cls)
    checked = {}
    for key, value in values.items():
        dotted = f"{name}.{key}"
        converted = convert(value, hints[key], lambda problem: source.error(dotted, problem))
        problem = check_range(converted, known[key].metadata)
        if problem:
            raise source.error(dotted, problem)
        checked[key] = converted
    return cls(**checked)


def convert(value: Any, hint: Any, fail: Callable[[str], ConfigError]) -> Any:
    """`value` as type `hint` wants it, or raises fail(problem)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        problems = []
        for option in options:
            try:
                return convert(value, option, ConfigError)
            except ConfigError as error:
                problems.append(str(error))
        if len(options) == 1:
            raise fail(problems[0])
        raise fail(f"expected {' or '.join(_kind(o) for o in options)}"
                   f"{' or null' if type(None) in args else ''}, found {describe(value)}")
    if origin is Literal:
        if value in args:
            return value
        near = difflib.get_close_matches(str(value), [str(a) for a in args], n=1)
        hint_text = f" (did you mean {near[0]!r}?)" if near else ""
        raise fail(f"{describe(value)} is not one of {', '.join(repr(a) for a in args)}"
                   f"{hint_text}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise fail(f"expected a list of {len(args)} values, found {describe(value)}")
        return tuple(convert(v, a, fail) for v, a in zip(value, args))
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise fail(f"expected a mapping, found {describe(value)}")
        return value
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise fail(f"expected true or false, found {describe(value)}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise fail(f"expected an integer, found {describe(value)}")
    if hint is float:
        number = value
        if isinstance(value, str):  # YAML 1.1 reads 3e-4 (no dot) as a string
            try:
                number = float(value)
            except ValueError:
                pass
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise fail(f"expected a number, found {describe(value)}")
        if not math.isfinite(number):
            raise fail(f"expected a finite number, found {describe(value)}")
        return float(number)
    if hint is str:
        if isinstance(value, str):
            return value
        raise fail(f"expected a string, found {describe(value)}")
    raise TypeError(f"schema: no reader for the type {hint!r}")  # a config class, not the user


def _kind(hint: Any) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    if typing.get_origin(hint) is dict or hint is dict:
        return "a mapping"
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def check_range(value: Any, metadata: typing.Mapping[str, Any]) -> str | None:
    if value is None:
        return None
    low, above, high = metadata.get("min"), metadata.get("gt"), metadata.get("max")
    if low is not None and value < low:
        return f"must be at least {low:g}, found {describe(value)}"
    if above is not None and not value > above:
        return f"must be > {above:g}, found {describe(value)}"
    if high is not None and value > high:
        return f"must be at most {high:g}, found {describe(value)}"
    check = metadata.get("check")
    return check(value) if check is not None else None
