"""The org's tables: Salesforce object names and field names, as SQLite DDL.

Every table has an ``Id`` primary key holding an 18-character Salesforce-style id whose first three
characters are the object's real key prefix (``ID_PREFIXES``). Dates are ISO strings:
``YYYY-MM-DD`` for date fields, ``YYYY-MM-DDTHH:MM:SS`` for datetime fields (they sort as text).

``Case`` and ``Order`` are SQL keywords: always quote identifiers (``qi("Case")``).

Custom fields beyond the spec's key fields are marked ``__c`` as Salesforce does; the few that
carry machine-readable structure (``Knowledge__kav.PolicyRule__c``, a JSON rule) are what the gold
answers of the POLICY and CRUD tasks are computed from, while the model only ever sees the article
text.
"""

from __future__ import annotations

import sqlite3

# Opportunity.StageName's picklist, in pipeline order.
STAGES: tuple[str, ...] = ("Qualification", "Discovery", "Quote", "Negotiation", "Closed")

# Object -> 3-character key prefix (real Salesforce prefixes where the object is standard).
ID_PREFIXES: dict[str, str] = {
    "User": "005",
    "Account": "001",
    "Contact": "003",
    "Product2": "01t",
    "ProductCategory": "0ZG",
    "Pricebook2": "01s",
    "PricebookEntry": "01u",
    "Order": "801",
    "OrderItem": "802",
    "Case": "500",
    "CaseHistory__c": "a0B",
    "Issue__c": "a03",
    "Knowledge__kav": "ka0",
    "EmailMessage": "02s",
    "LiveChatTranscript": "570",
    "Opportunity": "006",
    "OpportunityLineItem": "00k",
    "Quote": "0Q0",
    "QuoteLineItem": "0QL",
    "Contract": "800",
    "Lead": "00Q",
    "Task": "00T",
    "VoiceCallTranscript__c": "a0D",
    "Territory2": "0MI",
    "UserTerritory2Association": "0R0",
}

