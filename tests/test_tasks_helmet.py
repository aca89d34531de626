"""Loaders for HELMET's data (RAG, re-rank, ICL) and LongProc's (HTML to TSV, pseudocode to code,
travel planning), on small files in their formats under tests/data, and their scoring."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import pytest
import yaml
from transformers import AutoTokenizer

from evaluators.prompting import PromptRenderer
from evaluators.tasks import TASKS, Sample
from evaluators.tasks.rerank import parse_ranking
from evaluators.tasks.trip_plans import Stay, Trip, solve, violations

DATA = Path(__file__).parent / "data"
HELMET = DATA / "helmet"
LONGPROC = DATA / "longproc"


@pytest.fixture(scope="module")
def renderer(tiny_model):
    return PromptRenderer(AutoTokenizer.from_pretrained(tiny_model), "auto")


def _titles(context: str) -> list[str]:
    return re.findall(r"Document \(Title: (.*?)\)", context)


def _copy(tmp_path: Path, source: Path, relative: str, edit) -> Path:
    """A copy of a data folder with one file's records changed by ``edit``."""
    root = tmp_path / source.name
    shutil.copytree(source, root)
    path = root / relative
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        edit(rows)
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    else:
        rows = json.loads(path.read_text())
        edit(rows)
        path.write_text(json.dumps(rows, indent=2))
    return root


# -- RAG ---------------------------------------------------------------------------------------------
def test_rag_keeps_every_passage_when_they_fit_and_places_the_gold_one(renderer):
    task = TASKS["rag"](data_dir=str(HELMET), context_length=3000, shots=0, gold_depth=[0.0, 1.0])
    samples = task.samples(10, 0, renderer.length)
    assert sorted(s.id for s in samples) == ["nq-1", "nq-2", "nq-3"]
    by_id = {s.id: s for s in samples}
    moby = by_id["nq-1"]
    assert moby.gold == ["Herman Melville"] and moby.question == "Question: who wrote the novel moby dick"
    assert moby.answer_prefix == "Answer:"
    assert moby.context.startswith("Use the given documents to write a concise and short answer to the question.")
    others = ["Whaling", "Nantucket", "Sperm whale", "American Renaissance"]
    expected = ["Moby-Dick", *others] if moby.meta["gold_depth"] == 0.0 else [*others, "Moby-Dick"]
    assert _titles(moby.context) == expected
    assert [s.meta["gold_depth"] for s in samples] == [0.0, 1.0, 0.0]


def test_rag_packs_distractors_around_the_gold_passage_up_to_the_context_length(renderer):
    full = TASKS["rag"](data_dir=str(HELMET), context_length=3000, shots=0, gold_depth=0.5)
    (whole,) = [s for s in full.samples(3, 0, renderer.length) if s.id == "nq-1"]
    limit = len(renderer.render(whole).ids) - 40  # too short for all five passages
    task = TASKS["rag"](data_dir=str(HELMET), context_length=limit, shots=0, gold_depth=0.5)
    (sample,) = [s for s in task.samples(3, 0, renderer.length) if s.id == "nq-1"]
    kept = sample.meta["passages"] - 1  # distractors that fit, taken in file order around the gold passage
    others = ["Whaling", "Nantucket", "Sperm whale", "American Renaissance"][:kept]
    middle = round(0.5 * kept)
    assert 0 < kept < 4 and len(renderer.render(sample).ids) <= limit
    assert _titles(sample.context) == [*others[:middle], "Moby-Dick", *others[middle:]]


def test_rag_demonstrations_come_from_other_questions(renderer):
    task = TASKS["rag"](data_dir=str(HELMET), context_length=3000, shots=2)
    for sample in task.samples(3, 0, renderer.length):
        demos = re.findall(r"Question: (.*)\nAnswer: (.*)", sample.context)
        assert len(demos) == 2 and all(q != sample.question.removeprefix("Question: ") for q, _ in demos)
    (canberra,) = [s for s in task.samples(3, 0, renderer.length) if s.id == "nq-2"]
    assert "what is the capital of australia\nAnswer" not in canberra.context


