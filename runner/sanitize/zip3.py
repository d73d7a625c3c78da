"""The three-digit ZIP areas Safe Harbor requires reported as ``000``.

HIPAA Safe Harbor (45 CFR 164.514(b)(2)(i)(B)) lets a de-identified data set keep the first three
digits of a ZIP code only where the area formed by all ZIP codes with those three digits holds
more than 20,000 people; every other three-digit prefix must become ``000``.

The list below is the one the Department of Health and Human Services publishes, derived from
the five-digit ZIP Code Tabulation Areas of the 2000 Census:

    HHS Office for Civil Rights, "Guidance Regarding Methods for De-identification of Protected
    Health Information in Accordance with the Health Insurance Portability and Accountability
    Act (HIPAA) Privacy Rule", November 26, 2012, section 3.4 "When can ZIP codes be included
    in de-identified information?" (first published in the preamble of the final rule,
    67 FR 53182, 53233-53234, August 14, 2002).

HHS notes that a covered entity should not rely on this list where more current census data
has been published. It is data, not law: a newer list replaces this one set, and the plan and
the run record name the rule (``zip3``), so a run can be traced to the list it used.
"""

from __future__ import annotations

SOURCE = "HHS OCR de-identification guidance (2012), section 3.4; 2000 Census ZCTAs"
"""Where :data:`RESTRICTED` comes from, in one line (shown by ``etlrun plan``)."""

RESTRICTED: frozenset[str] = frozenset(
    {
        "036", "059", "063", "102", "203", "556", "692", "790", "821",
        "823", "830", "831", "878", "879", "884", "890", "893",
    }
)  # fmt: skip
"""Three-digit ZIP prefixes of areas with 20,000 people or fewer: reported as ``000``."""

SUPPRESSED = "000"
