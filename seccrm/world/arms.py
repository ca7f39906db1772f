"""Skills, difficulty levels, curriculum arms and the task table.

An *arm* is a (skill, difficulty) pair named ``"SKILL/difficulty"``, e.g. ``"POLICY/hard"``.
"""

from __future__ import annotations

SKILLS: tuple[str, ...] = ("CRUD", "ANALYTICS", "KNOWLEDGE", "POLICY")
# Skills outside the report's 12 arms, used only when asked for (imported CRMArena-Pro suites).
OPTIONAL_SKILLS: tuple[str, ...] = ("CONFIDENTIALITY",)
DIFFICULTIES: tuple[str, ...] = ("easy", "medium", "hard")

# task name -> skill, in the order of the spec's table.
TASK_SKILLS: dict[str, str] = {
    "handle_time": "ANALYTICS",
    "transfer_count": "ANALYTICS",
    "top_issue_identification": "ANALYTICS",
    "monthly_trend_analysis": "ANALYTICS",
    "best_region_identification": "ANALYTICS",
    "sales_amount_understanding": "ANALYTICS",
    "sales_cycle_understanding": "ANALYTICS",
    "conversion_rate_comprehension": "ANALYTICS",
    "knowledge_qa": "KNOWLEDGE",
    "named_entity_disambiguation": "KNOWLEDGE",
    "sales_insight_mining": "KNOWLEDGE",
    "activity_priority": "KNOWLEDGE",
    "case_routing": "CRUD",
    "lead_routing": "CRUD",
    "wrong_stage_rectification": "CRUD",
    "lead_qualification": "POLICY",
    "quote_approval": "POLICY",
    "invalid_config": "POLICY",
    "policy_violation_identification": "POLICY",
}

# Tasks of the optional skills: built only when asked for (``seccrm build --confidentiality``); they
# train and validate like the 16 training tasks. CRMArena-Pro's three confidentiality categories.
OPTIONAL_TASK_SKILLS: dict[str, str] = {
    "private_customer_information": "CONFIDENTIALITY",
    "internal_operation_data": "CONFIDENTIALITY",
    "confidential_company_knowledge": "CONFIDENTIALITY",
}
ALL_TASK_SKILLS: dict[str, str] = {**TASK_SKILLS, **OPTIONAL_TASK_SKILLS}

# The three POLICY tasks held out for testing; never drawn during training.
HELD_OUT_TASKS: tuple[str, ...] = ("quote_approval", "invalid_config", "policy_violation_identification")
TRAIN_TASKS: tuple[str, ...] = tuple(t for t in TASK_SKILLS if t not in HELD_OUT_TASKS)


def train_tasks(optional_skills: tuple[str, ...] | list[str] = ()) -> tuple[str, ...]:
    """The training tasks, plus those of the optional skills asked for (e.g. ``("CONFIDENTIALITY",)``)."""
    bad = [s for s in optional_skills if s not in OPTIONAL_SKILLS]
    if bad:
        raise ValueError(f"unknown optional skill(s) {', '.join(bad)}; known: {', '.join(OPTIONAL_SKILLS)}")
    return TRAIN_TASKS + tuple(t for t, s in OPTIONAL_TASK_SKILLS.items() if s in optional_skills)

# Display names used in reports (the report's table names for the held-out tasks).
TASK_TITLES: dict[str, str] = {
    "quote_approval": "Quote Approval",
    "invalid_config": "Invalid Configuration",
    "policy_violation_identification": "Solution Violation",
}


def arm_name(skill: str, difficulty: str) -> str:
    """``("POLICY", "hard") -> "POLICY/hard"``."""
    if skill not in SKILLS + OPTIONAL_SKILLS:
        raise ValueError(f"unknown skill {skill!r}; known: {', '.join(SKILLS + OPTIONAL_SKILLS)}")
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"unknown difficulty {difficulty!r}; known: {', '.join(DIFFICULTIES)}")
    return f"{skill}/{difficulty}"


def parse_arm(arm: str) -> tuple[str, str]:
    """``"POLICY/hard" -> ("POLICY", "hard")``; raises ValueError on a malformed name."""
    skill, sep, difficulty = arm.partition("/")
    if not sep:
        raise ValueError(f"arm {arm!r} is not of the form SKILL/difficulty")
    arm_name(skill, difficulty)
    return skill, difficulty


ALL_ARMS: tuple[str, ...] = tuple(arm_name(s, d) for s in SKILLS for d in DIFFICULTIES)