def test_rag_finds_gold_passages_by_answer_when_the_file_has_no_has_answer(renderer):
    task = TASKS["rag"](data_dir=str(HELMET), dataset="hotpotqa", context_length=3000, shots=1, gold_depth=1.0)
    samples = {s.gold[0]: s for s in task.samples(5, 0, renderer.length)}
    assert _titles(samples["the Nile"].context)[-1] == "Cairo"
    assert _titles(samples["Scotland"].context)[-1] == "Alexander Graham Bell"
    assert samples["Scotland"].id == "hotpotqa-2" and task.label() == "rag hotpotqa"


def test_rag_sample_order_follows_the_seed(renderer):
    task = TASKS["rag"](data_dir=str(HELMET), context_length=3000, shots=0)
    orders = {seed: [s.id for s in task.samples(3, seed, renderer.length)] for seed in range(4)}
    assert orders[0] == [s.id for s in task.samples(3, 0, renderer.length)]
    assert len({tuple(o) for o in orders.values()}) > 1
    assert [s.id for s in task.samples(2, 0, renderer.length)] == orders[0][:2]


def test_rag_scores_the_answer_line():
    task = TASKS["rag"](data_dir=str(HELMET))
    sample = Sample("nq-3", "", "", ["eight", "8"])
    right = task.score("Answer: Eight legs.\nSpiders are arachnids.", sample)
    assert right.scores == {"score": 1.0} and right.format_ok and right.extracted == "Eight legs."
    later = task.score("Six.\nActually eight.", sample)  # HELMET stops at the newline: only "Six." counts
    assert later.scores == {"score": 0.0} and later.format_ok and later.extracted == "Six."
    empty = task.score("  \n", sample)
    assert empty.scores == {"score": 0.0} and not empty.format_ok and empty.extracted is None


def test_rag_file_problems_name_the_file_the_line_and_the_field(tmp_path, renderer):
    missing = TASKS["rag"](data_dir=str(tmp_path))
    assert missing.check() == [
        ("data_dir", f"file not found: {tmp_path / 'kilt/nq-dev-multikilt_1000_k1000_dep6.jsonl'}"),
        ("data_dir", f"file not found: {tmp_path / 'kilt/nq-train-multikilt_1000_k3_dep6.jsonl'}"),
    ]
    with pytest.raises(ValueError, match=r"nq RAG file not found: .*nq-dev-multikilt_1000_k1000_dep6\.jsonl"):
        missing.samples(1, 0, renderer.length)

    def drop_answers(rows):
        del rows[1]["answers"]

    root = _copy(tmp_path, HELMET, "kilt/nq-dev-multikilt_1000_k1000_dep6.jsonl", drop_answers)
    with pytest.raises(ValueError, match=r"nq-dev-multikilt_1000_k1000_dep6\.jsonl, line 2: missing field 'answers'"):
        TASKS["rag"](data_dir=str(root), shots=0).samples(3, 0, renderer.length)

    def drop_text(rows):
        del rows[0]["ctxs"][1]["text"]

    root = _copy(tmp_path / "b", HELMET, "kilt/nq-dev-multikilt_1000_k1000_dep6.jsonl", drop_text)
    with pytest.raises(ValueError, match=r"line 1: ctxs\[1\] is missing field 'text'"):
        TASKS["rag"](data_dir=str(root), shots=0).samples(3, 0, renderer.length)


def test_rag_gold_passage_that_does_not_fit_is_an_error_naming_the_line(renderer):
    with pytest.raises(ValueError, match=r"line \d: the gold passages and demonstrations alone do not fit"):
        TASKS["rag"](data_dir=str(HELMET), context_length=80, shots=0).samples(3, 0, renderer.length)


# -- re-rank -----------------------------------------------------------------------------------------
def _rerank(renderer, context_length=3000, **params):
    task = TASKS["rerank"](data_dir=str(HELMET), context_length=context_length, **params)
    return task, {s.id: s for s in task.samples(10, 0, renderer.length)}


