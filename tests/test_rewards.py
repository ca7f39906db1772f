"""The reward: answer-block parsing, per-kind comparison, write actions, hostile completions."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seccrm.world import answers, rewards
from seccrm.world.org.ids import make_id
from seccrm.world.org.schema import META_TABLE, create_schema, qi
from seccrm.world.rewards import InstanceError, extract_answer, score, score_details, token_f1
from seccrm.world.tasks.base import AnswerKind

USER = [make_id("005", i) for i in range(1, 4)]
CASE = [make_id("500", i) for i in range(1, 4)]
OPP = [make_id("006", i) for i in range(1, 3)]
PRODUCT = make_id("01t", 7)

K_USER = AnswerKind("id", prefix="005")
K_PRODUCT = AnswerKind("id", prefix="01t", allow_none=True)
K_TASKS = AnswerKind("id_list", prefix="00T", allow_none=True)
K_MONTH = AnswerKind("month", allow_none=True)
K_STATE = AnswerKind("state")
K_TEXT = AnswerKind("text")
K_TLIST = AnswerKind("text_list")
K_BANT = AnswerKind("subset", allow_none=True, choices=("Budget", "Authority", "Need", "Timeline"))
K_ROUTE = AnswerKind("action", action_object="Case", action_fields=("OwnerId",))
K_STAGE = AnswerKind("action", action_object="Opportunity", action_fields=("StageName",))


def inst(answer: list[str], **meta: object) -> dict:
    return {"id": "t-easy-00000", "task": "t", "answer": answer, "metadata": dict(meta)}


def a(content: str) -> str:
    return f"Reasoning first. <answer>{content}</answer>"


def action(obj: str, rid: str, fields: dict) -> str:
    return json.dumps({"op": "update", "object": obj, "id": rid, "fields": fields})


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A hand-made org with 3 users, 3 cases and 2 opportunities (no generator needed)."""
    path = tmp_path_factory.mktemp("org") / "org.sqlite"
    conn = sqlite3.connect(path)
    create_schema(conn)
    conn.executemany(f"INSERT INTO {qi('User')} (Id, Name, UserRole) VALUES (?, ?, 'Support Agent')",
                     [(u, f"Agent {i}") for i, u in enumerate(USER)])
    conn.executemany(f"INSERT INTO {qi('Case')} (Id, OwnerId, Status) VALUES (?, ?, 'New')",
                     [(c, USER[0]) for c in CASE])
    conn.executemany("INSERT INTO Opportunity (Id, OwnerId, StageName) VALUES (?, ?, 'Discovery')",
                     [(o, USER[1]) for o in OPP])
    conn.execute(f"INSERT INTO {qi(META_TABLE)} VALUES ('today', '2025-06-15')")
    conn.commit()
    conn.close()
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------------------------
# Answer blocks
# ----------------------------------------------------------------------------------------------

def test_extract_last_block_and_tag_count() -> None:
    assert extract_answer("x <answer>1</answer> y <Answer>2</ANSWER> z") == ("2", 4)
    assert extract_answer("<answer>1</answer><answer>2") == ("1", 3)     # dangling open tag
    assert extract_answer("<answer><answer>x</answer></answer>") == ("x", 4)
    assert extract_answer("</answer> 1 <answer>") == (None, 2)
    assert extract_answer("") == (None, 0)


def test_only_the_last_64k_are_searched() -> None:
    far = a(USER[0]) + "x" * (answers.SEARCH_WINDOW + 10)
    assert extract_answer(far) == (None, 0)
    assert score(inst([USER[0]]), far, K_USER) == 0.0
    near = "x" * 1_000_000 + a(USER[0])                    # 1 MB of text, then the block
    assert score(inst([USER[0]]), near, K_USER) == 1.0


