"""Prompt templates: the paper's system prompt and chat message construction."""

from __future__ import annotations

# The official INTUITOR system prompt (open-r1 recipes; docs/paper.md).
PAPER_SYSTEM_PROMPT = (
    "You are a helpful AI Assistant, designed to provided well-reasoned and detailed responses. "
    "You FIRST think about the reasoning process step by step and then provide the user with the answer. "
    "Please enclose your final answer in the box: \\boxed{Your Answer}."
)


def chat_messages(question: str, system_prompt: str | None) -> list[dict[str, str]]:
    """[system, user] messages; with system_prompt None the tokenizer's own default applies."""
    messages = [] if system_prompt is None else [{"role": "system", "content": system_prompt}]
    messages.append({"role": "user", "content": question})
    return messages
