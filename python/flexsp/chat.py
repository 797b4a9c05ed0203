"""Chat conversations -> token ids and a per-token loss mask, with the tokenizer's chat template.

A conversation is a list of messages `{"role": ..., "content": "..."}` with roles system, user,
assistant or tool. The whole conversation is rendered by the tokenizer's chat template (or one
given with `--chat-template FILE`) and tokenized once; a token is *trained* (mask 1) when it
holds any character an assistant turn contributed, so the model learns every assistant reply
and its end-of-turn token, and never the system prompt, the user's words or the role headers.

Which characters an assistant turn contributed is found in one of two ways:
  - generation markers: a template with `{% generation %}` blocks says so itself; transformers
    returns the mask (`apply_chat_template(..., return_assistant_tokens_mask=True)`);
  - prefix rendering, for any other template: for assistant message i, the text rendered from
    messages[:i] with the generation prompt ends where the reply begins, and the text rendered
    from messages[:i + 1] ends where it ends. Both must be prefixes of the whole rendering; a
    template that renders earlier turns differently once later ones follow (one that drops
    past reasoning, say) is refused, naming the record, rather than masked wrongly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

from flexsp.documents import DocumentError, jsonl_records, parquet_records
from flexsp.shards import ShardWriter, held_out_split
from flexsp.streaming import split_document

ROLES = ("system", "user", "assistant", "tool")
TRAINED_ROLE = "assistant"
_GENERATION = re.compile(r"{%-?\s*generation\s*-?%}")


class ChatError(ValueError):
    """A conversation or template that cannot be turned into tokens and a loss mask."""


@dataclass
class Conversation:
    messages: list[dict[str, str]]
    where: str  # "FILE:LINE" or "FILE: record N"


def check_messages(messages: object, where: str, field: str) -> list[dict[str, str]]:
    """The messages of one record, checked: a list of {role, content} with known roles and
    string contents, and at least one assistant turn (else nothing in it would be trained)."""
    if not isinstance(messages, list) or not messages:
        what = "an empty list" if isinstance(messages, list) else f"a {type(messages).__name__}"
        raise ChatError(f"{where}: {field!r} is {what}, expected a list of messages "
                        "[{\"role\": ..., \"content\": ...}, ...]")
    checked = []
    for number, message in enumerate(messages, start=1):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise ChatError(f"{where}: message {number} is not an object with 'role' and "
                            "'content'")
        role, content = message["role"], message["content"]
        if role not in ROLES:
            raise ChatError(f"{where}: message {number} has the unknown role {role!r}; known "
                            f"roles: {', '.join(ROLES)}")
        if not isinstance(content, str):
            raise ChatError(f"{where}: message {number} ({role}): content is a "
                            f"{type(content).__name__}, not a string")
        checked.append({"role": role, "content": content})
    if not any(m["role"] == TRAINED_ROLE for m in checked):
        raise ChatError(f"{where}: the conversation has no assistant turn, so no token of it "
                        "would be trained; remove it or add the assistant's reply")
    return checked


def read_conversations(path: Path, field: str) -> Iterator[Conversation]:
    """The conversations of a JSON-lines (.jsonl/.json, one object per line) or Parquet file,
    each from its record's `field`, checked (`check_messages`)."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise ChatError(f"{path}: no such file")
    if suffix in (".jsonl", ".json"):
        records = _jsonl_records(path)
    elif suffix == ".parquet":
        records = _parquet_records(path, field)
    else:
        raise ChatError(f"{path}: chat data must be JSON lines (.jsonl, .json) or Parquet "
                        "(.parquet), one conversation per record")
    for where, record in records:
        if field not in record:
            raise ChatError(f"{where}: record has no {field!r} field (its fields: "
                            f"{', '.join(sorted(record)) or 'none'}); pass --messages-field NAME")
        yield Conversation(check_messages(record[field], where, field), where)


def _jsonl_records(path: Path) -> Iterator[tuple[str, dict]]:
    try:
        for number, record in jsonl_records(path, "a list of messages"):
            yield f"{path}:{number}", record
    except DocumentError as error:
        raise ChatError(str(error)) from None


def _parquet_records(path: Path, field: str) -> Iterator[tuple[str, dict]]:
    try:
        for number, record in parquet_records(path, field, "--messages-field"):
            yield f"{path}: record {number}", record
    except DocumentError as error:
        raise ChatError(str(error)) from None


def set_chat_template(tokenizer, template_file: str | Path | None, tokenizer_dir: str | Path
                      ) -> str:
    """Installs `template_file` as the tokenizer's chat template, if given; refuses a tokenizer
    left without one. Returns the template."""
    if template_file is not None:
        path = Path(template_file)
        try:
            tokenizer.chat_template = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ChatError(f"--chat-template {path}: cannot read it ({error})") from None
    template = tokenizer.chat_template
    if isinstance(template, dict):  # several named templates: the default one
        template = template.get("default")
    if not isinstance(template, str) or not template.strip():
        raise ChatError(f"{tokenizer_dir}: the tokenizer has no chat template; pass "
                        "--chat-template FILE (a Jinja template; data/chat/chat_template.jinja "
                        "is one for data/tokenizer) or a model's tokenizer that has one")
    tokenizer.chat_template = template
    return template


