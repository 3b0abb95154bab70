"""Chat message construction (the system prompt itself is a config value: conf/system_prompt/)."""

from __future__ import annotations


def chat_messages(question: str, system_prompt: str | None) -> list[dict[str, str]]:
    """[system, user] messages; with system_prompt None the tokenizer's own default applies."""
    messages = [] if system_prompt is None else [{"role": "system", "content": system_prompt}]
    messages.append({"role": "user", "content": question})
    return messages
