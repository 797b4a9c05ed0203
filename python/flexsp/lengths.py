"""Length files: one sequence length per line (docs/CONTRACT.md, the planner's
`Sources/FlexSPCore/LengthFile.swift`). `#` starts a comment; spaces, tabs and carriage returns
around a value are ignored; empty lines are skipped; a value is an optional sign and ASCII
digits, from 1 to 2^40."""

from __future__ import annotations

import re
from pathlib import Path

from flexsp.contract import MAX_SEQUENCE_LENGTH, ContractError, printable

_VALUE = re.compile(r"[+-]?[0-9]+", re.ASCII)


class LengthFileError(ContractError):
    pass


def parse_lengths(text: str, source: str) -> list[int]:
    lengths = []
    for number, line in enumerate(text.split("\n"), start=1):
        field = line.split("#", 1)[0].strip(" \t\r")
        if not field:
            continue
        if not _VALUE.fullmatch(field):
            raise LengthFileError(f"{source}:{number}: {printable(field, 40)} is not a sequence length "
                                  "(expected one positive integer per line; '#' starts a comment)")
        # Past 13 significant digits a length is over the limit (and int() of thousands of
        # digits would itself refuse).
        significant = field.lstrip("+-").lstrip("0")
        value = int(field[0] + significant[:14]) if field[0] in "+-" and significant else int(significant[:14] or "0")
        if value <= 0:
            raise LengthFileError(f"{source}:{number}: length {field} is not positive")
        if len(significant) > 13 or value > MAX_SEQUENCE_LENGTH:
            raise LengthFileError(f"{source}:{number}: length {printable(field, 40)} is over the limit of "
                                  f"{MAX_SEQUENCE_LENGTH} tokens")
        lengths.append(value)
    if not lengths:
        raise LengthFileError(f"{source}: no sequence lengths (the file is empty)")
    return lengths


def load_lengths(path: str | Path) -> list[int]:
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise LengthFileError(f"{path}: not UTF-8 text") from None
    return parse_lengths(text, str(path))