def test_several_blocks_last_decides_correctness_but_never_earns_format() -> None:
    i = inst([USER[0]])
    assert score(i, a(USER[1]) + a(USER[0]), K_USER) == 1.0         # last block correct
    d = score_details(i, a(USER[0]) + a(USER[1]), K_USER)           # last block wrong
    assert (d["reward"], d["formatted"]) == (0.0, False)
    assert "4 answer tags" in d["error"]
    assert score(i, a(USER[1]), K_USER) == 0.1                      # one block, wrong: format reward
    assert score(i, f"<answer><answer>{USER[1]}</answer></answer>", K_USER) == 0.0   # nested tags


# ----------------------------------------------------------------------------------------------
# Kinds
# ----------------------------------------------------------------------------------------------

def test_id_kind() -> None:
    i = inst([USER[0]])
    assert score(i, a(f"  `{USER[0]}`. "), K_USER) == 1.0           # wrapper and period dropped
    assert score(i, a(USER[0].lower()), K_USER) == 0.0              # ids are case-sensitive: bad checksum
    assert score(i, a(CASE[0]), K_USER) == 0.0                      # valid id of the wrong object
    assert score(i, a(USER[0][:-1] + "B"), K_USER) == 0.0           # checksum broken
    assert score(i, a("None"), K_USER) == 0.0                       # None not allowed here
    d = score_details(i, a(USER[0][:5] + "\u0430" + USER[0][6:]), K_USER)   # Cyrillic 'а'
    assert d["reward"] == 0.0 and "non-ASCII" in d["error"]
    fullwidth = "".join(chr(ord(c) + 0xFEE0) for c in USER[0])      # NFKC folds it back to ASCII
    assert score(i, a(fullwidth), K_USER) == 1.0
    assert score(i, a(USER[0] + "\u200b"), K_USER) == 0.0           # zero-width space survives NFKC


def test_none_answers() -> None:
    assert score(inst(["None"]), a("none"), K_PRODUCT) == 1.0
    assert score(inst(["None"]), a(PRODUCT), K_PRODUCT) == 0.1
    assert score(inst([PRODUCT]), a("None"), K_PRODUCT) == 0.1
    assert score(inst(["None"]), a("None"), K_TASKS) == 1.0
    assert score(inst(["None"]), a("None"), K_BANT) == 1.0


def test_id_list_is_a_set() -> None:
    t = [make_id("00T", i) for i in (3, 1, 2)]
    i = inst(t[:2])
    assert score(i, a(f"{t[1]}, {t[0]}, {t[1]},"), K_TASKS) == 1.0  # order, duplicates, trailing comma
    assert score(i, a(t[0]), K_TASKS) == 0.1
    assert score(i, a(", ".join(t)), K_TASKS) == 0.1
    assert score(i, a(f"{t[0]}, {USER[0]}"), K_TASKS) == 0.0        # one id of the wrong object
    assert score(i, a(f"{t[0]} {t[1]}"), K_TASKS) == 0.0            # not comma-separated
    assert score(i, a(", ".join([t[0]] * 100)), K_TASKS) == 0.1     # duplicates collapse before the cap


def test_month_state_subset_case_insensitive() -> None:
    assert score(inst(["March"]), a("MARCH"), K_MONTH) == 1.0
    assert score(inst(["March"]), a("Mar"), K_MONTH) == 0.0
    assert score(inst(["CA"]), a("ca"), K_STATE) == 1.0
    assert score(inst(["CA"]), a("TX"), K_STATE) == 0.1
    assert score(inst(["CA"]), a("XX"), K_STATE) == 0.0
    assert score(inst(["CA"]), a("California"), K_STATE) == 0.0
    assert score(inst(["Budget", "Need"]), a("need, BUDGET"), K_BANT) == 1.0
    assert score(inst(["Budget", "Need"]), a("Need"), K_BANT) == 0.1
    assert score(inst(["Budget", "Need"]), a("Need, Money"), K_BANT) == 0.0


def test_text_normalisation() -> None:
    i = inst(["Net-30 days"])
    assert score(i, a("net 30   Days!"), K_TEXT) == 1.0
    assert score(i, a("net 60 days"), K_TEXT) == 0.1
    assert score(i, a(" ... "), K_TEXT) == 0.0                      # nothing left after normalising


