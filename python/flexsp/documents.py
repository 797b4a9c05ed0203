"""Text documents for preparation: read from JSON lines, Parquet or text files, checked, and
tokenized into sequences for a ShardWriter (flexsp/shards.py).

A document is read whole, except in a text file, where one longer than a window comes in parts
(`more`: the document goes on in the next), so memory stays bounded (flexsp/streaming.py). Every
document gets the tokenizer's end-of-document token appended and is cut by `split_document`.
"""

from __future__ import annotations

import json
import stat
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

from flexsp import streaming
from flexsp.shards import ShardWriter, held_out_split
from flexsp.streaming import split_document


class DocumentError(ValueError):
    """A document that cannot be read; the message names the file, the record or line, and a fix."""


@dataclass
class Document:
    text: str
    where: str  # "FILE:LINE" or "FILE: record N", for error messages
    more: bool = False  # the document goes on in the next one (a long document, read in parts)


def read_documents(path: Path, text_field: str, separator: str) -> Iterator[Document]:
    suffix = path.suffix.lower()
    if not path.exists():
        raise DocumentError(f"{path}: no such file")
    if path.is_dir():
        raise DocumentError(f"{path}: a directory, not a file; pass the files in it")
    if not path.is_file():
        mode = path.stat().st_mode
        kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else
                "a socket" if stat.S_ISSOCK(mode) else "a device")
        raise DocumentError(f"{path}: {kind}, not a regular file; write the data to a file first")
    if suffix in (".jsonl", ".json"):
        yield from _read_jsonl(path, text_field)
    elif suffix == ".parquet":
        yield from _read_parquet(path, text_field)
    else:
        yield from _read_text(path, separator)