# Object -> ordered (field, SQLite type) pairs. The first field is always Id.
TABLES: dict[str, list[tuple[str, str]]] = {
    "User": [
        ("Id", "TEXT"), ("FirstName", "TEXT"), ("LastName", "TEXT"), ("Name", "TEXT"),
        ("Email", "TEXT"), ("Alias", "TEXT"),
        ("UserRole", "TEXT"),            # 'Support Agent' | 'Sales Rep'
        ("IsActive", "INTEGER"), ("CreatedDate", "TEXT"),
    ],
    "Territory2": [
        ("Id", "TEXT"), ("Name", "TEXT"), ("DeveloperName", "TEXT"),
        ("Description", "TEXT"),         # comma-separated US state codes, e.g. 'CA,OR,WA'
    ],
    "UserTerritory2Association": [
        ("Id", "TEXT"), ("UserId", "TEXT"), ("Territory2Id", "TEXT"), ("RoleInTerritory2", "TEXT"),
    ],
    "Account": [
        ("Id", "TEXT"), ("Name", "TEXT"), ("Industry", "TEXT"), ("ShippingState", "TEXT"),
        ("ShippingCity", "TEXT"), ("NumberOfEmployees", "INTEGER"), ("AnnualRevenue", "REAL"),
        ("OwnerId", "TEXT"), ("CreatedDate", "TEXT"),
    ],
    "Contact": [
        ("Id", "TEXT"), ("FirstName", "TEXT"), ("LastName", "TEXT"), ("Email", "TEXT"),
        ("Title", "TEXT"), ("AccountId", "TEXT"), ("CreatedDate", "TEXT"),
    ],
    "ProductCategory": [("Id", "TEXT"), ("Name", "TEXT")],
    "Product2": [
        ("Id", "TEXT"), ("Name", "TEXT"), ("ProductCode", "TEXT"), ("Description", "TEXT"),
        ("Family", "TEXT"), ("ProductCategoryId__c", "TEXT"), ("IsActive", "INTEGER"),
    ],
    "Pricebook2": [("Id", "TEXT"), ("Name", "TEXT"), ("IsActive", "INTEGER"), ("IsStandard", "INTEGER")],
    "PricebookEntry": [
        ("Id", "TEXT"), ("Pricebook2Id", "TEXT"), ("Product2Id", "TEXT"), ("UnitPrice", "REAL"),
        ("IsActive", "INTEGER"),
    ],
    "Order": [
        ("Id", "TEXT"), ("AccountId", "TEXT"), ("OwnerId", "TEXT"), ("Pricebook2Id", "TEXT"),
        ("Status", "TEXT"), ("EffectiveDate", "TEXT"),
    ],
    "OrderItem": [
        ("Id", "TEXT"), ("OrderId", "TEXT"), ("Product2Id", "TEXT"), ("PricebookEntryId", "TEXT"),
        ("Quantity", "REAL"), ("UnitPrice", "REAL"),
    ],
    "Issue__c": [("Id", "TEXT"), ("Name", "TEXT"), ("Description__c", "TEXT")],
    "Case": [
        ("Id", "TEXT"), ("OwnerId", "TEXT"), ("AccountId", "TEXT"), ("ContactId", "TEXT"),
        ("IssueId__c", "TEXT"), ("OrderItemId__c", "TEXT"),
        ("Status", "TEXT"),              # 'New' | 'Working' | 'Escalated' | 'Closed'
        ("Priority", "TEXT"),            # 'Low' | 'Medium' | 'High'
        ("Origin", "TEXT"),              # 'Email' | 'Phone' | 'Web' | 'Chat'
        ("Subject", "TEXT"), ("Description", "TEXT"), ("CreatedDate", "TEXT"), ("ClosedDate", "TEXT"),
        ("OfferedSolution__c", "TEXT"),  # the solution the agent offered (stated in the chat / emails)
    ],
    "CaseHistory__c": [
        ("Id", "TEXT"), ("CaseId__c", "TEXT"),
        ("Field__c", "TEXT"),            # 'Case Creation' | 'Owner Assignment' | 'Case Closed'
        ("OldValue__c", "TEXT"), ("NewValue__c", "TEXT"), ("CreatedDate", "TEXT"),
    ],
    "Knowledge__kav": [
        ("Id", "TEXT"), ("Title", "TEXT"), ("Summary", "TEXT"), ("FAQ_Answer__c", "TEXT"),
        ("UrlName", "TEXT"),
        ("ArticleType__c", "TEXT"),      # 'FAQ' | 'Policy'
        ("PolicyRule__c", "TEXT"),       # JSON: the rule of a Policy article; {"type": "faq", "facts": [...]} for FAQ
    ],
    "EmailMessage": [
        ("Id", "TEXT"), ("ParentId", "TEXT"), ("Subject", "TEXT"), ("TextBody", "TEXT"),
        ("FromAddress", "TEXT"), ("ToAddress", "TEXT"), ("MessageDate", "TEXT"),
    ],
    "LiveChatTranscript": [
        ("Id", "TEXT"), ("CaseId", "TEXT"), ("AccountId", "TEXT"), ("ContactId", "TEXT"),
        ("OwnerId", "TEXT"), ("Body", "TEXT"), ("EndTime", "TEXT"),
    ],
    "Opportunity": [
        ("Id", "TEXT"), ("Name", "TEXT"), ("AccountId", "TEXT"), ("OwnerId", "TEXT"),
        ("StageName", "TEXT"),           # Qualification | Discovery | Quote | Negotiation | Closed
        ("Amount", "REAL"), ("Probability", "REAL"), ("CloseDate", "TEXT"),
        ("ContractID__c", "TEXT"), ("CreatedDate", "TEXT"),
    ],
    "OpportunityLineItem": [
        ("Id", "TEXT"), ("OpportunityId", "TEXT"), ("Product2Id", "TEXT"), ("PricebookEntryId", "TEXT"),
        ("Quantity", "REAL"), ("UnitPrice", "REAL"), ("TotalPrice", "REAL"),
    ],
    "Quote": [
        ("Id", "TEXT"), ("Name", "TEXT"), ("OpportunityId", "TEXT"), ("AccountId", "TEXT"),
        ("Status", "TEXT"),              # 'Draft' | 'Needs Review' | 'Approved' | 'Rejected'
        ("Description", "TEXT"), ("CreatedDate", "TEXT"), ("ExpirationDate", "TEXT"),
    ],
    "QuoteLineItem": [
        ("Id", "TEXT"), ("QuoteId", "TEXT"), ("Product2Id", "TEXT"), ("PricebookEntryId", "TEXT"),
        ("Quantity", "REAL"), ("UnitPrice", "REAL"),
        ("Discount", "REAL"),            # percent, 0-100
        ("TotalPrice", "REAL"),          # Quantity * UnitPrice * (1 - Discount / 100)
    ],
    "Contract": [
        ("Id", "TEXT"), ("AccountId", "TEXT"), ("Status", "TEXT"), ("StartDate", "TEXT"),
        ("ContractTerm", "INTEGER"), ("CompanySignedDate", "TEXT"), ("CustomerSignedDate", "TEXT"),
        ("CreatedDate", "TEXT"),
    ],
    "Lead": [
        ("Id", "TEXT"), ("FirstName", "TEXT"), ("LastName", "TEXT"), ("Company", "TEXT"),
        ("Title", "TEXT"), ("Email", "TEXT"), ("State", "TEXT"), ("Industry", "TEXT"),
        ("LeadSource", "TEXT"), ("Status", "TEXT"), ("OwnerId", "TEXT"),
        ("IsConverted", "INTEGER"), ("ConvertedDate", "TEXT"), ("CreatedDate", "TEXT"),
        # BANT facts the lead's call transcripts state (the lead_qualification gold is computed from them)
        ("Budget__c", "REAL"), ("TimelineDays__c", "INTEGER"), ("NeedFamily__c", "TEXT"),
    ],
    "Task": [
        ("Id", "TEXT"), ("WhatId", "TEXT"), ("OwnerId", "TEXT"), ("Subject", "TEXT"),
        ("Status", "TEXT"),              # 'Not Started' | 'In Progress' | 'Completed'
        ("Priority", "TEXT"), ("ActivityDate", "TEXT"), ("Description", "TEXT"),
    ],
    "VoiceCallTranscript__c": [
        ("Id", "TEXT"), ("LeadId__c", "TEXT"), ("OpportunityId__c", "TEXT"), ("OwnerId__c", "TEXT"),
        ("TranscriptBody__c", "TEXT"), ("CreatedDate", "TEXT"),
        ("Competitors__c", "TEXT"),      # comma-separated competitor names the call mentions
        ("Topics__c", "TEXT"),           # comma-separated subtopics the call raises
    ],
}

