"""The cost model (docs/DESIGN.md, "Cost model"; docs/CONTRACT.md): parsed once into a frozen value
with the same rules, bandwidth lookup and capacity arithmetic as the planner's
`Sources/FlexSPCore/CostModel.swift`, so the runtime's fallback and checks agree with `serve`.

    cost_model = CostModel.load("configs/tiny-cpu-costmodel.json")
    cost_model.group_time([4096, 512], degree=2)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flexsp.contract import (INT64, MAX_TOKEN_CAPACITY, MAX_WORLD_SIZE, ContractError, integer, number,
                             parse_document, printable)

_DEGREE_KEY = re.compile(r"[+-]?[0-9]+")

COST_MODEL_VERSION = 1


class CostModelError(ContractError):
    pass


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
            if degree is None or not -INT64 <= degree < INT64:
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

    # -- the equations (docs/DESIGN.md eq. 11-14) ---------------------------------------------------

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
