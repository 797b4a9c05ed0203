"""Documents of any size in bounded memory: a text file read in blocks, long documents
tokenized in windows, their tokens cut into sequences as they come.

A fast tokenizer holds several hundred bytes per token of its input while it works (a 30 MB
document took 5 GB), so a document longer than WINDOW_CHARS is tokenized a window at a time.
Each window ends at a pre-token boundary (where the tokenizer's own pre-tokenizer splits) before
a space that follows a word, so the tokens are those of the whole document: byte-level BPE
(GPT-2, Llama 3, Qwen) never merges across pre-tokens. Documents up to WINDOW_CHARS are tokenized whole,
exactly as before.
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Callable, Iterable, Iterator

WINDOW_CHARS = 1 << 18   # characters tokenized at once, and a fragment's most
BLOCK_BYTES = 1 << 20    # bytes read from a text file at once
_LOOKAHEAD = 4096        # characters past a window kept so its last pre-tokens are whole
_SCAN = 8192             # characters before a window's end searched for where to cut it


def text_fragments(path: Path, separator: str, on_bad_utf8: Callable[[int, int], Exception],
                   limit: int = WINDOW_CHARS) -> Iterator[tuple[str, int, bool]]:
    """(text, line, more) for the documents of a text file, in order: each document as one or
    more fragments of at most `limit` characters (more: the document goes on in the next);
    line: where the fragment starts. on_bad_utf8(line, byte) makes the error to raise."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    keep = max(len(separator) - 1, 0)  # a separator may straddle two blocks
    buffer, line, lines_read = "", 1, 1
    with open(path, "rb") as f:
        while True:
            raw = f.read(BLOCK_BYTES)
            try:
                buffer += decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as error:
                raise on_bad_utf8(lines_read + raw[:error.start].count(b"\n"),
                                  raw[error.start]) from None
            lines_read += raw.count(b"\n")
            position = 0
            while separator and (end := buffer.find(separator, position)) >= 0:
                yield buffer[position:end], line, False
                line += buffer.count("\n", position, end) + separator.count("\n")
                position = end + len(separator)
            while len(buffer) - position - keep > limit:  # no separator in sight: a long one
                yield buffer[position:position + limit], line, True
                line += buffer.count("\n", position, position + limit)
                position += limit
            buffer = buffer[position:]
            if not raw:
                yield buffer, line, False
                return


def windows(text: str, limit: int = WINDOW_CHARS) -> Iterator[str]:
    """A document already in memory, as fragments for `encode_long`."""
    for start in range(0, len(text), limit):
        yield text[start:start + limit]


def encode_long(tokenizer, fragments: Iterable[str], window: int = WINDOW_CHARS,
                batch: int = 4) -> Iterator[list[int]]:
    """The token ids of one document given as text fragments, a window at a time (`batch`
    windows per call, which a fast tokenizer encodes in parallel); joined, they are the ids of
    the whole document tokenized at once."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    pre_tokenizer = backend.pre_tokenizer if backend is not None else None
    carry = ""

    def cut_windows(least: int) -> Iterator[list[int]]:
        nonlocal carry
        texts = []
        while len(carry) > least and len(texts) < batch:
            cut = _cut(pre_tokenizer, carry, window)
            texts.append(carry[:cut])
            carry = carry[cut:]
        if texts:
            yield from tokenizer(texts, add_special_tokens=False)["input_ids"]

    for fragment in fragments:
        carry += fragment
        if len(carry) > batch * window + _LOOKAHEAD:
            yield from cut_windows(window + _LOOKAHEAD)
    while len(carry) > window + _LOOKAHEAD:
        yield from cut_windows(window + _LOOKAHEAD)
    if carry:
        yield tokenizer(carry, add_special_tokens=False)["input_ids"]


def _cut(pre_tokenizer, text: str, window: int) -> int:
    """Where to end a window: the last pre-token start at or before `window` that is a space
    after a non-space character (" word": no pre-token of byte-level BPE spans it, unlike a
    whitespace run, which the tokenizer splits by what follows it, or a special token's text),
    else the last pre-token start after a non-space character, else `window` itself (no such
    boundary near the window's end: rare, and inexact only there). Only the window's last
    _SCAN characters are pre-tokenized: doing the whole window cost as much as tokenizing it."""
    low = max(1, window - _SCAN)
    region = text[low:window + _LOOKAHEAD]
    if pre_tokenizer is None:  # no pre-tokenizer to ask: every space after a non-space
        starts = [low + i for i in range(1, len(region)) if region[i] == " "]
    else:  # the region's first pre-token may start mid-word, its last run on past it
        starts = [low + start for _, (start, _) in pre_tokenizer.pre_tokenize_str(region)][1:-1]
    settled = [s for s in starts if s <= window and not text[s - 1].isspace()]
    for start in reversed(settled):
        if text[start] == " ":
            return start
    return settled[-1] if settled else window


def split_document(ids: list[int], max_seq_len: int, long: str) -> list[list[int]]:
    if len(ids) <= max_seq_len:
        return [ids]
    if long == "truncate":
        return [ids[:max_seq_len]]
    pieces = [ids[i:i + max_seq_len] for i in range(0, len(ids), max_seq_len)]
    # A last piece of one token predicts nothing (no next token): left out.
    return pieces if len(pieces[-1]) > 1 else pieces[:-1]


class Pieces:
    """Cuts one document's token ids, given in chunks, into sequences exactly as
    `split_document` cuts the whole list: pieces of `max_seq_len`, the end-of-document
    token after the last id, a last piece of one token left out (it predicts nothing); with
    long="truncate" only the first piece."""

    def __init__(self, max_seq_len: int, long: str) -> None:
        self.max_seq_len, self.truncate = max_seq_len, long == "truncate"
        self.buffer: list[int] = []
        self.emitted = 0
        self.done = False  # truncated: the rest of the document is not needed

    def feed(self, ids: list[int]) -> list[list[int]]:
        if self.done:
            return []
        self.buffer += ids
        if self.truncate:
            if len(self.buffer) >= self.max_seq_len:
                self.done = True
                return self._take(self.max_seq_len)
            return []
        pieces = []
        while len(self.buffer) > self.max_seq_len:  # at least one id stays for the last piece
            pieces += self._take(self.max_seq_len)
        return pieces

    def finish(self, eos: int) -> list[list[int]]:
        if self.done:
            return []
        self.buffer.append(eos)
        pieces = []
        while len(self.buffer) > self.max_seq_len:
            pieces += self._take(self.max_seq_len)
        if self.truncate or not (self.emitted and len(self.buffer) == 1):
            pieces += self._take(len(self.buffer))
        return pieces

    def _take(self, n: int) -> list[list[int]]:
        piece, self.buffer = self.buffer[:n], self.buffer[n:]
        self.emitted += 1
        return [piece]