def _decode(raw: bytes, path: Path, line: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _not_utf8(path, line + raw[:error.start].count(b"\n"), raw[error.start]) from None


def _not_utf8(path: Path, line: int, byte: int) -> DocumentError:
    return DocumentError(f"{path}:{line}: not UTF-8 (byte 0x{byte:02x}); convert the file to "
                        "UTF-8 first, e.g. `iconv -f latin1 -t utf-8`")


def jsonl_records(path: Path, expected: str) -> Iterator[tuple[int, dict]]:
    """The numbered JSON objects of a JSON-lines file (blank lines skipped); DocumentError naming
    file:line for bytes that are not UTF-8, JSON that cannot be read, or a line that is not an
    object (`expected` says what the object should hold). Shared by text and chat preparation."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            line = _decode(raw, path, number).strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise DocumentError(f"{path}:{number}: not valid JSON ({error.msg}); each line "
                                    "must hold one JSON object") from None
            except RecursionError:
                raise DocumentError(f"{path}:{number}: JSON nested too deeply to read (more levels "
                                    "than Python's recursion limit)") from None
            except ValueError as error:  # an integer over Python's limit of digits
                raise DocumentError(f"{path}:{number}: JSON that cannot be read "
                                    f"({str(error).split(';')[0]})") from None
            if not isinstance(record, dict):
                raise DocumentError(f"{path}:{number}: a JSON {type(record).__name__}, expected an "
                                    f"object with {expected}")
            yield number, record


def _read_jsonl(path: Path, text_field: str) -> Iterator[Document]:
    for number, record in jsonl_records(path, "a text field"):
        if text_field not in record:
            raise DocumentError(f"{path}:{number}: record has no {text_field!r} field (its "
                               f"fields: {', '.join(sorted(record)) or 'none'}); pass "
                               "--text-field NAME")
        text = record[text_field]
        if not isinstance(text, str):
            raise DocumentError(f"{path}:{number}: field {text_field!r} is a "
                               f"{type(text).__name__}, not a string")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:  # JSON's \ud800 escapes can make one
            raise DocumentError(
                f"{path}:{number}: field {text_field!r} holds a lone surrogate "
                f"(\\u{ord(text[error.start]):04x} at character {error.start}), which is "
                "not Unicode text; fix what wrote the file") from None
        yield Document(text, f"{path}:{number}")


def parquet_records(path: Path, field: str, flag: str) -> Iterator[tuple[int, dict]]:
    """The numbered records of a Parquet file that has a column `field` (`flag` is the option that
    names another); DocumentError naming the file otherwise. Shared by text and chat preparation."""
    import datasets  # heavy; only Parquet needs it
    datasets.disable_progress_bars()
    try:
        table = datasets.load_dataset("parquet", data_files=str(path), split="train",
                                      streaming=True)
        columns = list(table.features or {})
    except Exception as error:  # pyarrow's errors vary by version; the file is the problem
        raise DocumentError(f"{path}: not a readable Parquet file ({error})") from None
    if columns and field not in columns:
        raise DocumentError(f"{path}: no column {field!r} (columns: {', '.join(columns)}); "
                            f"pass {flag} NAME")
    yield from enumerate(table, start=1)


def _read_parquet(path: Path, text_field: str) -> Iterator[Document]:
    for number, record in parquet_records(path, text_field, "--text-field"):
        text = record.get(text_field)
        if not isinstance(text, str):
            what = "missing" if text is None else type(text).__name__
            raise DocumentError(f"{path}: record {number}: {text_field!r} is {what}, not a string")
        yield Document(text, f"{path}: record {number}")


def _read_text(path: Path, separator: str) -> Iterator[Document]:
    for text, line, more in streaming.text_fragments(
            path, separator, lambda line, byte: _not_utf8(path, line, byte),
            streaming.WINDOW_CHARS):
        yield Document(text, f"{path}:{line}", more)



def encode_batch(tokenizer, pending: list[Document], writer: ShardWriter, documents: int, tokens: int,
            input_bytes: int, max_seq_len: int, long: str, held_out: Fraction, bar
            ) -> tuple[int, int, int]:
    """Tokenizes a chunk of documents (the fast tokenizer's batch encoding runs on all cores)."""
    if not pending:
        return documents, tokens, input_bytes
    texts = [d.text for d in pending]
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    for ids in encoded:
        split = held_out_split(documents, held_out)
        for piece in split_document(ids + [eos], max_seq_len, long):
            writer.add(piece, split)
            tokens += len(piece)
        documents += 1
    chunk_bytes = sum(len(t.encode("utf-8")) for t in texts)
    if bar is not None:
        bar.update(chunk_bytes)
    return documents, tokens, input_bytes + chunk_bytes


def encode_long_document(tokenizer, first: Document, stream: Iterator[Document], writer: ShardWriter,
                 documents: int, tokens: int, input_bytes: int, max_seq_len: int, long: str,
                 held_out: Fraction, bar, skip_empty: bool) -> tuple[int, int, int]:
    """One document longer than a window (`first` and, while `more`, the next ones of `stream`),
    tokenized a window at a time, its sequences written as its tokens come."""
    split, pieces = held_out_split(documents, held_out), streaming.Pieces(max_seq_len, long)
    held: list[list[int]] = []  # sequences of a document that is only whitespace so far
    seen_text = False

    def fragments() -> Iterator[str]:
        nonlocal input_bytes, seen_text
        document = first
        while True:
            for fragment in streaming.windows(document.text, streaming.WINDOW_CHARS):
                seen_text = seen_text or not fragment.isspace()
                size = len(fragment.encode("utf-8"))
                input_bytes += size
                if bar is not None:
                    bar.update(size)
                yield fragment
            if not document.more:
                return
            document = next(stream)

    def write(sequences: list[list[int]]) -> None:
        nonlocal tokens
        held.extend(sequences)
        if seen_text:
            for piece in held:
                writer.add(piece, split)
                tokens += len(piece)
            held.clear()

    text = fragments()
    for ids in streaming.encode_long(tokenizer, text, streaming.WINDOW_CHARS):
        write(pieces.feed(ids))
        if pieces.done:  # truncated: the rest is read, not tokenized
            for _ in text:
                pass
    if not seen_text:
        if skip_empty:
            return documents, tokens, input_bytes
        raise DocumentError(f"{first.where}: empty document; remove it or pass --skip-empty")
    write(pieces.finish(tokenizer.eos_token_id))
    return documents + 1, tokens, input_bytes
