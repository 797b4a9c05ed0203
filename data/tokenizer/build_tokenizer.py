"""Rebuilds data/tokenizer/: a byte-level BPE tokenizer of 4,096 tokens trained on the bundled
corpus (data/corpus/python-docstrings.txt) with the `tokenizers` library. Nothing is downloaded.

    python data/tokenizer/build_tokenizer.py [--vocab-size 4096] [--out data/tokenizer]

The result loads with `transformers.AutoTokenizer.from_pretrained("data/tokenizer")`. Its one
special token, <|endoftext|> (id 0), is the end-of-document token `flexsp.data prepare` appends
to every document (and bos/eos/pad for the model). Byte-level: any text encodes, none is <unk>.
Training is deterministic: the same corpus and vocabulary size give the same files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parent / "corpus" / "python-docstrings.txt"
SEPARATOR = "\n\f\n"  # between documents, see data/corpus/PROVENANCE.md
END_OF_TEXT = "<|endoftext|>"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()

    documents = args.corpus.read_text(encoding="utf-8").split(SEPARATOR)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=args.vocab_size, special_tokens=[END_OF_TEXT],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tokenizer.train_from_iterator(documents, trainer=trainer, length=len(documents))
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=END_OF_TEXT,
                                      eos_token=END_OF_TEXT, pad_token=END_OF_TEXT)
    wrapped.save_pretrained(str(args.out))
    print(f"{args.out}: {tokenizer.get_vocab_size()} tokens, trained on {len(documents)} documents")


if __name__ == "__main__":
    main()
