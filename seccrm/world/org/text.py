"""Names, catalogues and text templates the org generator draws from.

Everything here is plain data plus a few small functions that render a record's text from
templates with variation. Facts a task needs (an offered solution, a budget, a competitor, a
warranty length) are always inserted verbatim, so they can be found in the text exactly as the
structured field holds them.
"""

from __future__ import annotations

import random

FIRST_NAMES = (
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
    "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Carlos", "Karen",
    "Daniel", "Lisa", "Matthew", "Nancy", "Anthony", "Sandra", "Mark", "Ashley", "Priya", "Emily",
    "Steven", "Donna", "Andrew", "Michelle", "Kenji", "Carol", "Joshua", "Amanda", "Wei", "Melissa",
    "Kevin", "Deborah", "Brian", "Stephanie", "Omar", "Rebecca", "Ronald", "Laura", "Timothy", "Aisha",
    "Jason", "Sharon", "Jeffrey", "Cynthia", "Ryan", "Kathleen", "Jacob", "Amy", "Luis", "Angela",
)
LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
    "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson",
    "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores",
    "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts",
    "Patel", "Kim", "Chen", "Singh", "Okafor", "Murphy", "Cook", "Rogers", "Morgan", "Bell",
)

COMPANY_WORDS = (
    "Acme", "Apex", "Blue Ridge", "Cedar", "Cobalt", "Crescent", "Delta", "Evergreen", "Falcon", "Frontier",
    "Granite", "Harbor", "Horizon", "Ironwood", "Juniper", "Keystone", "Lakeside", "Liberty", "Maple",
    "Meridian", "Northstar", "Oakridge", "Pacific", "Pinnacle", "Prairie", "Quantum", "Redwood", "Riverside",
    "Sierra", "Silverline", "Summit", "Sunrise", "Tidewater", "Trident", "Union", "Valley", "Vanguard",
    "Westfield", "Willow", "Zenith", "Bright Path", "Clearwater", "Copperleaf", "Eastgate", "Foxglove",
    "Golden Gate", "Highland", "Ironbridge", "Lighthouse", "Mosaic", "Northgate", "Old Mill", "Pioneer",
    "Red Rock", "Stonebridge", "Three Rivers", "True North", "Twin Peaks", "Wildflower", "Yellowstone",
)
COMPANY_SUFFIXES = (
    "Systems", "Logistics", "Health", "Partners", "Manufacturing", "Labs", "Group", "Foods", "Energy",
    "Financial", "Retail", "Media", "Construction", "Consulting", "Pharma", "Motors", "Education",
    "Hospitality", "Analytics", "Supply",
)
INDUSTRIES = (
    "Technology", "Healthcare", "Manufacturing", "Retail", "Financial Services", "Education",
    "Hospitality", "Energy", "Logistics", "Media",
)

# Territories partition the states the org uses; a preset uses the first n of them.
TERRITORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("West", ("CA", "OR", "WA", "NV")),
    ("Central", ("TX", "CO", "IL", "MN")),
    ("Southeast", ("FL", "GA", "NC", "TN")),
    ("Northeast", ("NY", "MA", "PA", "NJ")),
    ("Mountain", ("AZ", "UT", "ID", "NM")),
    ("Midwest", ("OH", "MI", "WI", "MO")),
)
CITIES: dict[str, tuple[str, ...]] = {
    "CA": ("San Jose", "Sacramento", "San Diego"), "OR": ("Portland", "Eugene"), "WA": ("Seattle", "Spokane"),
    "NV": ("Reno", "Las Vegas"), "TX": ("Austin", "Dallas", "Houston"), "CO": ("Denver", "Boulder"),
    "IL": ("Chicago", "Springfield"), "MN": ("Minneapolis", "Duluth"), "FL": ("Miami", "Tampa", "Orlando"),
    "GA": ("Atlanta", "Savannah"), "NC": ("Raleigh", "Charlotte"), "TN": ("Nashville", "Memphis"),
    "NY": ("Albany", "Buffalo", "New York"), "MA": ("Boston", "Worcester"), "PA": ("Pittsburgh", "Philadelphia"),
    "NJ": ("Newark", "Trenton"), "AZ": ("Phoenix", "Tucson"), "UT": ("Salt Lake City", "Provo"),
    "ID": ("Boise", "Nampa"), "NM": ("Albuquerque", "Santa Fe"), "OH": ("Columbus", "Cleveland"),
    "MI": ("Detroit", "Lansing"), "WI": ("Milwaukee", "Madison"), "MO": ("St. Louis", "Kansas City"),
}

