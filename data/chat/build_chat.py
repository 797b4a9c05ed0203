"""Rebuilds conversations.jsonl: a small chat corpus for fine-tuning tests and the SFT demo.

    python data/chat/build_chat.py [--conversations 1000] [--seed 0]

Deterministic: the same seed gives the same file, byte for byte. Nothing is downloaded and no
model wrote any of it: every conversation is a task generated from a seeded random generator
(arithmetic, sorting numbers, counting words, upper-casing, reversing words, quoting the first
sentence of a text) whose answer the script computes. The texts the tasks are about are
paragraphs of data/corpus/python-docstrings.txt (Python standard-library docstrings, PSF
License), so lengths are long-tailed as there. One JSON object per line:
{"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}; 1 to 4 user/
assistant exchanges, a system message in about a third of them.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parent / "corpus" / "python-docstrings.txt"
SEPARATOR = "\n\f\n"
SYSTEM_PROMPTS = [
    "You are a careful assistant. Answer exactly what is asked.",
    "You are a concise assistant for Python programmers.",
    "Answer briefly and correctly.",
]


def paragraphs(corpus: Path) -> list[str]:
    texts = []
    for document in corpus.read_text(encoding="utf-8").split(SEPARATOR):
        for part in document.split("\n\n"):
            part = part.strip()
            if len(part) >= 40:
                texts.append(part)
    return texts


def first_sentence(text: str) -> str:
    flat = " ".join(text.split())
    end = flat.find(". ")
    return flat if end < 0 else flat[:end + 1]


def task(rng: random.Random, texts: list[str]) -> tuple[str, str]:
    kind = rng.choice(["arithmetic", "sort", "words", "upper", "reverse", "first"])
    if kind == "arithmetic":
        a, b = rng.randrange(1000), rng.randrange(1, 1000)
        op = rng.choice(["+", "-", "*"])
        value = {"+": a + b, "-": a - b, "*": a * b}[op]
        return f"What is {a} {op} {b}?", f"{a} {op} {b} = {value}."
    if kind == "sort":
        numbers = [rng.randrange(-500, 500) for _ in range(int(rng.paretovariate(1.2) * 4) % 200 + 3)]
        return ("Sort these numbers in ascending order: " + ", ".join(map(str, numbers)) + ".",
                ", ".join(map(str, sorted(numbers))))
    text = rng.choice(texts)
    if kind == "words":
        count = len(text.split())
        return (f"How many words does this text have?\n\n{text}",
                f"It has {count} word{'s' if count != 1 else ''}.")
    if kind == "upper":
        return f"Rewrite this text in upper case:\n\n{text}", text.upper()
    if kind == "reverse":
        sentence = first_sentence(text)
        return (f"Reverse the order of the words in: {sentence}",
                " ".join(reversed(sentence.split())))
    return (f"What is the first sentence of this docstring?\n\n{text}",
            f"Its first sentence is: {first_sentence(text)}")


def conversation(rng: random.Random, texts: list[str]) -> dict:
    messages = []
    if rng.random() < 0.33:
        messages.append({"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
    for _ in range(rng.choice([1, 1, 1, 2, 2, 3, 4])):
        question, answer = task(rng, texts)
        messages += [{"role": "user", "content": question},
                     {"role": "assistant", "content": answer}]
    return {"messages": messages}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=HERE / "conversations.jsonl")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    texts = paragraphs(CORPUS)
    with open(args.out, "w", encoding="utf-8") as f:
        for _ in range(args.conversations):
            f.write(json.dumps(conversation(rng, texts), ensure_ascii=False) + "\n")
    print(f"{args.out}: {args.conversations} conversations, {args.out.stat().st_size} bytes")


if __name__ == "__main__":
    main()
