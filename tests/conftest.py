"""Shared fixtures: the tiny random model + byte tokenizer, toy prompts, and data-dir wiring."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.data.prompts import chat_messages
from pipeline.modeling.models import tiny_random_model, tiny_tokenizer
from pipeline.types import Prompt

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def _data_dir() -> None:
    # Loaders read $INTUITOR_DATA_DIR; CI and tests use the offline copies beside the repo.
    os.environ.setdefault("INTUITOR_DATA_DIR", str(SHARED_DATA))


@pytest.fixture
def tiny_model():
    return tiny_random_model(seed=0)


@pytest.fixture(scope="session")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture
def toy_prompts() -> list[Prompt]:
    return [
        Prompt(
            id=f"toy/{i}",
            messages=chat_messages(f"What is {i} + {i}?", "Put the answer in \\boxed{}."),
            gold=str(2 * i),
        )
        for i in range(8)
    ]