# ---------------------------------------------------------------------------------------------
# Products: (base name, Family, category, list price). Variants ("Pro", "Mini", ...) of a base make
# the near-duplicate names named_entity_disambiguation needs.
# ---------------------------------------------------------------------------------------------
FAMILIES = ("Hardware", "Software", "Networking", "Accessories", "Services")
CATEGORIES = ("Computing", "Business Software", "Infrastructure", "Workspace", "Professional Services")
BASE_PRODUCTS: tuple[tuple[str, str, str, float], ...] = (
    ("Titan Workstation", "Hardware", "Computing", 1899.0),
    ("Nimbus Cloud Backup", "Software", "Business Software", 299.0),
    ("Vertex Router", "Networking", "Infrastructure", 799.0),
    ("Aurora Desk Lamp", "Accessories", "Workspace", 89.0),
    ("Swift Onsite Installation", "Services", "Professional Services", 750.0),
    ("Nova Laptop", "Hardware", "Computing", 1299.0),
    ("Sentinel Endpoint Security", "Software", "Business Software", 89.0),
    ("Relay Switch", "Networking", "Infrastructure", 1199.0),
    ("Echo Headset", "Accessories", "Workspace", 129.0),
    ("Premier Support Plan", "Services", "Professional Services", 1500.0),
    ("Orion Display", "Hardware", "Computing", 449.0),
    ("Ledger Accounting Suite", "Software", "Business Software", 1200.0),
    ("Skyline Access Point", "Networking", "Infrastructure", 349.0),
    ("Glide Wireless Mouse", "Accessories", "Workspace", 49.0),
    ("Compass Training Package", "Services", "Professional Services", 990.0),
    ("Atlas Server", "Hardware", "Computing", 5499.0),
    ("Beacon CRM Connector", "Software", "Business Software", 499.0),
    ("Bastion Firewall", "Networking", "Infrastructure", 2499.0),
    ("Keystone Keyboard", "Accessories", "Workspace", 79.0),
    ("Guardian Extended Warranty", "Services", "Professional Services", 199.0),
    ("Pulse Tablet", "Hardware", "Computing", 699.0),
    ("Quill Office Suite", "Software", "Business Software", 150.0),
    ("Meridian Mesh Kit", "Networking", "Infrastructure", 599.0),
    ("Anchor Docking Station", "Accessories", "Workspace", 229.0),
    ("Migration Assist Service", "Services", "Professional Services", 2500.0),
    ("Vega Printer", "Hardware", "Computing", 899.0),
    ("Harbor Document Manager", "Software", "Business Software", 350.0),
    ("Conduit Cable Kit", "Networking", "Infrastructure", 59.0),
    ("Halo Webcam", "Accessories", "Workspace", 99.0),
    ("Zephyr Scanner", "Hardware", "Computing", 399.0),
)
VARIANTS: tuple[tuple[str, float], ...] = (("Pro", 1.4), ("Mini", 0.7), ("Plus", 1.2), ("Max", 1.8), ("Lite", 0.6))