def test_text_list_token_f1() -> None:
    gold = ["Acme Corp", "pricing", "support"]
    assert token_f1(gold, gold) == 1.0
    assert token_f1(["x"], gold) == 0.0
    d = score_details(inst(gold), a("support, ACME corp., Pricing, pricing"), K_TLIST)
    assert d["reward"] == 1.0 and d["f1"] == 1.0
    d = score_details(inst(gold), a("Acme Corp, pricing"), K_TLIST)   # F1 = 2*1*0.75/1.75 = 0.857
    assert d["reward"] == 1.0 and d["f1"] == pytest.approx(6 / 7)
    d = score_details(inst(gold), a("Acme, pricing"), K_TLIST)        # F1 = 2*1*.5/1.5 = 0.667 < 0.8
    assert d["reward"] == 0.1 and d["f1"] == pytest.approx(2 / 3) and not d["correct"]


# ----------------------------------------------------------------------------------------------
# Write actions
# ----------------------------------------------------------------------------------------------

def route(org: Path, owner: str = USER[2], case: str = CASE[1]) -> dict:
    return inst([action("Case", case, {"OwnerId": owner})], org_path=str(org))


def test_action_correct_wrong_and_invalid(org: Path) -> None:
    i = route(org)
    assert score(i, a(action("Case", CASE[1], {"OwnerId": USER[2]})), K_ROUTE) == 1.0
    fenced = "<answer>```json\n" + action("Case", CASE[1], {"OwnerId": USER[2]}) + "\n```</answer>"
    assert score(i, fenced, K_ROUTE) == 1.0
    assert score(i, a(action("Case", CASE[1], {"OwnerId": USER[1]})), K_ROUTE) == 0.1   # other agent
    assert score(i, a(action("Case", CASE[2], {"OwnerId": USER[2]})), K_ROUTE) == 0.1   # other case
    assert score(i, a(action("Case", CASE[1], {"OwnerId": USER[0]})), K_ROUTE) == 0.1   # a no-op
    bad = [
        action("Case", CASE[1], {"OwnerId": make_id("005", 999)}),             # no such user
        action("Case", CASE[1], {"OwnerId": CASE[0]}),                          # owner is not a User
        action("Case", make_id("500", 999), {"OwnerId": USER[2]}),              # no such case
        action("Case", OPP[0], {"OwnerId": USER[2]}),                           # id of the wrong object
        action("Opportunity", OPP[0], {"OwnerId": USER[2]}),                    # other table
        action("Case", CASE[1], {"Status": "Closed"}),                          # field not writable
        action("Case", CASE[1], {"OwnerId": USER[2], "Status": "Closed"}),
        action("Case", CASE[1], {}),
        action("Case", CASE[1], {"OwnerId": 5}),
        json.dumps({"op": "delete", "object": "Case", "id": CASE[1], "fields": {"OwnerId": USER[2]}}),
        json.dumps({"op": "update", "object": "Case", "id": CASE[1], "fields": {"OwnerId": USER[2]}, "x": 1}),
        '{"op": "update", "object": "Case", ',                                  # invalid JSON
        "[" * 5000 + "]" * 5000,                                                # deep nesting
        f"UPDATE \"Case\" SET OwnerId = '{USER[2]}' WHERE Id = '{CASE[1]}'",    # SQL, not JSON
    ]
    for b in bad:
        d = score_details(i, a(b), K_ROUTE)
        assert d["reward"] == 0.0 and d["error"], (b[:60], d)


def test_stage_action_is_case_insensitive_and_canonicalised(org: Path) -> None:
    i = inst([action("Opportunity", OPP[0], {"StageName": "Negotiation"})], org_path=str(org))
    assert score(i, a(action("Opportunity", OPP[0], {"StageName": "negotiation"})), K_STAGE) == 1.0
    assert score(i, a(action("Opportunity", OPP[0], {"StageName": "Quote"})), K_STAGE) == 0.1
    assert score(i, a(action("Opportunity", OPP[0], {"StageName": "Won"})), K_STAGE) == 0.0


