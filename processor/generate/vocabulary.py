"""The fixed vocabulary of the synthetic company: plans, segments, reps, channels, campaigns.

Weights are relative frequencies. They are tuned so that a few hundred accounts already show the
shapes a real B2B SaaS business has: many small free and starter accounts, a few large enterprise
ones, sales-assisted deals in the upper segments and self-serve sign-ups everywhere else.
"""

from __future__ import annotations

PLANS = ("free", "starter", "pro", "enterprise")
PLAN_WEIGHTS = (35, 30, 23, 12)

# Customer segment given the plan: enterprise customers rarely sit on a starter plan.
SEGMENT_BY_PLAN: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {
    "free": (("smb", "mid_market"), (90, 10)),
    "starter": (("smb", "mid_market"), (75, 25)),
    "pro": (("smb", "mid_market", "enterprise"), (30, 55, 15)),
    "enterprise": (("mid_market", "enterprise"), (30, 70)),
}

# Seats (users) per account: inclusive range by plan, drawn log-uniformly so small teams dominate.
SEATS_BY_PLAN = {"free": (1, 3), "starter": (2, 9), "pro": (5, 28), "enterprise": (20, 120)}

# Monthly list price per seat; an account's MRR is seats times price, with a negotiated discount.
PRICE_PER_SEAT = {"free": 0.0, "starter": 15.0, "pro": 39.0, "enterprise": 79.0}

# Integrations connected per account (inclusive range) by plan.
INTEGRATIONS_BY_PLAN = {"free": (0, 1), "starter": (1, 2), "pro": (1, 4), "enterprise": (3, 8)}

REGIONS = ("na", "emea", "apac", "latam")
REGION_WEIGHTS = (45, 30, 15, 10)
# Offset of each region's business day from UTC, in hours, for the daily rhythm.
REGION_UTC_OFFSET = {"na": -5, "emea": 1, "apac": 8, "latam": -3}

# Account owners are assigned by segment, as territories usually are.
REPS_BY_SEGMENT = {
    "smb": ("ava.smith", "noah.jones", "mia.brown"),
    "mid_market": ("liam.garcia", "emma.miller", "lucas.davis"),
    "enterprise": ("olivia.wilson", "ethan.moore"),
}

CHANNELS = ("paid_search", "paid_social", "organic", "referral", "outbound")
CHANNEL_WEIGHTS = (25, 20, 30, 10, 15)
PAID_CHANNELS = ("paid_search", "paid_social")

# Campaigns of the paid channels, each with the return on ad spend it tends to achieve: spend is
# derived from the revenue a campaign brings, so ROAS stays plausible at any number of accounts.
CAMPAIGNS: dict[str, tuple[tuple[str, float], ...]] = {
    "paid_search": (("brand_search", 4.0), ("competitor_search", 1.2), ("generic_search", 0.6)),
    "paid_social": (("linkedin_abm", 1.5), ("linkedin_leadgen", 0.8), ("meta_retargeting", 0.5)),
}

ROLES = ("admin", "member", "viewer")
# Roles of the seats after the first one (the first user of an account is always its admin).
ROLE_WEIGHTS = (10, 65, 25)

# Daily events of one user on an average weekday, by engagement tier: a few power users, many
# light ones, and a quarter of the seats bought but hardly used.
USER_TIERS = (("power", 30.0), ("regular", 10.0), ("light", 2.5), ("dormant", 0.3))
USER_TIER_WEIGHTS = (8, 27, 40, 25)

# What a user does, by role, as relative weights of the product event types.
PRODUCT_MIX_BY_ROLE: dict[str, tuple[tuple[str, int], ...]] = {
    "admin": (
        ("page.viewed", 30),
        ("login", 8),
        ("report.sent", 5),
        ("report.viewed", 14),
        ("workflow.completed", 20),
        ("build.completed", 15),
    ),
    "member": (
        ("page.viewed", 35),
        ("login", 8),
        ("report.sent", 3),
        ("report.viewed", 18),
        ("workflow.completed", 18),
        ("build.completed", 12),
    ),
    "viewer": (("page.viewed", 45), ("login", 10), ("report.viewed", 45)),
}

# Workflows people complete; the key ones are those that deliver the product's core value.
WORKFLOWS = (
    ("close_the_books", True),
    ("weekly_forecast", True),
    ("board_pack", True),
    ("invoice_reconciliation", True),
    ("data_cleanup", False),
    ("template_edit", False),
    ("export_csv", False),
)

PROVIDERS = ("salesforce", "hubspot", "slack", "github", "snowflake", "stripe", "zendesk", "jira")

PAGES = ("/home", "/reports", "/reports/new", "/workflows", "/builds", "/settings", "/billing")
LOGIN_METHODS = ("password", "google", "sso")
DELIVERIES = ("email", "slack", "link")
CHURN_REASONS = ("low_usage", "budget", "switched_vendor", "company_closed")