def test_rerank_shows_every_passage_with_its_relevance(renderer):
    _, samples = _rerank(renderer, shots=0)
    bees = samples["q1"]
    assert re.findall(r"\[ID: (\d+)\] Document: ", bees.context) == ["101", "102", "103", "104", "105", "106"]
    assert bees.meta["qrels"] == {"101": 0, "102": 3, "103": 0, "104": 1, "105": 0, "106": 0}
    assert bees.gold == ["102 > 104 > 101 > 103 > 105 > 106"]
    assert bees.question == "Query: how do bees make honey" and bees.answer_prefix == "Ranking:"
    assert "[ID: 201] Document (Title: Water): Water boils" in samples["q2"].context


def test_rerank_keeps_relevant_passages_when_the_context_is_short(renderer):
    _, full = _rerank(renderer, shots=0)
    limit = len(renderer.render(full["q1"]).ids) - 30
    _, samples = _rerank(renderer, context_length=limit, shots=0)
    bees = samples["q1"]
    shown = re.findall(r"\[ID: (\d+)\]", bees.context)
    assert {"102", "104"} <= set(shown) and shown == sorted(shown) and len(shown) < 6
    assert len(renderer.render(bees).ids) <= limit and set(bees.meta["qrels"]) == set(shown)


def test_rerank_demonstrations_exclude_the_query_itself(renderer):
    _, samples = _rerank(renderer, shots=2)
    assert "[ID: 901]" not in samples["q1"].context
    assert len(re.findall(r"\nQuery: .*\nRanking: ", samples["q1"].context)) == 2
    assert "Query: speed of light\nRanking: 702 > 701" in samples["q1"].context


def test_parse_ranking_reads_ids_in_written_order():
    assert parse_ranking("Ranking: [3] > [ID: 1] > ID2\nthen more") == ["3", "1", "2"]
    assert parse_ranking("102 > 104 > 101.") == ["102", "104", "101"]
    assert parse_ranking("I cannot rank these") == []


def test_rerank_scores_ndcg_at_10_of_the_written_ranking():
    task = TASKS["rerank"](data_dir=str(HELMET))
    qrels = {"101": 0, "102": 3, "103": 0, "104": 1, "105": 0, "106": 0}
    sample = Sample("q1", "", "", ["102 > 104 > 101 > 103 > 105 > 106"], meta={"qrels": qrels})
    ideal = 3 + 1 / math.log2(3)
    perfect = task.score("102 > 104 > 101 > 103 > 105 > 106", sample)
    assert perfect.scores == {"ndcg_at_10": pytest.approx(1.0)} and perfect.format_ok
    swapped = task.score("Ranking: 104 > 102", sample)
    assert swapped.scores["ndcg_at_10"] == pytest.approx((1 + 3 / math.log2(3)) / ideal)  # 0.7967
    low = task.score("[ID: 101] > [ID: 102] > [ID: 999]", sample)
    assert low.scores["ndcg_at_10"] == pytest.approx((3 / math.log2(3)) / ideal)  # 0.5213
    assert low.extracted == ["101", "102", "999"] and low.details == {"unknown_ids": ["999"]}
    prose = task.score("I cannot rank these documents.", sample)
    assert prose.scores == {"ndcg_at_10": 0.0} and not prose.format_ok and prose.extracted is None
    empty = task.score("", sample)
    assert empty.scores == {"ndcg_at_10": 0.0} and not empty.format_ok


def test_rerank_query_without_relevant_passages_has_no_ndcg(renderer):
    task, samples = _rerank(renderer, shots=0)
    scored = task.score("301 > 302", samples["q3"])
    assert scored.scores == {} and scored.format_ok
    assert scored.missing == {"ndcg_at_10": "no shown passage is labelled relevant, so NDCG is undefined"}


def test_rerank_label_must_be_a_number(tmp_path, renderer):
    def text_label(rows):
        rows[2]["ctxs"][0]["label"] = "high"

    root = _copy(tmp_path, HELMET, "msmarco/test_reranking_data_k1000_dep3.jsonl", text_label)
    with pytest.raises(ValueError, match=r"test_reranking_data_k1000_dep3\.jsonl, line 3: ctxs\[0\]\.label must be"):
        TASKS["rerank"](data_dir=str(root), shots=0).samples(3, 0, renderer.length)


