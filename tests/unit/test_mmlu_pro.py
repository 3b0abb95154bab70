"""MMLU-Pro: the official prompt format, the official answer-extraction cascade, the loader and its errors."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest
from smoke_config import benchmark_config, data_config

from pipeline.data.jsonl import DataError
from pipeline.tasks import get_benchmark
from pipeline.tasks.mmlu_pro import extract_choice, grade_choice, load_mmlu_pro

DATA_DIR = os.environ.get("INTUITOR_DATA_DIR")
needs_data = pytest.mark.skipif(
    not DATA_DIR or not Path(DATA_DIR, "mmlu_pro", "test.jsonl").is_file(),
    reason="INTUITOR_DATA_DIR does not hold mmlu_pro/ (see shared/data/README.md)",
)

# (completion, expected letter, expected source, gold, number of options, expected correct)
EXTRACTION_CASES = [
    ("Step 1 ... so the answer is (B).", "B", "answer_is", "B", 10, True),
    ("The answer is B.", "B", "answer_is", "B", 10, True),
    ("Therefore the answer is B)", "B", "answer_is", "C", 10, False),
    ("Answer: C", "C", "answer_colon", "C", 10, True),
    ("final answer:   D because", "D", "answer_colon", "D", 4, True),
    # "answer is" is case-sensitive and lowercase letters are never read: nothing matches
    ("the answer is (b)", None, "none", "B", 10, False),
    ("answer: d", None, "none", "D", 10, False),
    # upper-case phrasing misses patterns 1 and 2; the last standalone capital letter is read
    ("THE ANSWER IS (C)", "C", "last_letter", "C", 10, True),
    # "answer is:" fits neither the first nor the second pattern
    ("so the answer is: C", "C", "last_letter", "C", 10, True),
    ("**Answer: (E)**", "E", "last_letter", "E", 10, True),
    # several mentions: pattern 1 takes the first; it wins over a later "Answer:"
    ("the answer is (A). Wait, the answer is (C).", "A", "answer_is", "C", 10, False),
    ("The answer is (A) ... Answer: B", "A", "answer_is", "A", 10, True),
    # pattern 2 without DOTALL: the first line holding one, the last "Answer:" on that line
    ("Answer: B\nFinal Answer: D", "B", "answer_colon", "B", 10, True),
    ("Answer: B. No. Answer: D", "D", "answer_colon", "D", 10, True),
    # the last standalone A-J anywhere, even the pronoun "I" (an official-script quirk, kept)
    ("Option B looks right, I think", "I", "last_letter", "B", 10, False),
    ("It must be G\n\nyes.", "G", "last_letter", "G", 10, True),
    # J is a valid letter on ten options but past the end of a four-option question
    ("the answer is (J)", "J", "answer_is", "J", 10, True),
    ("the answer is (J)", "J", "answer_is", "A", 4, False),
    ("the answer is (K)", None, "none", "A", 10, False),
    ("", None, "none", "A", 10, False),
]


@pytest.mark.parametrize(("completion", "letter", "source", "gold", "n_options", "correct"), EXTRACTION_CASES)
def test_official_extraction_cascade(
    completion: str, letter: str | None, source: str, gold: str, n_options: int, correct: bool
) -> None:
    assert extract_choice(completion) == (letter, source)
    verdict = grade_choice(completion, gold, n_options)
    assert (verdict.extracted, verdict.source, verdict.correct) == (letter, source, correct)


def test_letter_past_the_options_is_flagged_wrong() -> None:
    verdict = grade_choice("the answer is (E)", "E", 4)
    assert verdict.correct is False
    assert verdict.detail == {"out_of_range": True}
    assert grade_choice("the answer is (D)", "D", 4).detail == {"out_of_range": False}


STEP = "A: Let's think step by step."


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _row(qid: int, category: str, options: list[str], answer: str, cot: str = "") -> dict:
    return {
        "question_id": qid,
        "question": f"Q{qid}?",
        "options": options,
        "answer": answer,
        "answer_index": "ABCDEFGHIJ".index(answer),
        "cot_content": cot,
        "category": category,
        "src": "unit",
    }


def _write_law_validation(folder: Path) -> None:
    _write_jsonl(folder / "validation.jsonl", [_row(0, "law", ["x", "y"], "A", STEP)])


def test_prompt_is_the_official_format_exactly(tmp_path: Path) -> None:
    val = [
        _row(0, "math", ["1", "N/A", "2"], "B", STEP + " Two. The answer is (B)."),
        _row(1, "law", ["x", "y"], "A", STEP + " Law. The answer is (A)."),
        _row(2, "math", ["3", "4", "N/A", "N/A"], "A", STEP + " Three. The answer is (A)."),
    ]
    _write_jsonl(tmp_path / "validation.jsonl", val)
    _write_jsonl(tmp_path / "test.jsonl", [_row(9, "math", ["5", "6", "7", "N/A"], "C")])
    (prompt,) = load_mmlu_pro(str(tmp_path), "test")
    expected = (
        "The following are multiple choice questions (with answers) about math. Think step by step and then "
        'finish your answer with "the answer is (X)" where X is the correct letter choice.\n\n\n\n'
        "Question:\nQ0?\nOptions:\nA. 1\nB. 2\n"
        "Answer: Let's think step by step. Two. The answer is (B).\n\n"
        "Question:\nQ2?\nOptions:\nA. 3\nB. 4\n"
        "Answer: Let's think step by step. Three. The answer is (A).\n\n"
        "Question:\nQ9?\nOptions:\nA. 5\nB. 6\nC. 7\n"
        "Answer: Let's think step by step."
    )
    assert prompt.text == expected
    assert prompt.messages == [{"role": "user", "content": expected}]
    assert prompt.gold == "C"
    assert prompt.id == "mmlu_pro/test/9"
    assert prompt.meta == {
        "category": "math",
        "question_id": 9,
        "answer_index": 2,
        "num_options": 3,
        "num_shots": 2,
        "src": "unit",
    }
    json.dumps(prompt.meta)  # records are JSON


def test_test_file_path_reads_validation_beside_it(tmp_path: Path) -> None:
    _write_law_validation(tmp_path)
    _write_jsonl(tmp_path / "test.jsonl", [_row(5, "law", ["p", "q"], "B")])
    (prompt,) = load_mmlu_pro(str(tmp_path / "test.jsonl"), "test")
    assert prompt.meta["num_shots"] == 1


def test_token_budget_drops_trailing_exemplars_like_the_official_loop(tmp_path: Path) -> None:
    cot = STEP + " The answer is (A)."
    _write_jsonl(tmp_path / "validation.jsonl", [_row(i, "law", ["x", "y"], "A", cot) for i in range(6)])
    _write_jsonl(tmp_path / "test.jsonl", [_row(50, "law", ["p", "q"], "B")])
    # Each question block "costs" 1000 tokens: 2 blocks (1 exemplar + the question) fit under 2048.
    (prompt,) = load_mmlu_pro(str(tmp_path), "test", count_tokens=lambda s: 1000 * s.count("Question:"))
    assert prompt.meta["num_shots"] == 1
    assert prompt.text.count("Question:") == 2 and "Q0?" in prompt.text and "Q1?" not in prompt.text
    (full,) = load_mmlu_pro(str(tmp_path), "test")
    assert full.meta["num_shots"] == 5 and "Q4?" in full.text and "Q5?" not in full.text


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"options": None}, "lacks field 'options'"),
        ({"answer": "J"}, "answer 'J' is not one of the 2 option letters"),
        ({"question_id": "7"}, "field 'question_id' must be an integer"),
    ],
)
def test_bad_record_names_file_and_line(tmp_path: Path, bad: dict, message: str) -> None:
    _write_law_validation(tmp_path)
    bad_row = {**_row(6, "law", ["p", "q"], "A"), **bad}
    _write_jsonl(tmp_path / "test.jsonl", [_row(5, "law", ["p", "q"], "B"), bad_row])
    with pytest.raises(DataError) as err:
        load_mmlu_pro(str(tmp_path), "test")
    assert f"{tmp_path / 'test.jsonl'}:2" in str(err.value) and message in str(err.value)


def test_category_without_exemplars_is_an_error(tmp_path: Path) -> None:
    _write_law_validation(tmp_path)
    _write_jsonl(tmp_path / "test.jsonl", [_row(5, "math", ["p", "q"], "B")])
    with pytest.raises(DataError, match=r"test\.jsonl:1: no validation exemplars for category 'math'"):
        load_mmlu_pro(str(tmp_path), "test")


@pytest.fixture(scope="module")
def real_test_prompts() -> list:
    # The system prompt is ignored: the official format has none.
    return get_benchmark("mmlu_pro").load(benchmark_config("mmlu_pro"), data_config(), "ignored")


@needs_data
def test_real_counts_and_categories(real_test_prompts: list) -> None:
    assert len(real_test_prompts) == 12032
    # shared/data/README.md section 6 lists physics 1297, chemistry 1130, engineering 968, economics 842,
    # health 817, psychology 797, business 787, biology 716: those sum to 12,020, not 12,032. These are the
    # counts of the file itself (12 more items spread over eight categories).
    assert Counter(p.meta["category"] for p in real_test_prompts) == {
        "math": 1351, "physics": 1299, "chemistry": 1132, "law": 1101, "engineering": 969, "other": 924,
        "economics": 844, "health": 818, "psychology": 798, "business": 789, "biology": 717,
        "philosophy": 499, "computer science": 410, "history": 381,
    }  # fmt: skip
    assert len(load_mmlu_pro(None, "validation")) == 70
    assert all(p.text is not None and p.meta["num_shots"] == 5 for p in real_test_prompts)


@needs_data
def test_real_item_prompt(real_test_prompts: list) -> None:
    lines = Path(DATA_DIR, "mmlu_pro", "validation.jsonl").read_text(encoding="utf-8").splitlines()
    val = [json.loads(line) for line in lines]
    first = real_test_prompts[0]  # question_id 70, business, nine options (answer I)
    assert (first.id, first.gold, first.meta["num_options"]) == ("mmlu_pro/test/70", "I", 9)
    text = first.text
    assert text.startswith("The following are multiple choice questions (with answers) about business.")
    assert text.endswith("I. Unsafe practices, Distress, Fear, Serious\nAnswer: Let's think step by step.")
    assert "\nJ. " not in text.split("Question:\n")[-1]  # nine options: lettered A-I only
    blocks = text.split("Question:\n")[1:]
    shots = [r for r in val if r["category"] == "business"][:5]
    assert len(blocks) == 6
    for block, shot in zip(blocks, shots, strict=False):
        assert block.startswith(shot["question"] + "\nOptions:\nA. ")
        assert block.endswith(shot["cot_content"][len("A: ") :] + "\n\n")
        # N/A padding of the raw validation rows is gone; letters follow the kept options
        kept = [o for o in shot["options"] if o != "N/A"]
        assert f"\n{'ABCDEFGHIJ'[len(kept) - 1]}. {kept[-1]}\nAnswer: Let's think step by step." in block
    assert "N/A" not in text and "A: Let's think step by step." not in text
    assert any("N/A" in r["options"] for r in shots)  # the case above is exercised


@needs_data
def test_benchmark_grade_uses_the_item_option_count(real_test_prompts: list) -> None:
    bench = get_benchmark("mmlu_pro")
    assert (bench.metric, bench.category_key) == ("accuracy", "category")
    four = next(p for p in real_test_prompts if p.meta["num_options"] == 4)
    prompts = [real_test_prompts[0], real_test_prompts[0], four]
    completions = ["the answer is (I)", "Answer: A", "the answer is (J)"]
    verdicts = bench.grade(prompts, completions, benchmark_config())
    assert [v.correct for v in verdicts] == [True, False, False]
    assert verdicts[2].detail["out_of_range"] is True
