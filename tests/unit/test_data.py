"""Dataset loaders on the offline copies, error messages that name file:line, and the sampler."""

from __future__ import annotations

import pytest

from pipeline.data.jsonl import DataError, read_records
from pipeline.data.sampler import PromptSampler
from pipeline.tasks.gsm8k import load_gsm8k
from pipeline.tasks.math import load_math
from pipeline.types import Prompt


def test_math_train_from_shared_data() -> None:
    prompts = load_math(None, "train", "SYS")
    # 7,500 problems; two solutions have an empty \boxed{} and are skipped with a warning
    assert len(prompts) == 7498
    assert prompts[0].messages[0] == {"role": "system", "content": "SYS"}
    assert all(p.gold for p in prompts)
    with pytest.raises(DataError, match=r"train.jsonl:5530: solution has no non-empty"):
        load_math(None, "train", None, skip_invalid=False)


def test_gsm8k_test_gold_numbers() -> None:
    prompts = load_gsm8k(None, "test", None, limit=5)
    assert len(prompts) == 5 and prompts[0].gold == "18"
    assert prompts[0].messages == [{"role": "user", "content": prompts[0].messages[0]["content"]}]


def test_malformed_and_missing_fields_name_file_and_line(tmp_path) -> None:
    bad = tmp_path / "train.jsonl"
    bad.write_text('{"problem": "a", "solution": "\\\\boxed{1}"}\n{oops\n')
    with pytest.raises(DataError, match=r"train.jsonl:2: invalid JSON"):
        read_records(bad)
    bad.write_text('{"problem": "a", "solution": "\\\\boxed{1}"}\n{"problem": "b"}\n')
    with pytest.raises(DataError, match=r"train.jsonl:2: record lacks field 'solution'"):
        load_math(str(tmp_path), "train", None)
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match="holds no records"):
        read_records(tmp_path / "empty.jsonl")
    with pytest.raises(DataError, match="no such data file"):
        load_math(str(tmp_path / "nowhere.jsonl"), "train", None)


def test_sampler_is_a_deterministic_epoch_permutation() -> None:
    prompts = [Prompt(id=str(i), messages=[]) for i in range(10)]
    s = PromptSampler(prompts, prompts_per_step=3, seed=1)
    first_epoch = [p.id for k in range(3) for p in s.batch(k)] + [s.batch(3)[0].id]
    assert sorted(first_epoch) == [str(i) for i in range(10)]  # every prompt once per epoch
    again = PromptSampler(prompts, prompts_per_step=3, seed=1)
    assert [p.id for p in again.batch(5)] == [p.id for p in s.batch(5)]
    other = PromptSampler(prompts, prompts_per_step=3, seed=2)
    assert [p.id for k in range(3) for p in other.batch(k)] != first_epoch[:9]