# -- ICL ---------------------------------------------------------------------------------------------
TRAIN_LABELS = {
    json.loads(line)["text"]: json.loads(line)["label"]
    for line in (HELMET / "icl/banking77_train.jsonl").read_text().splitlines()
}


def _demos(context: str) -> list[tuple[str, str]]:
    return re.findall(r"\n\n([^\n]+)\nlabel: (\d+)", context)


def test_icl_maps_labels_to_shuffled_numbers_consistently(renderer):
    task = TASKS["icl"](data_dir=str(HELMET), context_length=1500)
    samples = task.samples(3, 0, renderer.length)
    assert sorted(s.meta["label"] for s in samples) == [11, 59, 67]  # test samples are label balanced
    mappings = []
    for sample in samples:
        demos = _demos(sample.context)
        mapping = {TRAIN_LABELS[text]: number for text, number in demos}
        assert len(mapping) == 3 and sorted(mapping.values()) == ["0", "1", "2"]
        assert all(mapping[TRAIN_LABELS[text]] == number for text, number in demos)
        assert sample.gold == [mapping[sample.meta["label"]]]
        assert (
            sample.answer_prefix == "label:"
            and sample.question in (Path(HELMET) / "icl/banking77_test.jsonl").read_text()
        )
        mappings.append(tuple(sorted(mapping.items())))
    assert len(set(mappings)) > 1  # each sample draws its own mapping


def test_icl_demonstrations_are_label_balanced_and_fill_the_context(renderer):
    task = TASKS["icl"](data_dir=str(HELMET), context_length=1500)
    sample = task.samples(1, 0, renderer.length)[0]
    labels = [TRAIN_LABELS[text] for text, _ in _demos(sample.context)]
    assert len(labels) == sample.meta["shots"] > 12  # more shots than examples: labels come round again
    for start in range(0, len(labels) - 2, 3):
        assert sorted(labels[start : start + 3]) == [11, 59, 67]
    assert len(renderer.render(sample).ids) <= 1500
    small = TASKS["icl"](data_dir=str(HELMET), context_length=400).samples(1, 0, renderer.length)[0]
    assert 0 < small.meta["shots"] < sample.meta["shots"] and len(renderer.render(small).ids) <= 400


def test_icl_clinic150_reads_intent_labels(renderer):
    task = TASKS["icl"](data_dir=str(HELMET), dataset="clinic150", context_length=600)
    samples = task.samples(5, 1, renderer.length)
    assert sorted(s.meta["label"] for s in samples) == [3, 42] and task.label() == "icl clinic150"


def test_icl_scores_the_label_line():
    task = TASKS["icl"](data_dir=str(HELMET))
    sample = Sample("b", "", "", ["2"], meta={"labels": 3})
    right = task.score("label: 2\ntext: more", sample)
    assert right.scores == {"accuracy": 1.0} and right.format_ok and right.extracted == "2"
    wrong = task.score("1", sample)
    assert wrong.scores == {"accuracy": 0.0} and wrong.format_ok
    unknown = task.score("label: 7", sample)
    assert unknown.scores == {"accuracy": 0.0} and not unknown.format_ok
    named = task.score("card arrival", sample)
    assert named.scores == {"accuracy": 0.0} and not named.format_ok and named.extracted == "card arrival"
    empty = task.score("", sample)
    assert empty.scores == {"accuracy": 0.0} and not empty.format_ok and empty.extracted is None


def test_icl_missing_label_field_names_file_and_line(tmp_path, renderer):
    def drop_intent(rows):
        del rows[3]["intent"]

    root = _copy(tmp_path, HELMET, "icl/clinic150_train.jsonl", drop_intent)
    with pytest.raises(ValueError, match=r"clinic150_train\.jsonl, line 4: missing field 'intent'"):
        TASKS["icl"](data_dir=str(root), dataset="clinic150").samples(2, 0, renderer.length)
    assert TASKS["icl"](data_dir=str(tmp_path / "nowhere")).check()[0][0] == "data_dir"