def test_hostile_completions_never_raise_and_never_touch_the_org(org: Path) -> None:
    before = sha256(org)
    inj = "'; DROP TABLE \"Case\"; --"
    hostile = [
        "", None, 12, "<answer></answer>", "x" * 1_000_000, "<answer>" * 50_000, "</answer>" * 50_000,
        a(inj), a(action("Case", CASE[1] + inj, {"OwnerId": USER[2]})),
        a(action("Case", CASE[1], {"OwnerId": USER[2] + inj})),
        a(json.dumps({"op": "update", "object": 'Case"; DROP TABLE "Case"; --', "id": CASE[1],
                      "fields": {"OwnerId": USER[2]}})),
        a(json.dumps({"op": "update", "object": "Case", "id": CASE[1],
                      "fields": {'OwnerId" = NULL; --': USER[2]}})),
        a(action("Case", CASE[1], {"OwnerId": USER[2]}).replace("}", "\x00}")),
        a("\x00" + USER[2]), a("\ud800"), a("<answer>" + "\U0001F600" * 10_000),
    ]
    for c in hostile:
        for kind in (K_ROUTE, K_USER, K_TEXT, K_TLIST, K_TASKS):
            i = route(org) if kind is K_ROUTE else inst(["None"])
            d = score_details(i, c, kind)  # type: ignore[arg-type]
            assert d["reward"] in (0.0, 0.1) and set(d) == {"reward", "correct", "formatted", "kind", "f1", "error"}
            assert d["reward"] == 0.0 or d["formatted"]
    # The scratch copy was rolled back after every action: the gold action still scores 1.0, and a
    # fresh read-only look at the file shows it untouched.
    assert score(route(org), a(action("Case", CASE[1], {"OwnerId": USER[2]})), K_ROUTE) == 1.0
    assert sha256(org) == before
    conn = sqlite3.connect(f"file:{org}?mode=ro", uri=True)
    assert conn.execute(f"SELECT COUNT(*) FROM {qi('Case')} WHERE OwnerId = ?", (USER[0],)).fetchone()[0] == 3
    conn.close()


def test_scratch_copy_follows_a_rebuilt_org(org: Path, tmp_path: Path) -> None:
    copy = tmp_path / "org.sqlite"
    copy.write_bytes(org.read_bytes())
    i = route(copy, owner=USER[1], case=CASE[0])
    assert score(i, a(action("Case", CASE[0], {"OwnerId": USER[1]})), K_ROUTE) == 1.0
    conn = sqlite3.connect(copy)
    conn.execute(f"DELETE FROM {qi('User')} WHERE Id = ?", (USER[1],))
    conn.commit()
    conn.close()
    with pytest.raises(InstanceError, match="gold action"):   # the gold owner is gone: broken instance
        score(i, a(action("Case", CASE[0], {"OwnerId": USER[1]})), K_ROUTE)


