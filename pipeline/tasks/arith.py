"""The embedded arithmetic word problems' held-out split (generated from the `data` section).

Data: Embedded default data: seeded procedural arithmetic word problems with exact integer answers.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from pipeline.config import BenchmarkConfig, DataConfig
from pipeline.data.prompts import chat_messages
from pipeline.data.screen import RecordScreen, screen_generated
from pipeline.eval.math_grader import grade_math
from pipeline.tasks import Benchmark
from pipeline.types import Prompt

NAMES = [
    "Ava",
    "Ben",
    "Chloe",
    "Dev",
    "Emma",
    "Farid",
    "Grace",
    "Hugo",
    "Ines",
    "Jack",
    "Kira",
    "Leo",
    "Maya",
    "Noah",
    "Olga",
    "Pablo",
    "Quinn",
    "Rosa",
    "Sam",
    "Tara",
]
ITEMS = ["apples", "marbles", "stickers", "pencils", "cookies", "books", "coins", "shells", "stamps", "cards"]
# (singular, plural)
CONTAINERS = [("box", "boxes"), ("bag", "bags"), ("jar", "jars"), ("basket", "baskets"), ("crate", "crates")]

# A generator returns (question, integer answer).
Generator = Callable[[random.Random], tuple[str, int]]


def _sum(r: random.Random) -> tuple[str, int]:
    a, b = r.randint(2, 30), r.randint(2, 30)
    return r.choice([f"What is {a} + {b}?", f"Add {a} and {b}.", f"Compute {a} plus {b}."]), a + b


def _add(r: random.Random) -> tuple[str, int]:
    n, it = r.choice(NAMES), r.choice(ITEMS)
    a, b = r.randint(2, 20), r.randint(2, 20)
    return f"{n} has {a} {it}. {n} gets {b} more {it}. How many {it} does {n} have now?", a + b


def _product(r: random.Random) -> tuple[str, int]:
    a, b = r.randint(2, 15), r.randint(2, 15)
    return r.choice([f"What is {a} times {b}?", f"Multiply {a} by {b}.", f"Compute {a} x {b}."]), a * b


def _add_sub(r: random.Random) -> tuple[str, int]:
    n, it = r.choice(NAMES), r.choice(ITEMS)
    a, b = r.randint(10, 40), r.randint(2, 20)
    c = r.randint(1, a + b - 1)
    q = f"{n} has {a} {it}, buys {b} more, and then gives away {c}. How many {it} does {n} have left?"
    return q, a + b - c


def _mul(r: random.Random) -> tuple[str, int]:
    it, (box, boxes) = r.choice(ITEMS), r.choice(CONTAINERS)
    a, b = r.randint(2, 12), r.randint(2, 12)
    return f"Each {box} holds {a} {it}. How many {it} are in {b} {boxes}?", a * b


def _mul_add(r: random.Random) -> tuple[str, int]:
    n, it, (_, boxes) = r.choice(NAMES), r.choice(ITEMS), r.choice(CONTAINERS)
    a, b, c = r.randint(2, 12), r.randint(2, 9), r.randint(2, 30)
    q = f"{n} has {b} {boxes} with {a} {it} in each, plus {c} loose {it}. "
    q += f"How many {it} does {n} have in total?"
    return q, a * b + c


# Difficulty levels: bare sums, one-step word sums, bare products, two-step word problems, products in
# words, and a multiply-then-add word problem.
LEVELS: dict[int, Generator] = {1: _sum, 2: _add, 3: _product, 4: _add_sub, 5: _mul, 6: _mul_add}


def generate_split(
    size: int, levels: list[int], seed: int, exclude: set[str] | None = None
) -> list[tuple[str, int, int]]:
    """`size` unique (question, answer, level) triples, levels round-robin, from RNG stream `seed`."""
    unknown = sorted(set(levels) - set(LEVELS))
    if unknown or not levels:
        raise ValueError(f"arith levels must be a non-empty subset of {sorted(LEVELS)}, got {levels}")
    rng = random.Random(seed)
    seen = set(exclude or ())
    out: list[tuple[str, int, int]] = []
    attempts = 0
    while len(out) < size:
        level = levels[len(out) % len(levels)]
        question, answer = LEVELS[level](rng)
        attempts += 1
        if attempts > 100 * size + 1000:
            raise ValueError(f"could not draw {size} distinct arith problems from levels {levels}")
        if question in seen:
            continue
        seen.add(question)
        out.append((question, answer, level))
    return out


def arith_splits(
    train_size: int, test_size: int, levels: list[int], seed: int
) -> tuple[list[tuple[str, int, int]], list[tuple[str, int, int]]]:
    """Disjoint train and test splits (test drawn first, from its own stream)."""
    test = generate_split(test_size, levels, seed * 2 + 1)
    train = generate_split(train_size, levels, seed * 2, exclude={q for q, _, _ in test})
    return train, test


def arith_prompts(
    split: str, train_size: int, test_size: int, levels: list[int], seed: int, system_prompt: str | None
) -> list[Prompt]:
    """The split as prompts; answers are plain integers, so the last number counts as a fallback."""
    train, test = arith_splits(train_size, test_size, levels, seed)
    rows = {"train": train, "test": test}.get(split)
    if rows is None:
        raise ValueError(f"arith split must be train or test, got {split!r}")
    return [
        Prompt(
            id=f"arith/{split}/{i}",
            messages=chat_messages(q, system_prompt),
            gold=str(a),
            answer_fallback="last_number",
            meta={"level": lvl},
        )
        for i, (q, a, lvl) in enumerate(rows)
    ]


def load(
    bench: BenchmarkConfig, data: DataConfig, system_prompt: str | None, screen: RecordScreen | None = None
) -> list[Prompt]:
    # Same generator settings as training (seed, sizes, levels), so the split is truly held out.
    d = data
    prompts = arith_prompts(bench.split, d.train_size, d.test_size, d.levels, d.seed, system_prompt)
    screen = screen or RecordScreen(bench.on_invalid, "benchmarks.arith")
    return screen_generated(prompts, screen, f"arith:{bench.split}")


BENCHMARK = Benchmark(name="arith", load=load, grade=grade_math, metric="accuracy")


def training_prompts(cfg: DataConfig, system_prompt: str | None, screen: RecordScreen) -> list[Prompt]:
    """The `data` section's generated training split (its first `limit` problems)."""
    prompts = arith_prompts(cfg.split, cfg.train_size, cfg.test_size, cfg.levels, cfg.seed, system_prompt)
    prompts = prompts[: cfg.limit] if cfg.limit is not None else prompts
    return screen_generated(prompts, screen, f"arith:{cfg.split}")
