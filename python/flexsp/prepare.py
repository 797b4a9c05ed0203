"""Preparing a corpus once: documents -> token shards + index + the planner's length file.

    python -m flexsp.prepare --tokenizer data/tokenizer \
        --input data/corpus/python-docstrings.txt --out out/data/python-docstrings

Inputs, by extension: JSON lines (.jsonl/.json; one object per line, text in --text-field),
Parquet (.parquet, read locally through `datasets`; text in column --text-field), plain text
(anything else; documents separated by --separator, by default a line holding only a form
feed). Every document gets the tokenizer's end-of-document token appended; one longer than
--max-seq-len is split into pieces of at most that many tokens (or truncated, --long truncate).
Each piece is a *sequence*, the unit a batch and a plan are made of.

Chat data (`--format chat`): JSON lines or Parquet whose records hold a conversation in
--messages-field (`[{"role": ..., "content": ...}, ...]`). Each conversation is rendered with
the tokenizer's chat template (or --chat-template FILE) and stored with a per-token loss mask:
assistant turns trained, system/user/tool turns not (flexsp/chat.py says how the turns are
found). No end-of-document token is appended (the template ends every turn). A piece with no
trained token after its first (a long prompt split off its reply, say) would add nothing to the
loss: it is counted, reported and left out.

Output directory: the format of flexsp/shards.py (token shards, index, lengths.txt, meta.json).
Everything is written to OUT.partial and renamed to OUT at the end, so an interrupted
preparation leaves no OUT that training would read (and the next run removes OUT.partial).
Memory stays bounded whatever the documents' sizes: text files are read in blocks and documents
longer than a window are tokenized a window at a time (flexsp/streaming.py), with the same
tokens as if tokenized whole.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import uuid
from fractions import Fraction
from pathlib import Path

import numpy as np

from flexsp import streaming
from flexsp.chat import ChatError, chat_encoder, encode_chat_file
from flexsp.documents import (Document, DocumentError, encode_batch, encode_long_document,
                              read_documents)
from flexsp.outputs import reason
from flexsp.shards import CHAT_TEMPLATE, EVAL, FORMAT, TRAIN, VERSION, ShardWriter

DEFAULT_SEPARATOR = "\n\f\n"


class PrepareError(ValueError):
    """Bad input to preparation; the message names the file, the record or line, and a fix."""



def load_tokenizer(directory: str | Path):
    """AutoTokenizer from a local directory, with an error that says what to pass instead."""
    from transformers import AutoTokenizer
    if not Path(directory).is_dir():
        raise PrepareError(f"{directory}: no such tokenizer directory; pass a model's directory "
                           "with tokenizer.json or tokenizer_config.json, e.g. data/tokenizer")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    except Exception as error:  # transformers raises OSError, ValueError, KeyError, ...
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise PrepareError(
            f"{directory}: not a tokenizer directory AutoTokenizer can load ({first}); pass a "
            "model's directory with tokenizer.json or tokenizer_config.json, e.g. data/tokenizer "
            "(rebuilt by data/tokenizer/build_tokenizer.py)") from None
    if tokenizer.eos_token_id is None:
        raise PrepareError(f"{directory}: the tokenizer has no end-of-document (eos) token; "
                           "set eos_token in its tokenizer_config.json")
    return tokenizer



def prepare(tokenizer_dir: str | Path, inputs: list[str | Path], out: str | Path, *,
            text_field: str = "text", separator: str = DEFAULT_SEPARATOR,
            max_seq_len: int = 2048, long: str = "split", eval_fraction: float = 0.02,
            skip_empty: bool = False, shard_tokens: int = 1 << 28, batch_documents: int = 1000,
            overwrite: bool = False, progress: bool = True, format: str = "text",
            messages_field: str = "messages", chat_template: str | Path | None = None) -> dict:
    """Prepares `inputs` into `out` (see the module docstring); returns the meta document."""
    out = Path(out)
    if format not in ("text", "chat"):
        raise PrepareError(f"--format {format!r}: must be 'text' or 'chat'")
    if max_seq_len < 2:
        raise PrepareError(f"--max-seq-len {max_seq_len}: must be at least 2")
    if long not in ("split", "truncate"):
        raise PrepareError(f"--long {long!r}: must be 'split' or 'truncate'")
    if not 0 <= eval_fraction < 1:
        raise PrepareError(f"--eval-fraction {eval_fraction}: must be in [0, 1)")
    partial = _check_out(out, overwrite)
    tokenizer = load_tokenizer(tokenizer_dir)
    try:
        encoder = chat_encoder(tokenizer, chat_template, tokenizer_dir) if format == "chat" else None
    except ChatError as error:
        raise PrepareError(str(error)) from None
    vocab_size = len(tokenizer)
    dtype = np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)
    held_out = Fraction(str(eval_fraction))
    writer = ShardWriter(partial, dtype, shard_tokens, masks=encoder is not None)
    bar = _progress_bar(progress, inputs)
    started = time.perf_counter()
    documents = tokens = input_bytes = unlabelled = 0
    try:  # from here on, an interruption (Ctrl-C) removes whatever was written
        try:
            if partial.exists():
                shutil.rmtree(partial)  # left by an interrupted run; never read
            partial.mkdir(parents=True)
        except OSError as error:
            raise PrepareError(f"{partial}: cannot create the output ({reason(error)})") from None
        for path in inputs:
            if encoder is not None:
                documents, tokens, input_bytes, unlabelled = encode_chat_file(
                    encoder, Path(path), messages_field, writer, (documents, tokens, input_bytes,
                                                                  unlabelled),
                    max_seq_len, long, held_out, batch_documents, bar)
                continue
            pending: list[Document] = []
            pending_chars = 0
            stream = read_documents(Path(path), text_field, separator)
            for document in stream:
                if document.more or len(document.text) > streaming.WINDOW_CHARS:
                    documents, tokens, input_bytes = encode_batch(
                        tokenizer, pending, writer, documents, tokens, input_bytes, max_seq_len,
                        long, held_out, bar)
                    pending, pending_chars = [], 0
                    documents, tokens, input_bytes = encode_long_document(
                        tokenizer, document, stream, writer, documents, tokens, input_bytes,
                        max_seq_len, long, held_out, bar, skip_empty)
                    continue
                if not document.text.strip():
                    if skip_empty:
                        continue
                    raise PrepareError(f"{document.where}: empty document; remove it or pass "
                                       "--skip-empty")
                pending.append(document)
                pending_chars += len(document.text)
                # A batch of many long documents is bounded by characters too.
                if len(pending) == batch_documents or pending_chars > 4 * streaming.WINDOW_CHARS:
                    documents, tokens, input_bytes = encode_batch(
                        tokenizer, pending, writer, documents, tokens, input_bytes, max_seq_len,
                        long, held_out, bar)
                    pending, pending_chars = [], 0
            documents, tokens, input_bytes = encode_batch(
                tokenizer, pending, writer, documents, tokens, input_bytes, max_seq_len, long,
                held_out, bar)
        writer.close()
        if documents == 0:
            raise PrepareError(f"{', '.join(map(str, inputs))}: no documents")
        index = np.asarray(writer.rows, dtype=np.int64).reshape(-1, 4)
        np.save(partial / "index.npy", index)
        if encoder is not None:
            np.save(partial / "labels.npy", np.asarray(writer.labels, dtype=np.int64))
            # The template the masks were made with; a model trained on them is exported with it.
            (partial / CHAT_TEMPLATE).write_text(tokenizer.chat_template, encoding="utf-8")
        train_lengths = index[index[:, 3] == TRAIN, 2]
        (partial / "lengths.txt").write_text("".join(f"{n}\n" for n in train_lengths))
        seconds = time.perf_counter() - started
        meta = {
            "format": FORMAT, "version": VERSION, "id": uuid.uuid4().hex,
            "dtype": dtype.name, "vocab_size": vocab_size, "eos_id": tokenizer.eos_token_id,
            "tokenizer": str(Path(tokenizer_dir).resolve()),
            "inputs": [str(Path(p).resolve()) for p in inputs], "text_field": text_field,
            "max_seq_len": max_seq_len, "long": long, "eval_fraction": eval_fraction,
            "documents": documents, "tokens": tokens, "input_bytes": input_bytes,
            "sequences": {"train": int((index[:, 3] == TRAIN).sum()),
                          "eval": int((index[:, 3] == EVAL).sum())},
            "shards": writer.shards, "seconds": round(seconds, 3), "input_format": format,
        }
        if encoder is not None:
            meta.update({"loss_mask": True, "messages_field": messages_field,
                         "mask_method": encoder.method, "trained_tokens": writer.trained_tokens,
                         "no_label_sequences": unlabelled})
        (partial / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(partial, out)
    except BaseException as error:
        try:
            writer.close()
        except OSError:
            pass  # a full disk fails the last flush again; the files are removed anyway
        shutil.rmtree(partial, ignore_errors=True)
        if isinstance(error, OSError):
            written = error.filename is None or Path(error.filename).is_relative_to(partial)
            raise PrepareError(f"{out if written else error.filename}: {reason(error)}; "
                               "nothing was kept (the partial output was removed)") from None
        if isinstance(error, (DocumentError, ChatError)):  # one class for main to catch, also
            raise PrepareError(str(error)) from None        # when run as __main__
        raise
    finally:
        if bar is not None:
            bar.update(bar.total - bar.n)  # separators and skipped documents count as read
            bar.close()
    return meta


def _check_out(out: Path, overwrite: bool) -> Path:
    """Refuses an output that --overwrite must not replace, before any work; returns the
    partial directory's path."""
    if out.is_symlink():
        raise PrepareError(f"{out}: a symbolic link; --out must name a directory of its own "
                           "(pass the link's target, or remove the link)")
    if out.exists():
        if not overwrite:
            raise PrepareError(f"{out}: already exists; pass --overwrite to replace it")
        if not out.is_dir():
            raise PrepareError(f"{out}: a file, not a prepared corpus; --overwrite replaces only "
                               "a prepared corpus directory")
        if not (out / "meta.json").is_file() and any(out.iterdir()):
            raise PrepareError(f"{out}: not a prepared corpus (no meta.json); --overwrite "
                               "replaces only a prepared corpus directory")
    partial = out.with_name(out.name + ".partial")
    if partial.is_symlink() or (partial.exists() and not partial.is_dir()):
        raise PrepareError(f"{partial}: not a directory left by an interrupted preparation; "
                           "remove it")
    return partial