# -- LongProc: HTML to TSV ---------------------------------------------------------------------------
def test_html_to_tsv_splits_the_prompt_after_the_page(renderer):
    task = TASKS["html_to_tsv"](data_dir=str(LONGPROC))
    samples = {s.id: s for s in task.samples(5, 0, renderer.length)}
    fruit = samples["T1_0.5k_1"]
    page = (LONGPROC / "html_to_tsv/webpage/T1_0.5k_1.html").read_text()
    assert fruit.context.startswith("[TASK]") and fruit.context.endswith(page + "\n```")
    assert fruit.question.startswith(
        "[WHAT TO EXTRACT]\nFrom the page about a fruit stand, extract: (1) Name; (2) Price"
    )
    assert "name\tprice\n{one line per item}\n```" in fruit.question
    assert "(2) Country Only extract cities in Peru." in samples["T2_0.5k_1"].question
    # the renderer joins context and question with a blank line: that gives back LongProc's prompt exactly
    template = yaml.safe_load((LONGPROC / "html_to_tsv/prompts.yaml").read_text())["USER_PROMPT"]
    record = json.loads((LONGPROC / "html_to_tsv/html_to_tsv_0.5k.json").read_text())[0]
    fields = {k: record[k] for k in ("task_topic", "task_description", "filtering_instruction", "tsv_header")}
    assert fruit.context + "\n\n" + fruit.question == template.format(html_str=page, **fields)
    assert task.max_new_tokens == 1024 and TASKS["html_to_tsv"](data_dir="x", length="8k").max_new_tokens == 10240


TSV_GOLD = Sample("t", "", "", ["name\tprice\nApple\t$1.00\nBanana\t$0.50\nCherry\t$3.00\n"])


@pytest.mark.parametrize(
    ("answer", "scores", "format_ok"),
    [
        ("```tsv\nname\tprice\nApple\t$1.00\nBanana\t$0.50\nCherry\t$3.00\n```", (1.0, 1.0, 1.0), True),
        ("Here:\n```tsv\nname\tprice\nApple\t$1.00\nBanana\t$0.75\nCherry\t$3.00\n```", (2 / 3, 2 / 3, 2 / 3), True),
        # cells are compared lowercased, without punctuation, articles or spaces
        ("```tsv\nname\tprice\nthe apple\t1.00$\n```", (1.0, 1 / 3, 0.5), True),
        # a cut-off last line is dropped; a short line in the middle becomes an N/A row
        ("name\tprice\nApple\t$1.00\nBan", (1.0, 1 / 3, 0.5), True),
        ("name\tprice\nApple\nBanana\t$0.50\nCherry\t$3.00", (2 / 3, 2 / 3, 2 / 3), True),
        ("```tsv\ncountry\nPeru\n```", (0.0, 0.0, 0.0), False),
    ],
)
def test_html_to_tsv_scores_rows(answer, scores, format_ok):
    scored = TASKS["html_to_tsv"](data_dir=str(LONGPROC)).score(answer, TSV_GOLD)
    precision, recall, f1 = scores
    assert scored.scores == {
        "precision": pytest.approx(precision),
        "recall": pytest.approx(recall),
        "f1": pytest.approx(f1),
    }
    assert scored.format_ok is format_ok and not scored.missing


def test_html_to_tsv_output_without_rows_has_no_precision():
    scored = TASKS["html_to_tsv"](data_dir=str(LONGPROC)).score("", TSV_GOLD)
    assert scored.scores == {"recall": 0.0, "f1": 0.0} and not scored.format_ok
    assert scored.missing == {"precision": "the output has no TSV rows"}


