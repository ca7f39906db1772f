"""The eight ANALYTICS tasks: aggregate questions over a window of CRM records.

| task | asks for | answer |
|---|---|---|
| handle_time | agent with the min/max average handle time (transferred cases excluded) | User Id |
| transfer_count | agent with the fewest/most transfers made | User Id |
| top_issue_identification | most reported issue of a product | Issue Id or None |
| monthly_trend_analysis | month with significantly more cases of a product | month name or None |
| best_region_identification | state with the fastest average case closure | state code |
| sales_amount_understanding | rep with the top/bottom sales amount (Quantity x UnitPrice) | User Id |
| sales_cycle_understanding | rep with the fastest/slowest opportunity-to-signature cycle | User Id |
| conversion_rate_comprehension | rep with the highest/lowest lead conversion rate | User Id |

Every question is asked about a scope small enough to show in full (a window, an optional product /
issue / industry / lead filter, and for rankings an explicit list of candidates); the prompt holds
every in-scope record plus distractors, so the answer follows from the prompt alone. Gold answers
come from SQL aggregates over the org; ``metadata`` records the window, the filter, min or max, the
per-candidate values and the tie rule, so that any answer can be audited.

Departures from CRMArena-Pro, where the agent queries the org itself: the records are given in the
prompt (single turn), candidates are listed, and durations are whole days between dates.

The generators live in ``_analytics_cases`` (case rankings), ``_analytics_products`` (per-product
case questions) and ``_analytics_sales`` (sales-rep rankings); importing this module registers them.
"""

from __future__ import annotations

from seccrm.world.tasks._analytics_cases import BestRegion, HandleTime, TransferCount
from seccrm.world.tasks._analytics_products import MonthlyTrend, TopIssue
from seccrm.world.tasks._analytics_sales import ConversionRate, SalesAmount, SalesCycle

ANALYTICS_TASKS = (HandleTime, TransferCount, TopIssue, MonthlyTrend, BestRegion, SalesAmount, SalesCycle,
                   ConversionRate)

__all__ = ["ANALYTICS_TASKS", "BestRegion", "ConversionRate", "HandleTime", "MonthlyTrend", "SalesAmount",
           "SalesCycle", "TopIssue", "TransferCount"]
