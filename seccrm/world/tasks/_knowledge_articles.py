"""``knowledge_qa``: facts stated in FAQ articles, and which article answers a customer's question.

Half the instances ask for a fact an article states verbatim (a text answer), half for the Id of the
article that answers a question, or None when that article is left out (those record
``metadata["answer_kind"]``). Distractors are other FAQ articles, from hard on those asking the most
similar questions first. The module docstring of ``seccrm.world.tasks.knowledge`` gives the details.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass

from seccrm.world.tasks._knowledge_common import char_budget, fill_distractors, pick
from seccrm.world.tasks.base import (
    NONE_ANSWER,
    NONE_DRAW_RATE,
    AnswerKind,
    Instance,
    Org,
    Task,
    build_messages,
    register,
    render_table,
    shuffled,
)


@dataclass(frozen=True)
class FaqArticle:
    id: str
    title: str
    text: str                                # FAQ_Answer__c
    facts: tuple[tuple[str, str], ...]       # (question, answer), answers verbatim in the text


def faq_articles(org: Org) -> list[FaqArticle]:
    """FAQ articles with at least one askable fact: its answer is verbatim in the text and its
    question is asked once in the article (so the article and the question fix the answer)."""
    def build(o: Org) -> list[FaqArticle]:
        out = []
        for r in o.query("SELECT Id, Title, FAQ_Answer__c, PolicyRule__c FROM Knowledge__kav "
                         "WHERE ArticleType__c = 'FAQ' ORDER BY Id"):
            facts = json.loads(r["PolicyRule__c"] or "{}").get("facts", [])
            questions = [f["question"] for f in facts]
            ok = tuple((f["question"], f["answer"]) for f in facts
                       if questions.count(f["question"]) == 1 and f["answer"] in (r["FAQ_Answer__c"] or ""))
            if ok:
                out.append(FaqArticle(r["Id"], r["Title"], r["FAQ_Answer__c"], ok))
        return out
    return org.cached("faq_articles", build)


def _words(text: str) -> set[str]:
    return set(text.lower().rstrip("?").split())


def faq_question_index(org: Org) -> dict[str, list[str]]:
    """Question -> the FAQ articles whose ``PolicyRule__c`` facts ask it (every fact, not only the
    askable ones), by Id."""
    def build(o: Org) -> dict[str, list[str]]:
        out: dict[str, list[str]] = defaultdict(list)
        for r in o.query("SELECT Id, PolicyRule__c FROM Knowledge__kav WHERE ArticleType__c = 'FAQ' ORDER BY Id"):
            for f in json.loads(r["PolicyRule__c"] or "{}").get("facts", []):
                if r["Id"] not in out[f["question"]]:
                    out[f["question"]].append(r["Id"])
        return dict(out)
    return org.cached("faq_question_index", build)


ARTICLE_ID_KIND = {"kind": "id", "prefix": "ka0", "allow_none": True}


@register
class KnowledgeQA(Task):
    """Half the instances ask for a fact (text answer), half for the Id of the article that answers
    a customer's question (a Knowledge article Id, or None): see the module docstring."""

    name = "knowledge_qa"
    answer = AnswerKind("text")
    levels = {
        "easy": "Fact form: only the article that states the fact, named by title. Article form: the "
                "article among 4 random other FAQ articles (5 random ones when the answer is None).",
        "medium": "Fact form: the article among up to 3 other FAQ articles, named by title. Article "
                  "form: among 6 others, the 2 asking the most similar questions included.",
        "hard": "Fact form: the article among up to 10 others, those asking the most similar questions "
                "(look-alike products, same fact) first, named only by its Id. Article form: among up "
                "to 10 others, the most similar first (a look-alike product's article when the answer "
                "is None).",
    }
    _n_distractors = {"easy": 0, "medium": 3, "hard": 10}
    # Article form: how many other articles are shown, and how many of them are the most similar.
    _n_others = {"easy": (4, 0), "medium": (6, 2), "hard": (10, 10)}
    P_ARTICLE_FORM = 0.5

    def generate(self, org: Org, difficulty: str, rng: random.Random) -> Instance:
        arts = faq_articles(org)
        art = pick(rng, arts, "FAQ article with a verbatim fact", org)
        question = rng.choice(art.facts)[0]
        if rng.random() < self.P_ARTICLE_FORM:
            return self._article_form(org, difficulty, rng, arts, art, question)
        others = [a for a in arts if a.id != art.id]
        if difficulty == "hard":    # articles asking the most similar questions come first
            pool = _by_similarity(rng, others, question)
        else:
            pool = shuffled(rng, others)
        distractors = fill_distractors(pool, lambda a: len(a.title) + len(a.text) + 30,
                                       char_budget(org, difficulty) - len(art.text),
                                       org.rendering.count("knowledge_qa.distractors", difficulty,
                                                           self._n_distractors[difficulty]))
        shown = shuffled(rng, [art, *distractors])
        table = render_table("Knowledge__kav", ["Id", "Title", "FAQ_Answer__c"],
                             [{"Id": a.id, "Title": a.title, "FAQ_Answer__c": a.text} for a in shown])
        ref = f"knowledge article {art.id}" if difficulty == "hard" else f'the knowledge article "{art.title}"'
        # Gold: the article's own fact list, read back from the database.
        rule = json.loads(org.scalar("SELECT PolicyRule__c FROM Knowledge__kav WHERE Id = ?", (art.id,)))
        gold = next(f["answer"] for f in rule["facts"] if f["question"] == question)
        messages = build_messages(
            f"According to {ref}: {question}", [table],
            "the exact fact as the article states it (a number, word or short phrase).", terse=org.rendering.terse)
        meta = {"form": "fact", "article_id": art.id, "article_title": art.title, "question": question,
                "distractor_ids": [a.id for a in distractors], "n_articles": len(shown),
                "referenced_by": "Id" if difficulty == "hard" else "Title"}
        return Instance(self.name, difficulty, messages, [gold], meta)

    def _article_form(self, org: Org, difficulty: str, rng: random.Random, arts: list[FaqArticle],
                      art: FaqArticle, question: str) -> Instance:
        """Which shown article answers the customer's question? Its Id, or None when left out."""
        want_none = rng.random() < NONE_DRAW_RATE
        answering = set(faq_question_index(org).get(question, [art.id]))
        others = [a for a in arts if a.id not in answering]
        n_others, n_similar = self._n_others[difficulty]
        n_others = org.rendering.count("knowledge_qa.article_others", difficulty, n_others)
        n_similar = org.rendering.count("knowledge_qa.article_similar", difficulty, n_similar)
        similar = _by_similarity(rng, others, question)[:n_similar]
        rest = shuffled(rng, [a for a in others if a not in similar])
        # A None instance shows one more other article in the answering article's place.
        k = n_others + int(want_none)
        distractors = fill_distractors(similar + rest, lambda a: len(a.title) + len(a.text) + 30,
                                       char_budget(org, difficulty) - (0 if want_none else len(art.text) + 30), k)
        shown = shuffled(rng, distractors if want_none else [art, *distractors])
        table = render_table("Knowledge__kav", ["Id", "Title", "FAQ_Answer__c"],
                             [{"Id": a.id, "Title": a.title, "FAQ_Answer__c": a.text} for a in shown])
        gold = self.article_gold(org, [a.id for a in shown], question)
        messages = build_messages(
            f'A customer asks: "{question}" Which of the knowledge articles above answers this question?',
            [table], "the Knowledge article Id (starts with ka0) of the article that answers it, or None if "
            "none of the articles shown does.", terse=org.rendering.terse)
        meta = {"form": "article", "answer_kind": dict(ARTICLE_ID_KIND), "article_id": art.id,
                "article_title": art.title, "question": question,
                "distractor_ids": [a.id for a in distractors], "shown_ids": [a.id for a in shown],
                "n_articles": len(shown), "article_shown": not want_none,
                "none_reason": "the answering article is not shown" if want_none else None}
        return Instance(self.name, difficulty, messages, [gold], meta)

    @staticmethod
    def article_gold(org: Org, shown_ids: list[str], question: str) -> str:
        """The shown FAQ article whose facts ask ``question`` (by SQL over PolicyRule__c); None when
        no shown article does."""
        rows = org.query(
            "SELECT DISTINCT k.Id FROM Knowledge__kav k, json_each(k.PolicyRule__c, '$.facts') f "
            f"WHERE k.ArticleType__c = 'FAQ' AND k.Id IN ({','.join('?' * len(shown_ids))}) "
            "AND json_extract(f.value, '$.question') = ?", (*shown_ids, question))
        if len(rows) > 1:
            raise AssertionError(f"several shown articles answer {question!r}: {[r[0] for r in rows]}")
        return rows[0][0] if rows else NONE_ANSWER


def _by_similarity(rng: random.Random, articles: list[FaqArticle], question: str) -> list[FaqArticle]:
    """Articles asking the most similar questions (most shared words) first; ties in random order."""
    words = _words(question)
    return sorted(shuffled(rng, articles), key=lambda a: -max(len(words & _words(q)) for q, _ in a.facts))