def _progress_bar(progress: bool, inputs: list):
    if not progress:
        return None
    from tqdm import tqdm
    total = sum(Path(p).stat().st_size for p in inputs if Path(p).is_file())
    return tqdm(total=total, unit="B", unit_scale=True, desc="tokenizing", file=sys.stderr)



def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m flexsp.prepare",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokenizer", required=True,
                        help="directory AutoTokenizer.from_pretrained loads (e.g. data/tokenizer)")
    parser.add_argument("--input", required=True, nargs="+", help=".jsonl/.json, .parquet or text")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--text-field", default="text", help="JSON field / Parquet column")
    parser.add_argument("--format", choices=["text", "chat"], default="text",
                        help="text: documents; chat: conversations with a loss mask (assistant "
                             "turns trained)")
    parser.add_argument("--messages-field", default="messages",
                        help="chat: the JSON field / Parquet column holding the messages")
    parser.add_argument("--chat-template", metavar="FILE",
                        help="chat: a Jinja chat template to use instead of the tokenizer's")
    parser.add_argument("--separator", default=DEFAULT_SEPARATOR,
                        help="between documents of a text file (default: a line holding a form "
                             "feed; '' = one document per file)")
    parser.add_argument("--max-seq-len", type=int, default=2048)
    parser.add_argument("--long", choices=["split", "truncate"], default="split",
                        help="documents longer than --max-seq-len: split into pieces or truncate")
    parser.add_argument("--eval-fraction", type=float, default=0.02,
                        help="share of documents held out for evaluation, spread evenly (0.02: "
                             "every 50th)")
    parser.add_argument("--skip-empty", action="store_true",
                        help="skip empty documents instead of stopping at the first")
    parser.add_argument("--shard-tokens", type=int, default=1 << 28)
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    separator = args.separator.encode().decode("unicode_escape")  # so '\n' can be typed
    try:
        meta = prepare(args.tokenizer, args.input, args.out, text_field=args.text_field,
                       separator=separator, max_seq_len=args.max_seq_len, long=args.long,
                       eval_fraction=args.eval_fraction, skip_empty=args.skip_empty,
                       shard_tokens=args.shard_tokens, overwrite=args.overwrite,
                       progress=not args.quiet, format=args.format,
                       messages_field=args.messages_field, chat_template=args.chat_template)
    except PrepareError as error:
        raise SystemExit(f"prepare: {error}") from None
    except OSError as error:  # reading an input: permissions, I/O errors
        raise SystemExit(f"prepare: {error.filename or args.input}: {reason(error)}") from None
    except KeyboardInterrupt:
        print(f"prepare: interrupted; nothing was kept ({args.out}.partial was removed)",
              file=sys.stderr, flush=True)
        raise SystemExit(130) from None
    print(f"{args.out}: {meta['documents']} documents, {meta['tokens']} tokens "
          f"({meta['sequences']['train']} training and {meta['sequences']['eval']} evaluation "
          f"sequences, {len(meta['shards'])} shard(s), {meta['dtype']}) in {meta['seconds']:.2f} s: "
          f"{meta['tokens'] / max(meta['seconds'], 1e-9):,.0f} tokens/s; planner length file: "
          f"{Path(args.out) / 'lengths.txt'}")
    if meta.get("loss_mask"):
        print(f"chat: {1 - meta['trained_tokens'] / max(meta['tokens'], 1):.1%} of tokens masked "
              f"(not trained), {meta['no_label_sequences']} sequence(s) without a label token "
              f"left out; assistant turns found by {meta['mask_method']}")


if __name__ == "__main__":
    main(sys.argv[1:])