# Facts stated in each product's FAQ article: family -> (question template, answer choices, sentence).
# The sentence contains the answer verbatim; {p} is the product name.
PRODUCT_FACTS: dict[str, tuple[tuple[str, tuple[str, ...], str], ...]] = {
    "Hardware": (
        ("How long is the warranty on the {p}?", ("1 year", "2 years", "3 years", "5 years"),
         "The {p} comes with a limited warranty of {a} from the date of delivery."),
        ("What is the maximum power draw of the {p}?", ("45 W", "65 W", "90 W", "120 W", "180 W", "240 W"),
         "Under full load the {p} draws at most {a}."),
        ("How much does the {p} weigh?", ("1.2 kg", "1.6 kg", "2.3 kg", "4.8 kg", "7.5 kg", "11 kg"),
         "The {p} weighs {a} without packaging."),
    ),
    "Software": (
        ("How many users does one {p} license cover?", ("5 users", "10 users", "25 users", "50 users", "250 users"),
         "A single {p} license covers up to {a}."),
        ("Which operating systems does the {p} support?",
         ("Windows and macOS", "Windows, macOS and Linux", "Windows only", "macOS and iPadOS"),
         "The {p} runs on {a}."),
        ("How long is a {p} subscription term?", ("12 months", "24 months", "36 months"),
         "Each {p} subscription runs for {a} and renews automatically."),
    ),
    "Networking": (
        ("What is the maximum throughput of the {p}?", ("1 Gbps", "2.5 Gbps", "5 Gbps", "10 Gbps", "40 Gbps"),
         "The {p} sustains a maximum throughput of {a}."),
        ("How many ports does the {p} have?", ("4 ports", "8 ports", "16 ports", "24 ports", "48 ports"),
         "The {p} provides {a} for wired devices."),
        ("How long is the warranty on the {p}?", ("1 year", "3 years", "5 years", "lifetime"),
         "Every {p} is covered by a {a} hardware warranty."),
    ),
    "Accessories": (
        ("How long is the warranty on the {p}?", ("6 months", "1 year", "2 years"),
         "The {p} carries a warranty of {a}."),
        ("What colors is the {p} available in?", ("black and white", "graphite only", "black, silver and blue"),
         "The {p} is sold in {a}."),
        ("How long does the {p} battery last?", ("8 hours", "12 hours", "20 hours", "40 hours", "70 hours"),
         "On a full charge the {p} runs for about {a}."),
    ),
    "Services": (
        ("What is the response time for the {p}?", ("2 hours", "4 hours", "8 hours", "1 business day"),
         "Requests under the {p} receive a response within {a}."),
        ("What hours does the {p} cover?", ("business hours", "24/7", "weekdays 7 AM to 7 PM"),
         "The {p} covers {a}."),
        ("How long is the {p} engagement?", ("2 weeks", "30 days", "90 days", "12 months"),
         "A standard {p} engagement lasts {a}."),
    ),
}

# General FAQ articles: (title, url, [(question, answer choices, sentence)]).
GENERAL_FAQS: tuple[tuple[str, str, tuple[tuple[str, tuple[str, ...], str], ...]], ...] = (
    ("Returns and refunds", "returns-and-refunds", (
        ("How many days does a customer have to return a product?", ("14 days", "30 days", "45 days", "60 days"),
         "Products can be returned within {a} of delivery."),
        ("What restocking fee applies to opened products?", ("10%", "15%", "20%"),
         "Opened products are subject to a restocking fee of {a}."),
    )),
    ("Support hours and contact", "support-hours-and-contact", (
        ("What are the phone support hours?", ("8 AM to 6 PM Eastern", "7 AM to 7 PM Central", "9 AM to 5 PM Pacific"),
         "Phone support is available from {a} on weekdays."),
        ("What is the support phone number?", ("1-800-555-0142", "1-800-555-0199", "1-888-555-0117"),
         "Call us at {a} for any support question."),
    )),
    ("Shipping and delivery", "shipping-and-delivery", (
        ("How long does standard shipping take?", ("3 to 5 business days", "5 to 7 business days", "2 to 4 business days"),
         "Standard shipping takes {a} within the continental US."),
        ("Above what order value is shipping free?", ("$500", "$750", "$1,000"),
         "Orders above {a} ship free of charge."),
    )),
    ("Payment terms", "payment-terms", (
        ("What are the standard payment terms for invoices?", ("Net 30", "Net 45", "Net 60"),
         "Invoices are due on {a} terms unless a contract says otherwise."),
        ("What late fee applies to overdue invoices?", ("1% per month", "1.5% per month", "2% per month"),
         "Overdue invoices accrue a late fee of {a}."),
    )),
)

