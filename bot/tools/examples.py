"""Adding a trainer's example to the training data, safely.

The trainer picks a route (by its Vietnamese name) and a sentence. The sentence is put in
the recogniser's form (numbers as words by bot/tts/normalise.py, then lowercase without
punctuation by bot/nlu/text.py), checked against every example of every intent and the
held-out set (compared folded: without diacritics), written into the topic file of the
route's intent with ruamel.yaml (comments and order kept), and the project is checked with
Rasa's own validator before the real file is touched.
"""

from __future__ import annotations

import difflib
import io
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.scalarstring import LiteralScalarString

from bot.app.settings import Settings, quiet_libraries
from bot.console.labels import ROUTE_CHOICES
from bot.nlu.routes import FAQ_INTENTS, OPERATOR_INTENT, TRANSFER_INTENTS
from bot.nlu.text import fold, normalise
from bot.tts.normalise import normalise_vi
from bot.vocabulary import Route

# What a trainer reads in the route picker: every route of the route table, in Vietnamese.
# The console's Vietnamese names of the routes (one list for supervisors and trainers).
ROUTE_NAMES: dict[str, str] = dict(ROUTE_CHOICES)
assert tuple(ROUTE_NAMES) == tuple(Route), "every route needs a Vietnamese name"

OUT_OF_SCOPE_INTENT = "out_of_scope"


class ExampleRefused(ValueError):
    """The example was not added; the message (Vietnamese, for the trainer) says why."""


def intent_for_route(route: str) -> str:
    """The intent whose examples teach ``route`` (full name for retrieval intents)."""
    try:
        r = Route(route)
    except ValueError:
        r = None
    if r is not None and r.branch is not None:
        return next(i for i, t in TRANSFER_INTENTS.items() if t is r)
    if r is not None and r.faq_key is not None:
        family = next(f for f, (_, routes) in FAQ_INTENTS.items() if r in routes)
        return f"{family}/{r.faq_key}"
    if r is Route.OPERATOR:
        return OPERATOR_INTENT
    if r is Route.FALLBACK:
        return OUT_OF_SCOPE_INTENT
    raise ExampleRefused(f"Không có tuyến «{route}».")


def to_recogniser_form(text: str) -> str:
    """'Tôi gọi 1022, mũi 3!' -> 'tôi gọi một không hai hai mũi ba'.

    Abbreviations are read by their case ("UBND"), so a sentence typed all in capitals
    is lowercased first: its words are words, not letters to spell."""
    if text.upper() == text:
        text = text.lower()
    return normalise(normalise_vi(text))


@dataclass(frozen=True)
class Change:
    """What the trainer typed, what is written, and the word-level diff between them."""

    typed: str
    text: str
    diff: list[tuple[str, str]]  # ("=", "tôi"), ("-", "1022"), ("+", "một"), ...

    @property
    def changed(self) -> bool:
        return any(op != "=" for op, _ in self.diff)


def preview(text: str) -> Change:
    clean = to_recogniser_form(text)
    a, b = text.split(), clean.split()
    diff: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            diff += [("=", w) for w in a[i1:i2]]
        else:
            diff += [("-", w) for w in a[i1:i2]] + [("+", w) for w in b[j1:j2]]
    return Change(typed=text, text=clean, diff=diff)


# --- the YAML files ---------------------------------------------------------------


def _yaml() -> YAML:
    yaml = YAML()  # round-trip: comments, order and quoting kept
    yaml.indent(mapping=2, sequence=2, offset=0)
    yaml.width = 4096  # type: ignore[assignment]  # (ruamel's attribute is untyped)
    yaml.preserve_quotes = True  # type: ignore[assignment]
    return yaml


def _examples_of(block: str) -> list[str]:
    return [
        line.strip()[2:].strip() for line in block.splitlines() if line.strip().startswith("- ")
    ]


def topic_file(data_dir: Path, intent: str) -> Path:
    """The file that holds most of the intent's examples (borders.yml only teaches borders)."""
    yaml = _yaml()
    best: tuple[int, Path] | None = None
    for path in sorted((data_dir / "nlu").glob("*.yml")):
        doc = yaml.load(path.read_text(encoding="utf-8")) or {}
        for item in doc.get("nlu") or []:
            if item.get("intent") == intent:
                count = len(_examples_of(str(item.get("examples") or "")))
                if best is None or count > best[0]:
                    best = (count, path)
    if best is None:
        raise ExampleRefused(f"Không tìm thấy tệp dữ liệu của ý định «{intent}».")
    return best[1]


