"""Chat conversations -> tokens and loss masks (flexsp/chat.py), and the bundled chat corpus.

The mask is checked against what it must mean, text-wise: decoding the trained tokens of a
conversation gives exactly its assistant replies, each followed by the end-of-turn token, and
nothing else; the two ways of finding them (the template's generation markers, and rendering
prefixes of the conversation) agree token for token on the whole bundled corpus.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO_ROOT
from flexsp.chat import ChatEncoder, ChatError, Conversation, check_messages, set_chat_template
from flexsp.prepare import load_tokenizer

TEMPLATE = REPO_ROOT / "data" / "chat" / "chat_template.jinja"
CORPUS = REPO_ROOT / "data" / "chat" / "conversations.jsonl"
EOT = "<|endoftext|>"


@pytest.fixture(scope="module")
def tokenizer():
    tokenizer = load_tokenizer(REPO_ROOT / "data" / "tokenizer")
    set_chat_template(tokenizer, TEMPLATE, "data/tokenizer")
    return tokenizer


def plain(template: str) -> str:
    """The same template without its generation markers (prefix rendering finds the turns)."""
    return template.replace("{% generation %}", "").replace("{% endgeneration %}", "")


def corpus(limit: int | None = None) -> list[Conversation]:
    lines = CORPUS.read_text(encoding="utf-8").splitlines()[:limit]
    return [Conversation(check_messages(json.loads(line)["messages"], f"c:{n}", "messages"),
                         f"c:{n}") for n, line in enumerate(lines, start=1)]


CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is 2 + 3?"},
    {"role": "assistant", "content": "2 + 3 = 5."},
    {"role": "user", "content": "And  times 4?\n"},
    {"role": "assistant", "content": " 20, with a leading space."},
]


@pytest.mark.parametrize("markers", [True, False])
def test_trained_tokens_are_exactly_the_assistant_replies(tokenizer, markers):
    template = TEMPLATE.read_text() if markers else plain(TEMPLATE.read_text())
    tokenizer.chat_template = template
    encoder = ChatEncoder(tokenizer, template)
    assert encoder.method == ("generation markers" if markers else "prefix rendering")
    [(ids, mask)] = encoder.encode([Conversation(CONVERSATION, "x:1")])
    assert len(ids) == len(mask) and set(mask) == {0, 1}
    assert tokenizer.decode(ids) == tokenizer.apply_chat_template(CONVERSATION, tokenize=False)
    trained = [i for i, m in zip(ids, mask) if m]
    assert tokenizer.decode(trained) == "2 + 3 = 5." + EOT + " 20, with a leading space." + EOT
    untrained = tokenizer.decode([i for i, m in zip(ids, mask) if not m])
    assert "Be brief." in untrained and "What is 2 + 3?" in untrained
    assert "<|assistant|>" in untrained and "5." not in untrained


def test_both_methods_agree_on_the_bundled_corpus(tokenizer):
    conversations = corpus(300)
    results = {}
    for name, template in (("markers", TEMPLATE.read_text()), ("prefixes", plain(TEMPLATE.read_text()))):
        tokenizer.chat_template = template
        results[name] = ChatEncoder(tokenizer, template).encode(conversations)
    assert results["markers"] == results["prefixes"]
    tokenizer.chat_template = TEMPLATE.read_text()


@pytest.mark.parametrize("messages, problem", [
    ([{"role": "user", "content": "hi"}], "c.jsonl:7: the conversation has no assistant turn"),
    ([{"role": "user", "content": "hi"}, {"role": "bot", "content": "yo"}],
     "c.jsonl:7: message 2 has the unknown role 'bot'; known roles: system, user, assistant"),
    ([{"role": "user"}], "c.jsonl:7: message 1 is not an object with 'role' and 'content'"),
    ([{"role": "user", "content": ["part"]}], "c.jsonl:7: message 1 \\(user\\): content is a list"),
    ([], "c.jsonl:7: 'messages' is an empty list"),
    ("hello", "c.jsonl:7: 'messages' is a str, expected a list"),
])
def test_bad_conversations_are_named(messages, problem):
    with pytest.raises(ChatError, match=problem):
        check_messages(messages, "c.jsonl:7", "messages")


def test_a_tokenizer_without_a_chat_template_is_refused(tmp_path):
    tokenizer = load_tokenizer(REPO_ROOT / "data" / "tokenizer")
    with pytest.raises(ChatError, match="data/tokenizer: the tokenizer has no chat template; "
                                        "pass --chat-template FILE"):
        set_chat_template(tokenizer, None, "data/tokenizer")
    with pytest.raises(ChatError, match="--chat-template .*missing.jinja: cannot read it"):
        set_chat_template(tokenizer, tmp_path / "missing.jinja", "data/tokenizer")


def test_a_template_that_rewrites_history_is_refused_without_markers(tokenizer):
    # Renders past assistant turns shortened once a later turn follows, as templates that drop
    # earlier reasoning do: prefix rendering cannot find the turns, and says so.
    template = ("{% for m in messages %}{% if m['role'] == 'assistant' and not loop.last %}"
                "[earlier]{% else %}{{ m['role'] }}: {{ m['content'] }}{% endif %}"
                "{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}")
    assert_refused(tokenizer, template, "x:3", "x:3: the chat template renders message 3 "
                                               "differently once later turns follow")


def test_a_template_error_names_the_record(tokenizer):
    assert_refused(tokenizer, "{{ raise_exception('roles must alternate') }}", "x:9",
                   "x:9: the chat template cannot render this conversation .*roles must alternate")


def assert_refused(tokenizer, template: str, where: str, message: str) -> None:
    """Encoding CONVERSATION (from `where`) under `template` fails with `message`; the
    tokenizer gets the bundled template back."""
    tokenizer.chat_template = template
    try:
        with pytest.raises(ChatError, match=message):
            ChatEncoder(tokenizer, template).encode([Conversation(CONVERSATION, where)])
    finally:
        tokenizer.chat_template = TEMPLATE.read_text()


def test_the_bundled_corpus_is_rebuilt_byte_for_byte(tmp_path):
    out = tmp_path / "conversations.jsonl"
    subprocess.run([sys.executable, str(REPO_ROOT / "data" / "chat" / "build_chat.py"),
                    "--out", str(out)], check=True, capture_output=True, timeout=120)
    assert out.read_bytes() == CORPUS.read_bytes()
    assert all(check_messages(json.loads(line)["messages"], "c", "messages")
               for line in out.read_text().splitlines())