def test_html_to_tsv_file_problems(tmp_path, renderer):
    def bad_page(rows):
        rows[0]["html_path"] = "webpage/nope.html"

    root = _copy(tmp_path / "a", LONGPROC, "html_to_tsv/html_to_tsv_0.5k.json", bad_page)
    with pytest.raises(ValueError, match=r"0\.5k\.json, record 1 \(line 2\): html_path points to a missing"):
        TASKS["html_to_tsv"](data_dir=str(root)).samples(2, 0, renderer.length)

    def no_gold(rows):
        del rows[1]["gt"]

    root = _copy(tmp_path / "b", LONGPROC, "html_to_tsv/html_to_tsv_0.5k.json", no_gold)
    task = TASKS["html_to_tsv"](data_dir=str(root))
    lines = (root / "html_to_tsv/html_to_tsv_0.5k.json").read_text().splitlines()
    second = [number for number, text in enumerate(lines, start=1) if text == "  {"][1]
    with pytest.raises(ValueError, match=rf"html_to_tsv_0\.5k\.json, record 2 \(line {second}\): missing field 'gt'"):
        task.samples(2, 0, renderer.length)
    assert TASKS["html_to_tsv"](data_dir=str(root), length="2k").check() == [
        ("data_dir", f"file not found: {root / 'html_to_tsv/html_to_tsv_2k.json'}")
    ]


# -- LongProc: pseudocode to code --------------------------------------------------------------------
def _sum_sample(renderer) -> Sample:
    samples = TASKS["pseudo_to_code"](data_dir=str(LONGPROC)).samples(2, 0, renderer.length)
    return next(s for s in samples if s.id == "1A")


def test_pseudo_to_code_prompt_and_testcases(renderer):
    sample = _sum_sample(renderer)
    assert sample.context.endswith("[PSEUDOCODE]:\ndefine the main function\n    create integers a and b\n"
                                   "    read a and b\n    print a + b\nend of the block")  # fmt: skip
    assert sample.question == "[CODE]:" and sample.meta["testcases"][1] == (["10 -4"], ["6"])


needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")
GOOD = "```cpp\nint main() {\n    int a, b;\n    cin >> a >> b;\n    cout << a + b << endl;\n}\n```"


@needs_gxx
def test_pseudo_to_code_runs_the_code_on_the_testcases(renderer):
    task = TASKS["pseudo_to_code"](data_dir=str(LONGPROC))
    sample = _sum_sample(renderer)
    right = task.score("Here is the code:\n" + GOOD, sample)
    assert right.scores == {"accuracy": 1.0} and right.format_ok and right.details == {}
    minus = task.score(GOOD.replace("a + b", "a - b"), sample)
    assert minus.scores == {"accuracy": 0.0} and minus.format_ok
    assert minus.details["error"] == "wrong output" and minus.details["testcase"] == 0
    broken = task.score("```c++\nint main() { return x; }\n```", sample)
    assert broken.scores == {"accuracy": 0.0} and broken.details["error"] == "compilation error"


def test_pseudo_to_code_without_code_block_scores_zero(renderer):
    scored = TASKS["pseudo_to_code"](data_dir=str(LONGPROC)).score("int main() {}", _sum_sample(renderer))
    assert scored.scores == {"accuracy": 0.0} and not scored.format_ok


def test_pseudo_to_code_without_a_compiler_is_missing_not_zero(renderer, monkeypatch, tmp_path):
    sample = _sum_sample(renderer)
    monkeypatch.setenv("PATH", str(tmp_path))  # a worker where g++ cannot be found
    scored = TASKS["pseudo_to_code"](data_dir=str(LONGPROC)).score(GOOD, sample)
    assert scored.scores == {} and scored.format_ok
    assert scored.missing == {"accuracy": "g++ is not installed on this worker, so the code cannot be compiled and run"}


# -- LongProc: travel planning -----------------------------------------------------------------------
def _trip(renderer, length="2k") -> dict[str, Sample]:
    task = TASKS["travel_planning"](data_dir=str(LONGPROC), length=length)
    return {s.id: s for s in task.samples(5, 0, renderer.length)}


def test_travel_planning_selects_problems_by_output_length(renderer):
    assert sorted(_trip(renderer)) == ["trip_0", "trip_1"]
    assert sorted(_trip(renderer, "8k")) == ["trip_2"]
    assert TASKS["travel_planning"](data_dir="x", length="8k").max_new_tokens == 10240


