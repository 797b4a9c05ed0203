"""The cost model (DESIGN.md, "Cost model"; docs/CONTRACT.md): parsed once into a frozen value
with the same rules, bandwidth lookup and capacity arithmetic as the planner's
`Sources/FlexSPCore/CostModel.swift`, so the runtime's fallback and checks agree with `serve`.

    cost_model = CostModel.load("configs/tiny-cpu-costmodel.json")
    cost_model.group_time([4096, 512], degree=2)

Also the strict JSON reader every contract document goes through (`loads_strict`).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

COST_MODEL_VERSION = 1
MAX_WORLD_SIZE = 1 << 20
MAX_SEQUENCE_LENGTH = 1 << 40
MAX_SEQUENCES = 8192
MAX_TOKEN_CAPACITY = 1 << 42
MAX_DOCUMENT_BYTES = 16 << 20
MAX_JSON_DEPTH = 64
_INT64 = 1 << 63
_DEGREE_KEY = re.compile(r"[+-]?[0-9]+")


class ContractError(ValueError):
    """A document that breaks the contract; the message names the field or place at fault."""


class CostModelError(ContractError):
    pass


def printable(text: str, limit: int = 60) -> str:
    """`text` quoted for a message, control characters escaped (as the planner does)."""
    out = []
    for ch in text[:limit]:
        code = ord(ch)
        if ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif code < 0x20 or 0x7F <= code < 0xA0 or ch in "\u2028\u2029":
            out.append(f"\\u{{{code:x}}}")
        else:
            out.append(ch)
    return "'" + "".join(out) + ("..." if len(text) > limit else "") + "'"


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ContractError(f"duplicate key {printable(key)}")
        seen[key] = value
    return seen


def _no_constant(name: str) -> Any:
    raise ContractError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ContractError(f"the number {printable(text, 30)} is out of range")
    return value


def _depth(value: Any, limit: int) -> int:
    """Nesting depth, without recursion (a hostile document cannot exhaust the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def loads_strict(text: str | bytes) -> Any:
    """RFC 8259 JSON as the planner reads it: no NaN/Infinity, no duplicate keys, no number
    beyond a double's range, at most 64 levels deep, at most 16 MiB. ContractError otherwise."""
    if len(text) > MAX_DOCUMENT_BYTES:
        raise ContractError(f"the document has {len(text)} bytes, more than the limit of {MAX_DOCUMENT_BYTES}")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ContractError(f"the document is not UTF-8 text (byte {error.start})") from None
    try:
        value = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant,
                           parse_float=_finite_float)
    except ContractError:
        raise
    except json.JSONDecodeError as error:
        raise ContractError(f"line {error.lineno}, column {error.colno}: {error.msg}") from None
    except (RecursionError, ValueError) as error:
        raise ContractError(f"not valid JSON ({type(error).__name__})") from None
    if _depth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise ContractError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def parse_document(text: str | bytes, what: str, error: type[ContractError]) -> Any:
    """`loads_strict`, with a failure raised as `error` naming the document (`what`)."""
    try:
        return loads_strict(text)
    except ContractError as problem:
        raise error(f"{what} is not valid JSON: {problem}") from None