def add_example_to(data_dir: Path, intent: str, text: str) -> Path:
    """Append ``text`` to ``intent``'s examples in its topic file; no checks. Returns the file."""
    path = topic_file(data_dir, intent)
    yaml = _yaml()
    doc = yaml.load(path.read_text(encoding="utf-8"))
    for item in doc["nlu"]:
        if item.get("intent") == intent:
            block = str(item["examples"])
            if not block.endswith("\n"):
                block += "\n"
            item["examples"] = LiteralScalarString(block + f"- {text}\n")
            break
    out = io.StringIO()
    yaml.dump(doc, out)
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


# --- checks -----------------------------------------------------------------------


def _heldout_folded(heldout: Path) -> set[str]:
    from bot.tools.evaluation import load_heldout

    return {fold(t) for t, _ in load_heldout(heldout)}


def duplicate_of(data_dir: Path, text: str) -> tuple[str, str] | None:
    """(intent, example) already in the data that is the same sentence, folded."""
    from bot.tools.training import load_examples

    key = fold(text)
    for intent, examples in load_examples(data_dir).items():
        for example in examples:
            if fold(example) == key:
                return intent, example
    return None


def validation_errors(s: Settings, data_dir: Path) -> list[str]:
    """What `rasa data validate` finds wrong with the project using ``data_dir``
    (its checks, run in this process: the domain, the NLU data, the rules)."""
    import logging

    quiet_libraries(s.log_level)
    from rasa.shared.importers.importer import TrainingDataImporter
    from rasa.validator import Validator

    problems: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.ERROR:
                problems.append(record.getMessage())

    handler = Collect()
    logging.getLogger("rasa").addHandler(handler)
    try:
        importer = TrainingDataImporter.load_from_config(
            str(s.rasa_config), str(s.rasa_domain), [str(data_dir)]
        )
        validator = Validator.from_importer(importer)
        ok = all(
            (
                validator.verify_domain_validity(),
                validator.verify_nlu(True),
                validator.verify_story_structure(True),
            )
        )
    except Exception as e:  # Rasa raises its YAML and schema errors as plain exceptions
        return [f"{type(e).__name__}: {e}"]
    finally:
        logging.getLogger("rasa").removeHandler(handler)
    if not ok and not problems:
        problems.append("Rasa's validator reported an error")
    return problems


@dataclass(frozen=True)
class Added:
    route: str
    intent: str
    change: Change
    file: Path


def add_example(s: Settings, route: str, text: str, data_dir: Path | None = None) -> Added:
    """Check and add one example (into ``data_dir``, ``s.nlu_data`` by default); raises
    ExampleRefused (nothing written) when it cannot."""
    data_dir = data_dir or s.nlu_data
    if not route:
        raise ExampleRefused("Anh/chị chưa chọn tuyến đúng cho câu này.")
    if route not in ROUTE_NAMES:
        raise ExampleRefused(f"Không có tuyến «{route}».")
    change = preview(text)
    if not change.text:
        raise ExampleRefused("Câu ví dụ đang trống.")
    if len(change.text) > s.max_utterance_chars:
        raise ExampleRefused("Câu ví dụ quá dài.")
    intent = intent_for_route(route)
    dup = duplicate_of(data_dir, change.text)
    if dup is not None:
        other, example = dup
        if other == intent:
            raise ExampleRefused(f"Câu này đã có trong dữ liệu của tuyến này: «{example}».")
        raise ExampleRefused(
            f"Câu này trùng với một ví dụ của ý định khác ({other}): «{example}». "
            "Một câu chỉ được dạy cho một tuyến."
        )
    if fold(change.text) in _heldout_folded(s.heldout):
        raise ExampleRefused(
            "Câu này nằm trong bộ kiểm tra độc lập (tests/data/heldout.tsv); "
            "dạy nó thì phép đo không còn công bằng."
        )
    # Write into a copy first: the real file changes only if Rasa accepts the result.
    with tempfile.TemporaryDirectory(prefix="nlu-check-") as tmp:
        copy = Path(tmp) / "nlu_data"
        shutil.copytree(data_dir, copy)
        add_example_to(copy, intent, change.text)
        errors = validation_errors(s, copy)
        if errors:
            raise ExampleRefused(
                "Dữ liệu sau khi thêm không qua kiểm tra của Rasa: " + "; ".join(errors[:3])
            )
    path = add_example_to(data_dir, intent, change.text)
    return Added(route=route, intent=intent, change=change, file=path)


def route_of_intent(intent: str) -> str | None:
    """The route an example of ``intent`` teaches; None when it depends on the words
    (spoken branch numbers) rather than on the intent."""
    from bot.nlu.routes import CHOOSE_BRANCH_INTENT, Parse, route_for

    if intent == CHOOSE_BRANCH_INTENT:
        return None
    family, _, key = intent.partition("/")
    return route_for(Parse(intent=family, confidence=1.0, faq_key=key or None))