def test_travel_planning_prompt_holds_worked_examples_as_context(renderer):
    sample = _trip(renderer)["trip_0"]
    assert sample.context.startswith("TASK:\n") and "EXAMPLES:\n# Example\nYou plan to visit 3 cities" in sample.context
    assert "    - Bogota, Day 4-5?\n      No direct flight Lima -> Bogota. Rejected." in sample.context
    assert sample.context.endswith(
        "<Plan>\n**Day 1-2:** Arriving in Quito and visit Quito for 2 days.\n**Day 2:** Fly from Quito to Bogota.\n"
        "**Day 2-3:** Visit Bogota for 2 days.\n**Day 3:** Fly from Bogota to Lima.\n"
        "**Day 3-5:** Visit Lima for 3 days.\n</Plan>"
    )
    assert sample.question.startswith("YOUR TASK:\n") and sample.question.endswith("from Oslo to Rome.")
    assert sample.gold == ["Oslo (4 days)", "Paris (2 days)", "Rome (3 days)"]


def test_solve_searches_in_constraint_order_and_backtracks():
    trip = Trip(4, {"Vienna": 2, "Prague": 3}, {}, frozenset({("Prague", "Vienna")}))
    stays, steps = solve(trip)
    assert stays == [Stay("Prague", 1, 3), Stay("Vienna", 3, 4)]
    assert "    No direct flight Vienna -> Prague. Rejected." in steps
    assert "  Nothing works on Day 2. Back up." in steps
    assert violations(trip, stays) == []


OSLO_PLAN = (
    "<Plan>\n**Day 1-4:** Arriving in Oslo and visit Oslo for 4 days.\n**Day 4:** Fly from Oslo to Paris.\n"
    "**Day 4-5:** Visit Paris for 2 days.\n**Day 5:** Fly from Paris to Rome.\n"
    "**Day 5-7:** Visit Rome for 3 days.\n</Plan>"
)


def test_travel_planning_scores_exact_plans_and_valid_plans(renderer):
    task = TASKS["travel_planning"](data_dir=str(LONGPROC))
    sample = _trip(renderer)["trip_0"]
    right = task.score("<Solving Procedure>\n...\n</Solving Procedure>\n\n" + OSLO_PLAN, sample)
    assert right.scores == {"accuracy": 1.0, "plan_valid": 1.0} and right.format_ok
    assert right.extracted == ["Oslo (Day 1-4)", "Paris (Day 4-5)", "Rome (Day 5-7)"]
    # a different plan that meets every constraint: not the reference, but valid
    other = (
        "<Plan>\nDay 1-2: Arriving in Paris and visit Paris for 2 days.\nDay 2: Fly from Paris to Oslo.\n"
        "Day 2-5: Visit Oslo for 4 days.\nDay 5: Fly from Oslo to Rome.\nDay 5-7: Visit Rome for 3 days.\n</Plan>"
    )
    alternative = task.score(other, sample)
    assert alternative.scores == {"accuracy": 0.0, "plan_valid": 1.0} and alternative.format_ok
    short = task.score(OSLO_PLAN.replace("Day 4-5:** Visit Paris", "Day 4-4:** Visit Paris"), sample)
    assert short.scores == {"accuracy": 0.0, "plan_valid": 0.0}
    assert short.details["violations"] == [
        "Rome starts on Day 5, not Day 4 when Paris ends",
        "Paris lasts 1 days, not 2",
    ]
    untagged = task.score(OSLO_PLAN.replace("<Plan>", ""), sample)
    assert untagged.scores == {"accuracy": 0.0, "plan_valid": 0.0} and not untagged.format_ok
    assert untagged.details == {"violations": ["the plan lists no stays"]}


def test_travel_plan_violations_cover_flights_fixed_days_and_cities():
    trip = Trip(7, {"Oslo": 4, "Paris": 2, "Rome": 3}, {"Rome": (5, 7)}, frozenset({("Oslo", "Paris")}))
    stays = [Stay("Oslo", 1, 4), Stay("Rome", 4, 6), Stay("Berlin", 6, 7)]
    assert violations(trip, stays) == [
        "Paris is visited 0 times, not once",
        "Berlin is not one of the trip's cities",
        "no direct flight from Oslo to Rome",
        "no direct flight from Rome to Berlin",
        "Rome is on Day 4-6, not its fixed Day 5-7",
    ]