# ---------------------------------------------------------------------------------------------
# Issues: (name, families it applies to, description, allowed solutions, customer symptom sentences).
# ---------------------------------------------------------------------------------------------
ISSUES: tuple[tuple[str, tuple[str, ...], str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("Device fails to power on", ("Hardware", "Accessories", "Networking"),
     "The unit shows no sign of power even when connected to a working outlet.",
     ("Replacement unit", "Power supply replacement", "Remote troubleshooting session"),
     ("it will not turn on at all", "there are no lights and no response when I press the power button",
      "it died overnight and will not power back on")),
    ("Battery drains quickly", ("Hardware", "Accessories"),
     "The battery lasts far less than its rated life.",
     ("Battery replacement", "Firmware update", "Replacement unit"),
     ("the battery is empty after a couple of hours", "the charge drops fast even when idle",
      "it barely lasts half a day on a full charge")),
    ("Intermittent connectivity drops", ("Networking", "Hardware", "Accessories"),
     "The connection drops at irregular intervals and reconnects on its own.",
     ("Firmware update", "Configuration reset", "Remote troubleshooting session"),
     ("the connection keeps dropping every few minutes", "we lose connectivity several times a day",
      "it disconnects randomly and then comes back")),
    ("Software license activation failure", ("Software", "Services"),
     "A purchased license key is rejected during activation.",
     ("License reissue", "Remote troubleshooting session"),
     ("the license key is rejected as invalid", "activation fails with an error about the key",
      "we cannot activate the seats we paid for")),
    ("Data sync errors", ("Software", "Networking"),
     "Records fail to synchronise between devices or with the cloud service.",
     ("Software patch", "Configuration reset", "Remote troubleshooting session"),
     ("our data is not syncing between offices", "sync fails with a conflict error every night",
      "changes made on one machine never show up on the others")),
    ("Damaged on arrival", ("Hardware", "Networking", "Accessories"),
     "The product arrived physically damaged.",
     ("Replacement unit", "Return and exchange", "Expedited reshipment"),
     ("the box arrived crushed and the unit is cracked", "it arrived with a broken casing",
      "the item was damaged in shipping")),
    ("Billing discrepancy", FAMILIES,
     "The invoiced amount does not match the agreed price.",
     ("Invoice correction", "Account credit"),
     ("we were charged more than the quoted price", "the invoice lists items we never ordered",
      "we were billed twice for the same order")),
    ("Slow performance", ("Hardware", "Software", "Networking"),
     "The product runs markedly slower than specified.",
     ("Firmware update", "Software patch", "On-site technician visit"),
     ("everything has become painfully slow", "it takes minutes to do what used to take seconds",
      "performance dropped sharply after the first week")),
    ("Installation problems", ("Services", "Software", "Networking", "Hardware"),
     "The product cannot be installed or set up as documented.",
     ("On-site technician visit", "Remote troubleshooting session", "Installation guide walkthrough"),
     ("the installer fails halfway through", "we cannot get it set up following the guide",
      "setup stops with an error we do not understand")),
    ("Missing parts", ("Hardware", "Accessories", "Networking"),
     "The delivery is missing parts listed on the packing slip.",
     ("Expedited reshipment", "Return and exchange"),
     ("the package was missing the power adapter", "several parts on the packing list are not in the box",
      "the mounting kit was not included")),
    ("Overheating", ("Hardware", "Networking"),
     "The unit runs hot and shuts down under normal load.",
     ("Replacement unit", "Firmware update", "On-site technician visit"),
     ("it gets very hot and shuts itself down", "the casing is too hot to touch after an hour",
      "it overheats during normal use")),
    ("Service appointment missed", ("Services",),
     "A scheduled technician or consultant did not show up.",
     ("Account credit", "Priority rescheduling"),
     ("the technician never showed up for our appointment", "nobody arrived for the scheduled session",
      "our booked visit was missed without notice")),
    ("Login and access issues", ("Software", "Services"),
     "Users cannot sign in or are locked out.",
     ("Password reset", "License reissue", "Remote troubleshooting session"),
     ("our users are locked out of their accounts", "nobody can log in since this morning",
      "sign-in fails with an access denied message")),
    ("Audio or video quality problems", ("Accessories", "Hardware"),
     "Sound or picture is distorted, choppy or missing.",
     ("Firmware update", "Replacement unit", "Driver update"),
     ("the audio crackles during every call", "the picture is blurry and keeps freezing",
      "people cannot hear me clearly on calls")),
)
# Solutions agents sometimes offer although no issue's policy allows them for that issue.
TEMPTING_SOLUTIONS = ("Full refund", "Free upgrade to a higher model", "Discount on next order",
                      "Extended warranty at no cost")

# ---------------------------------------------------------------------------------------------
# Sales: titles, competitors, call topics, the stage-activity catalogue.
# ---------------------------------------------------------------------------------------------
AUTHORITY_TITLES = ("CEO", "CFO", "CTO", "COO", "VP of Operations", "VP of IT", "Director of Procurement")
OTHER_TITLES = ("IT Specialist", "Office Manager", "Procurement Analyst", "Operations Coordinator",
                "Systems Administrator", "Executive Assistant")
LEAD_SOURCES = ("Web", "Phone Inquiry", "Partner Referral", "Trade Show", "Webinar", "Purchased List")
COMPETITORS = ("Brightline Tech", "Corvid Systems", "Helix Digital", "Lumen Partners", "Stratus Works",
               "Ironclad IT", "Polaris Networks", "Cinder Software")
TOPICS = ("volume pricing", "integration with existing systems", "data security", "implementation timeline",
          "support response times", "staff training", "contract length", "hardware refresh cycle",
          "cloud migration", "payment terms")
STAGE_ACTIVITIES: dict[str, tuple[str, ...]] = {
    "Qualification": ("Initial discovery call", "Qualify budget and authority", "Research account background"),
    "Discovery": ("Needs assessment meeting", "Product demo", "Technical requirements review"),
    "Quote": ("Prepare quote", "Send pricing proposal", "Review quote with customer"),
    "Negotiation": ("Negotiate contract terms", "Legal review of contract", "Finalize discount approval"),
    "Closed": ("Send signed contract to onboarding", "Schedule kickoff meeting", "Record win/loss reason"),
}


# ---------------------------------------------------------------------------------------------
# Renderers
# ---------------------------------------------------------------------------------------------
_OPENERS = ("Hello,", "Hi team,", "Good morning,", "Hi there,", "Hello support,")
_CLOSERS = ("Please advise.", "Can you help?", "We need this fixed soon.", "Thanks in advance.",
            "This is blocking our team.")
_SUBJECTS = ("{p}: {i}", "{i} - {p}", "Problem with {p} ({i})", "{p} issue: {i}", "Urgent: {i} on {p}")


def case_subject(rng: random.Random, product: str, issue: str) -> str:
    return rng.choice(_SUBJECTS).format(p=product, i=issue.lower())


def case_description(rng: random.Random, product: str, symptom: str, order_date: str) -> str:
    """The customer's description; names the product and the order date verbatim."""
    return (f"We bought the {product} on {order_date} and {symptom}. "
            f"{rng.choice(_CLOSERS)}")


def customer_email(rng: random.Random, contact_first: str, product: str, symptom: str) -> str:
    return (f"{rng.choice(_OPENERS)}\n\nOur {product} has a problem: {symptom}. "
            f"{rng.choice(_CLOSERS)}\n\n{contact_first}")


def agent_email(rng: random.Random, contact_first: str, agent_first: str, issue: str, solution: str) -> str:
    """The agent's reply; states the offered solution verbatim after 'we can offer: '."""
    intro = rng.choice(("Thank you for reaching out about", "Thanks for your patience regarding",
                        "I have reviewed your case about"))
    return (f"Hi {contact_first},\n\n{intro} the {issue.lower()}. "
            f"To resolve it we can offer: {solution}. "
            f"{rng.choice(('Let me know if that works for you.', 'Reply to this email to confirm.', 'I will follow up in two days.'))}"
            f"\n\nBest regards,\n{agent_first}")


def chat_body(rng: random.Random, contact_first: str, agent_first: str, product: str, symptom: str,
              solution: str | None) -> str:
    """A live chat transcript; when ``solution`` is given the agent states it verbatim."""
    lines = [f"Agent ({agent_first}): Hi {contact_first}, thanks for contacting support. How can I help?",
             f"Customer ({contact_first}): Our {product} has a problem: {symptom}.",
             f"Agent ({agent_first}): " + rng.choice((
                 "I am sorry to hear that. Let me look into your order.",
                 "Thanks for the details. Let me check your account.",
                 "Understood. I am pulling up the case now."))]
    if solution is not None:
        lines.append(f"Agent ({agent_first}): To resolve this I can offer: {solution}.")
        lines.append(f"Customer ({contact_first}): " + rng.choice(("OK, let's do that.", "That works, thank you.",
                                                                     "Fine, please go ahead.")))
    lines.append(f"Agent ({agent_first}): " + rng.choice(("Is there anything else I can help with?",
                                                          "Have a great day.", "Thanks for your patience.")))
    return "\n".join(lines)


def money(x: float) -> str:
    """``75000 -> '$75,000'``."""
    return f"${x:,.0f}"


BANT_FACTS = ("role", "need", "budget", "timeline")   # the order a call covers them in

# Small talk between the business questions: it lengthens a call without stating any fact a task
# reads (no amounts, no day counts, no titles, no product families).
_SMALL_TALK = (
    ("How has your week been so far?", "Busy, we just moved into a new building."),
    ("Did the webinar invitation reach you?", "It did, a colleague forwarded it to me."),
    ("Is this still a good time to talk?", "Yes, I have a few minutes before my next meeting."),
    ("How did you hear about us?", "A partner of ours mentioned your team at a conference."),
    ("Are you working from the office today?", "From home, so excuse the background noise."),
    ("Has the new office layout settled in?", "Mostly, people are still finding their desks."),
)


def _lead_fact(rng: random.Random, fact: str, lead_first: str, title: str, company: str, budget: float,
               need_family: str, timeline_days: int) -> tuple[str, str]:
    """The rep's question and the lead's answer that states one BANT fact verbatim."""
    if fact == "role":
        return "Could you tell me about your role?", f"Sure, I am the {title} at {company}."
    if fact == "need":
        return "What are you looking for?", rng.choice((
            f"We need new {need_family} products for our offices.",
            f"Our main need is {need_family}; the current setup is outdated.",
            f"We are evaluating {need_family} vendors this year."))
    if fact == "budget":
        return "Do you have a budget in mind?", rng.choice((
            f"Our budget is {money(budget)}.", f"We have about {money(budget)} set aside.",
            f"Finance approved {money(budget)} for this."))
    if fact == "timeline":
        return "And when would you need it in place?", rng.choice((
            f"We need it within {timeline_days} days.", f"We want it running within {timeline_days} days.",
            f"Ideally within {timeline_days} days from now."))
    raise ValueError(f"unknown BANT fact {fact!r}; known: {', '.join(BANT_FACTS)}")  # callers check first


def lead_call(rng: random.Random, rep_first: str, lead_first: str, title: str, company: str, budget: float,
              need_family: str, timeline_days: int, facts: tuple[str, ...] = BANT_FACTS,
              small_talk: int = 0, follow_up: bool = False) -> str:
    """A call with a lead that states the given BANT ``facts`` verbatim (role as ``I am the <Title> at
    <Company>.``, need as the Family name, budget as ``$75,000``, timeline as ``within N days``), with
    ``small_talk`` exchanges of chat mixed in. ``follow_up`` marks the second of two calls."""
    unknown = set(facts) - set(BANT_FACTS)
    if unknown:
        raise ValueError(f"unknown BANT fact(s) {sorted(unknown)}; known: {', '.join(BANT_FACTS)}")
    lines = [f"Rep ({rep_first}): " + (f"Thanks for the follow-up call, {lead_first}." if follow_up
                                       else f"Thanks for taking the call, {lead_first}.")]
    exchanges = [_lead_fact(rng, f, lead_first, title, company, budget, need_family, timeline_days)
                 for f in BANT_FACTS if f in facts]
    for question, reply in rng.sample(_SMALL_TALK, min(small_talk, len(_SMALL_TALK))):
        exchanges.insert(rng.randint(0, len(exchanges)), (question, reply))
    for question, reply in exchanges:
        lines.append(f"Rep ({rep_first}): {question}")
        lines.append(f"Lead ({lead_first}): {reply}")
    lines.append(f"Rep ({rep_first}): Great, I will send over some information.")
    return "\n".join(lines)


def opportunity_call(rng: random.Random, rep_first: str, contact_first: str, competitors: list[str],
                     topics: list[str]) -> str:
    """A sales call on an opportunity; names each competitor and topic verbatim."""
    lines = [f"Rep ({rep_first}): Thanks for making time today, {contact_first}."]
    for c in competitors:
        lines.append(f"Customer ({contact_first}): " + rng.choice((
            f"To be transparent, we are also talking to {c}.", f"{c} gave us a proposal last week.",
            f"We have used {c} before and are comparing.")))
        lines.append(f"Rep ({rep_first}): Understood, happy to show how we compare.")
    for t in topics:
        lines.append(f"Customer ({contact_first}): " + rng.choice((
            f"I also want to discuss {t}.", f"Can you tell me more about {t}?", f"Another concern is {t}.")))
        lines.append(f"Rep ({rep_first}): Good question, I will cover that in the follow-up.")
    lines.append(f"Rep ({rep_first}): I will send a summary after this call.")
    return "\n".join(lines)