# Extra table (not a Salesforce object): key/value facts about the org itself
# (seed, size preset, today's date, generator version).
META_TABLE = "OrgInfo"

# Columns an agent's queries cannot read (they read as NULL and the schema it is shown leaves them
# out): the machine-readable rules and the facts gold answers are computed from, which a model is meant
# to reach through the text of articles, transcripts, emails and chats, as in single-turn prompts; and
# the columns that store a gold answer under another name: the generator sets an opportunity's
# Probability from its true stage (not its StageName) and its CloseDate from the cycle that fixes that
# stage, so both give wrong_stage_rectification's answer without its Tasks. docs/failure-modes.md (SQL)
# holds the audit, per task; tests/test_agent_org.py pins it.
AGENT_HIDDEN_COLUMNS: dict[str, tuple[str, ...]] = {
    "Knowledge__kav": ("PolicyRule__c",),
    "Lead": ("Budget__c", "TimelineDays__c", "NeedFamily__c"),
    "Case": ("OfferedSolution__c",),
    "VoiceCallTranscript__c": ("Competitors__c", "Topics__c"),
    "Opportunity": ("Probability", "CloseDate"),
}

# (table, column) pairs worth an index: the task queries join and filter on these.
INDEXES: list[tuple[str, str]] = [
    ("Case", "OwnerId"), ("Case", "IssueId__c"), ("Case", "OrderItemId__c"), ("Case", "AccountId"),
    ("Case", "CreatedDate"), ("CaseHistory__c", "CaseId__c"), ("OrderItem", "OrderId"),
    ("OrderItem", "Product2Id"), ("Opportunity", "OwnerId"), ("OpportunityLineItem", "OpportunityId"),
    ("QuoteLineItem", "QuoteId"), ("Quote", "OpportunityId"), ("Task", "WhatId"), ("Lead", "OwnerId"),
    ("Contact", "AccountId"), ("VoiceCallTranscript__c", "LeadId__c"),
    ("VoiceCallTranscript__c", "OpportunityId__c"), ("UserTerritory2Association", "UserId"),
]


def qi(name: str) -> str:
    """Quote an SQL identifier (``Case`` and ``Order`` are keywords)."""
    return '"' + name.replace('"', '""') + '"'


def create_schema(conn: sqlite3.Connection) -> None:
    """Create every table (and the ``OrgInfo`` meta table) in an empty database."""
    for table, fields in TABLES.items():
        cols = ", ".join(
            f"{qi(f)} {t}{' PRIMARY KEY' if f == 'Id' else ''}" for f, t in fields
        )
        conn.execute(f"CREATE TABLE {qi(table)} ({cols}) WITHOUT ROWID")
    conn.execute(f"CREATE TABLE {qi(META_TABLE)} (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID")


def create_indexes(conn: sqlite3.Connection) -> None:
    """Indexes are created after the bulk insert (faster, and the file stays deterministic)."""
    for table, col in INDEXES:
        conn.execute(f"CREATE INDEX {qi('ix_' + table + '_' + col)} ON {qi(table)} ({qi(col)})")


def object_of_id(record_id: str) -> str | None:
    """The object whose key prefix starts ``record_id``, or None."""
    prefix = record_id[:3]
    for obj, p in ID_PREFIXES.items():
        if p == prefix:
            return obj
    return None