def mask_method(template: str) -> str:
    return "generation markers" if _GENERATION.search(template) else "prefix rendering"


class ChatEncoder:
    """Renders and tokenizes conversations with one tokenizer and template."""

    def __init__(self, tokenizer, template: str) -> None:
        self.tokenizer = tokenizer
        self.method = mask_method(template)

    def _render(self, messages: list[dict], where: str, generation_prompt: bool) -> str:
        try:
            return self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=generation_prompt)
        except Exception as error:  # jinja2's errors, raise_exception() in templates, ...
            raise ChatError(f"{where}: the chat template cannot render this conversation "
                            f"({type(error).__name__}: {error})") from None

    def encode(self, conversations: list[Conversation]) -> list[tuple[list[int], list[int]]]:
        """(token ids, mask) per conversation; mask[i] = 1 where token i is trained."""
        if not conversations:
            return []
        if self.method == "generation markers":
            return [self._encode_marked(c) for c in conversations]
        texts, spans = [], []
        for conversation in conversations:
            text, assistant = self._assistant_spans(conversation)
            texts.append(text)
            spans.append(assistant)
        encoded = self.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
        results = []
        for ids, offsets, assistant in zip(encoded["input_ids"], encoded["offset_mapping"], spans):
            mask = [int(any(start < b and a < max(end, start + 1) for a, b in assistant))
                    for start, end in offsets]
            results.append((list(ids), mask))
        return results

    def _encode_marked(self, conversation: Conversation) -> tuple[list[int], list[int]]:
        try:
            out = self.tokenizer.apply_chat_template(
                conversation.messages, tokenize=True, return_dict=True,
                return_assistant_tokens_mask=True)
        except Exception as error:  # noqa: BLE001 - the template's error, named by record
            raise ChatError(f"{conversation.where}: the chat template cannot render this "
                            f"conversation ({type(error).__name__}: {error})") from None
        return list(out["input_ids"]), [int(m) for m in out["assistant_masks"]]

    def _assistant_spans(self, conversation: Conversation) -> tuple[str, list[tuple[int, int]]]:
        """The whole rendering and the character spans of the assistant turns in it."""
        messages, where = conversation.messages, conversation.where
        text = self._render(messages, where, generation_prompt=False)
        spans = []
        for i, message in enumerate(messages):
            if message["role"] != TRAINED_ROLE:
                continue
            before = self._render(messages[:i], where, generation_prompt=True) if i else ""
            through = self._render(messages[:i + 1], where, generation_prompt=False)
            if not (through.startswith(before) and text.startswith(through)):
                raise ChatError(f"{where}: the chat template renders message {i + 1} differently "
                                "once later turns follow, so the assistant's tokens cannot be "
                                "found by rendering prefixes; mark them with {% generation %} "
                                "blocks in the template")
            if len(through) > len(before):
                spans.append((len(before), len(through)))
        return text, spans


def chat_encoder(tokenizer, chat_template: str | Path | None, tokenizer_dir: str | Path
                 ) -> ChatEncoder:
    """The encoder for `tokenizer` with `chat_template` (a file) or its own template."""
    return ChatEncoder(tokenizer, set_chat_template(tokenizer, chat_template, tokenizer_dir))


def encode_chat_file(encoder: ChatEncoder, path: Path, field: str, writer: ShardWriter,
                     counts: tuple[int, int, int, int], max_seq_len: int, long: str,
                held_out: Fraction, batch_documents: int, bar) -> tuple[int, int, int, int]:
    """Renders, tokenizes and masks the conversations of one file, a chunk at a time; returns
    the updated (documents, tokens, input bytes, pieces left out for want of a label)."""
    documents, tokens, input_bytes, unlabelled = counts
    pending = []

    def flush() -> None:
        nonlocal documents, tokens, unlabelled
        for ids, mask in encoder.encode(pending):
            split = held_out_split(documents, held_out)
            for piece, piece_mask in zip(split_document(ids, max_seq_len, long),
                                         split_document(mask, max_seq_len, long)):
                if not any(piece_mask[1:]):
                    unlabelled += 1
                    continue
                writer.add(piece, split, piece_mask)
                tokens += len(piece)
            documents += 1
        pending.clear()

    for conversation in read_conversations(path, field):
        pending.append(conversation)
        if len(pending) == batch_documents:
            flush()
    flush()
    size = path.stat().st_size
    if bar is not None:
        bar.update(size)
    return documents, tokens, input_bytes + size, unlabelled