def test_org_lookup_order(org: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = a(action("Case", CASE[1], {"OwnerId": USER[2]}))
    i = inst([action("Case", CASE[1], {"OwnerId": USER[2]})], org="org.sqlite")
    monkeypatch.delenv("SECCRM_ORG", raising=False)
    with pytest.raises(InstanceError, match="cannot find its org"):
        score(i, good, K_ROUTE)                              # no registry: a bare file name finds nothing
    assert rewards.score_details(i, good, K_ROUTE, org=org)["reward"] == 1.0    # told its org
    monkeypatch.setenv("SECCRM_ORG", str(org))
    assert score(i, good, K_ROUTE) == 1.0
    monkeypatch.setenv("SECCRM_ORG", str(tmp_path / "elsewhere.sqlite"))
    assert rewards.org_path(i, org) == org                   # the argument first, as the VERL reward
    monkeypatch.delenv("SECCRM_ORG")
    attached = rewards.attach_org([json.loads(json.dumps(i))], org.parent)[0]
    assert rewards.org_path(attached) == (org.parent / "org.sqlite").resolve()
    i_str = dict(attached, metadata=json.dumps(attached["metadata"]))   # Parquet twins hold metadata as JSON text
    assert score(i_str, good, K_ROUTE) == 1.0


def test_an_instance_answer_kind_overrides_its_task_kind() -> None:
    """knowledge_qa's article form records an id kind in its metadata: the reward scores by it
    whenever no kind is passed (also when the metadata is a JSON string, as in Parquet)."""
    art, other = make_id("ka0", 3), make_id("ka0", 4)
    meta = {"answer_kind": {"kind": "id", "prefix": "ka0", "allow_none": True}}
    for m in (meta, json.dumps(meta)):
        rec = {"task": "knowledge_qa", "answer": [art], "metadata": m}
        assert rewards.instance_answer_kind(rec) == AnswerKind("id", prefix="ka0", allow_none=True)
        assert score(rec, a(art)) == 1.0 and score(rec, a(other)) == 0.1
        assert score(rec, a("None")) == 0.1 and score(rec, a("14 days")) == 0.0
        assert rewards.gold_completion(rec) == f"<answer>{art}</answer>"
        none = {**rec, "answer": ["None"]}
        assert score(none, a("none")) == 1.0 and score(none, a(art)) == 0.1
        assert score(rec, a("ka0 anything"), kind=K_TEXT) == 0.1     # an explicit kind still wins
    fact = {"task": "knowledge_qa", "answer": ["14 days"], "metadata": {}}
    assert rewards.instance_answer_kind(fact) == K_TEXT and score(fact, a("14 Days")) == 1.0
    with pytest.raises(InstanceError):
        rewards.instance_answer_kind({"task": "knowledge_qa", "metadata": {"answer_kind": {"kind": "blob"}}})


def test_broken_instances_raise_typed_errors() -> None:
    with pytest.raises(InstanceError):
        score({"task": "t", "answer": []}, a("x"), K_TEXT)
    with pytest.raises(InstanceError, match="unknown task"):
        score({"task": "no_such_task", "answer": ["x"]}, a("x"))


def test_batch_score() -> None:
    insts = [inst(["CA"]), inst(["TX"])]
    assert rewards.batch_score(insts, [a("CA"), a("CA")], K_STATE) == [1.0, 0.1]
    with pytest.raises(ValueError):
        rewards.batch_score(insts, [a("CA")], K_STATE)


# ----------------------------------------------------------------------------------------------
# Properties of the parser
# ----------------------------------------------------------------------------------------------

no_tags = st.text(max_size=200).filter(lambda s: "answer>" not in s.lower())
kinds = st.sampled_from([K_USER, K_PRODUCT, K_TASKS, K_MONTH, K_STATE, K_TEXT, K_TLIST, K_BANT])


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400), kinds)
def test_any_text_scores_without_raising(text: str, kind: AnswerKind) -> None:
    for c in (text, a(text), f"<answer>{text}"):
        d = score_details(inst(["None"]), c, kind)
        assert d["reward"] in (0.0, 0.1, 1.0)


@settings(max_examples=200, deadline=None)
@given(st.lists(no_tags, min_size=1, max_size=5), no_tags, no_tags)
def test_last_block_wins(contents: list[str], before: str, after: str) -> None:
    text = before + "".join(f"<answer>{c}</answer>{before}" for c in contents) + after
    assert extract_answer(text) == (contents[-1], 2 * len(contents))


@settings(max_examples=200, deadline=None)
@given(no_tags, no_tags, st.sampled_from(["March", "march", "None", "Smarch", ""]))
def test_text_outside_the_block_is_ignored(before: str, after: str, content: str) -> None:
    bare = score_details(inst(["March"]), f"<answer>{content}</answer>", K_MONTH)
    wrapped = score_details(inst(["March"]), f"{before}<answer>{content}</answer>{after}", K_MONTH)
    assert bare == wrapped