def integer(value: Any, field: str, error: type[ContractError] = ContractError) -> int:
    """A JSON integer field: an integral number (8, 8.0) within 64 bits; never a boolean."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error(f"field '{field}' should be an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise error(f"field '{field}' should be an integer in range, got {value!r}")
        value = int(value)
    if not -_INT64 <= value < _INT64:
        raise error(f"field '{field}' should be an integer in range, got {value}")
    return value


def number(value: Any, field: str, error: type[ContractError] = ContractError) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error(f"field '{field}' should be a number")
    result = float(value)
    if not math.isfinite(result):
        raise error(f"field '{field}' should be a finite number")
    return result


@dataclass(frozen=True)
class CostModel:
    """One cluster and model's time and memory constants (ms, MB, GB/s, tokens)."""
    name: str
    world_size: int
    gpus_per_node: int
    memory_budget_mb: float
    model_states_mb: float
    activation_mb_per_token: float
    alpha1_ms: float
    alpha2_ms: float
    beta1_ms: float
    a2a_mb_per_token: float
    a2a_bandwidth_gbps: tuple[tuple[int, float], ...]  # (degree, GB/s), ascending by degree
    max_degree: int

    # -- reading -------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> CostModel:
        try:
            data = Path(path).read_bytes()
        except OSError as error:
            raise CostModelError(f"cannot read {path}: {error.strerror or error}") from None
        try:
            return cls.from_json(data)
        except CostModelError as error:
            raise CostModelError(f"{path}: {error}") from None

    @classmethod
    def from_json(cls, text: str | bytes) -> CostModel:
        return cls.from_document(parse_document(text, "cost model", CostModelError))

    @classmethod
    def from_document(cls, document: Any) -> CostModel:
        """Checks every field (docs/CONTRACT.md, in the planner's order); CostModelError names
        the first one at fault."""
        if not isinstance(document, dict):
            raise CostModelError("cost model: the document must be a JSON object")

        def field(key: str) -> Any:
            if key not in document:
                raise CostModelError(f"cost model field '{key}' is missing")
            return document[key]

        def whole(key: str) -> int:
            return integer(field(key), key, CostModelError)

        def real(key: str) -> float:
            return number(field(key), key, CostModelError)

        version = whole("version")
        if version != COST_MODEL_VERSION:
            raise CostModelError(f"cost model version {version} is not supported (this build reads version {COST_MODEL_VERSION})")
        name = document.get("name", "custom")
        if not isinstance(name, str):
            raise CostModelError("cost model field 'name' should be a string")
        values = dict(world_size=whole("world_size"), gpus_per_node=whole("gpus_per_node"),
                      memory_budget_mb=real("memory_budget_mb"), model_states_mb=real("model_states_mb"),
                      activation_mb_per_token=real("activation_mb_per_token"), alpha1_ms=real("alpha1_ms"),
                      alpha2_ms=real("alpha2_ms"), beta1_ms=real("beta1_ms"),
                      a2a_mb_per_token=real("a2a_mb_per_token"))
        raw = field("a2a_bandwidth_gbps")
        if not isinstance(raw, dict):
            raise CostModelError("cost model field 'a2a_bandwidth_gbps' should be an object")
        bandwidths: dict[int, float] = {}
        spelled: dict[int, str] = {}
        for key in sorted(raw):
            # As Swift's Int(key): an optional sign and digits, within 64 bits.
            digits = key.lstrip("+-").lstrip("0")
            degree = int((key[0] if key[0] in "+-" else "") + (digits or "0")) if _DEGREE_KEY.fullmatch(key) and len(digits) <= 19 else None
            if degree is None or not -_INT64 <= degree < _INT64:
                raise CostModelError(f"cost model field 'a2a_bandwidth_gbps' key {printable(key)} is not an integer degree")
            if degree in spelled:
                raise CostModelError(f"cost model field 'a2a_bandwidth_gbps' keys {printable(spelled[degree])} and "
                                     f"{printable(key)} both name degree {degree}")
            spelled[degree] = key
            bandwidths[degree] = number(raw[key], f"a2a_bandwidth_gbps.{key}", CostModelError)
        model = cls(name=name, a2a_bandwidth_gbps=tuple(sorted(bandwidths.items())), max_degree=whole("max_degree"),
                    **values)
        model.validate()
        return model

    def validate(self) -> None:
        """The planner's `CostModel.validate`, rule for rule."""
        def bad(key: str, why: str) -> CostModelError:
            return CostModelError(f"cost model field '{key}' {why}")

        if len(self.name) > 200 or any(ord(c) < 0x20 or ord(c) == 0x7F for c in self.name):
            raise bad("name", f"must be at most 200 characters without control characters, got {printable(self.name)}")
        if not 1 <= self.world_size <= MAX_WORLD_SIZE:
            raise bad("world_size", f"must be between 1 and {MAX_WORLD_SIZE}, got {self.world_size}")
        if not 1 <= self.gpus_per_node <= self.world_size:
            raise bad("gpus_per_node", f"must be between 1 and world_size ({self.world_size}), got {self.gpus_per_node}")
        if not (1 <= self.max_degree <= MAX_WORLD_SIZE and self.max_degree & (self.max_degree - 1) == 0):
            raise bad("max_degree", f"must be a power of two between 1 and {MAX_WORLD_SIZE}, got {self.max_degree}")
        for key in ("memory_budget_mb", "model_states_mb", "activation_mb_per_token", "alpha1_ms", "alpha2_ms",
                    "beta1_ms", "a2a_mb_per_token"):
            value = getattr(self, key)
            if key in ("memory_budget_mb", "activation_mb_per_token"):
                if not (math.isfinite(value) and value > 0):
                    raise bad(key, f"must be a positive number, got {value}")
            elif not (math.isfinite(value) and value >= 0):
                raise bad(key, f"must be zero or positive, got {value}")
        if not self.model_states_mb < self.memory_budget_mb:
            raise bad("model_states_mb", f"model states ({self.model_states_mb} MB) leave no room in the "
                                         f"{self.memory_budget_mb} MB budget")
        if self.alpha1_ms == 0 and self.alpha2_ms == 0 and self.beta1_ms == 0:
            raise bad("alpha1_ms", "alpha1_ms, alpha2_ms and beta1_ms are all zero: every plan would take no time")
        for degree, gbps in self.a2a_bandwidth_gbps:
            if degree < 2 or degree & (degree - 1):
                raise bad("a2a_bandwidth_gbps", f"key {degree} is not a power of two of at least 2")
            if not (math.isfinite(gbps) and gbps > 0):
                raise bad(f"a2a_bandwidth_gbps[{degree}]", f"must be a positive number, got {gbps}")
        if len(self.degrees) > 1 and 2 not in dict(self.a2a_bandwidth_gbps):
            raise bad("a2a_bandwidth_gbps", "needs at least degree 2 when max_degree and world_size allow degrees above 1")

    def to_document(self) -> dict:
        return {
            "version": COST_MODEL_VERSION, "name": self.name, "world_size": self.world_size,
            "gpus_per_node": self.gpus_per_node, "memory_budget_mb": self.memory_budget_mb,
            "model_states_mb": self.model_states_mb, "activation_mb_per_token": self.activation_mb_per_token,
            "alpha1_ms": self.alpha1_ms, "alpha2_ms": self.alpha2_ms, "beta1_ms": self.beta1_ms,
            "a2a_mb_per_token": self.a2a_mb_per_token,
            "a2a_bandwidth_gbps": {str(d): b for d, b in self.a2a_bandwidth_gbps},
            "max_degree": self.max_degree,
        }

    def first_difference(self, other: CostModel) -> str | None:
        """The first field in which two cost models differ, for messages; None if equal."""
        for key in self.__dataclass_fields__:
            if getattr(self, key) != getattr(other, key):
                return key
        return None

    # -- the equations (DESIGN.md eq. 11-14) ---------------------------------------------------

    @property
    def degrees(self) -> tuple[int, ...]:
        """Degrees a plan may use: 1, 2, 4, ... up to min(max_degree, world_size)."""
        top, result, d = min(self.max_degree, self.world_size), [], 1
        while d <= top:
            result.append(d)
            d *= 2
        return tuple(result)

    @property
    def tokens_per_gpu(self) -> float:
        return (self.memory_budget_mb - self.model_states_mb) / self.activation_mb_per_token

    def token_capacity(self, degree: int) -> int:
        """The most tokens a group of `degree` holds; the planner's arithmetic, bit for bit."""
        tokens = math.nextafter(self.tokens_per_gpu * degree, math.inf) + 1e-9
        if not tokens < MAX_TOKEN_CAPACITY:
            return MAX_TOKEN_CAPACITY
        return int(tokens) if tokens >= 0 else 0

    def fits(self, tokens: int, degree: int) -> bool:
        return tokens <= self.token_capacity(degree)

    def minimum_degree(self, length: int) -> int | None:
        return next((d for d in self.degrees if self.fits(length, d)), None)

    def bandwidth(self, degree: int) -> float:
        """GB/s for `degree`; a degree the document omits uses the nearest smaller one it lists."""
        table = dict(self.a2a_bandwidth_gbps)
        d = degree
        while d > 1:
            if d in table:
                return table[d]
            d //= 2
        return math.inf

    def sequence_time(self, length: int, degree: int) -> float:
        s, d = float(length), float(degree)
        compute = (self.alpha1_ms * s * s + self.alpha2_ms * s) / d
        if degree <= 1:
            return compute
        return compute + self.a2a_mb_per_token * s / (d * self.bandwidth(degree))

    def group_time(self, lengths: list[int] | tuple[int, ...], degree: int) -> float:
        time = self.beta1_ms
        for length in lengths:
            time += self.sequence_time(length, degree)
        return time

    def group_memory_mb(self, tokens: int, degree: int) -> float:
        return self.model_states_mb + self.activation_mb_per_token * tokens / degree
