"""Financial documents for the lab's RAG service: the record, its content hash, and a seed set.

The seed set is synthetic and deterministic: document `i` of a seed depends only on the seed
and `i` (its own `random.Random`), so the first k documents of a 5,000-document seed are the
k documents of a k-document seed, on every machine. Issuers are fictional; figures are
plausible, not real.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import date, timedelta

from drkit.errors import ConfigError

DEFAULT_SEED_DOCS = 5000
DEFAULT_RNG_SEED = 4370  # FINRA Rule 4370: business continuity plans
SEED_DOCS_ENV = "DRKIT_LAB_SEED_DOCS"
DOC_TYPES = ("10-K", "10-Q", "research_note", "trade_confirmation")


@dataclass(frozen=True)
class Document:
    """One financial document as the RAG service stores it (content fields only)."""

    id: str
    title: str
    body: str
    source: str
    as_of: date
    doc_type: str | None = None
    issuer: str | None = None
    ticker: str | None = None

    def content_hash(self) -> str:
        """SHA-256 of the content fields in canonical JSON: equal hashes, equal documents."""
        fields = {**asdict(self), "as_of": self.as_of.isoformat()}
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()

    def embedding_text(self) -> str:
        """The text the vector stands for: what a query is matched against."""
        return f"{self.title}\n{self.body}"


@dataclass(frozen=True)
class Issuer:
    name: str
    ticker: str
    sector: str


ISSUERS = (
    Issuer("Northwind Capital Holdings", "NWCH", "banking"),
    Issuer("Harborview Financial Group", "HBVF", "banking"),
    Issuer("Granite Peak Bancorp", "GPBC", "banking"),
    Issuer("Meridian Trust Corporation", "MRTC", "banking"),
    Issuer("Bluewater Insurance Group", "BWIG", "insurance"),
    Issuer("Sterling Mutual Assurance", "STMA", "insurance"),
    Issuer("Aldercrest Asset Management", "ALAM", "asset management"),
    Issuer("Copperline Investments", "CPLI", "asset management"),
    Issuer("Vantage Point Semiconductors", "VPSC", "semiconductors"),
    Issuer("Quantix Microsystems", "QMSX", "semiconductors"),
    Issuer("Lumen Ridge Software", "LRSW", "software"),
    Issuer("Cobalt Cloud Systems", "CBCS", "software"),
    Issuer("Orchard Lane Retail", "OLRT", "retail"),
    Issuer("Tidewater Consumer Brands", "TWCB", "consumer goods"),
    Issuer("Summit Ridge Energy", "SRGE", "energy"),
    Issuer("Prairie Wind Power", "PWPR", "utilities"),
    Issuer("Redstone Pharmaceuticals", "RDSP", "pharmaceuticals"),
    Issuer("Helix Bioscience", "HLXB", "biotechnology"),
    Issuer("Ironbridge Industrials", "IBRI", "industrials"),
    Issuer("Silverline Logistics", "SVLG", "transportation"),
    Issuer("Evergreen Realty Trust", "EGRT", "real estate"),
    Issuer("Falcon Aerospace Systems", "FASY", "aerospace"),
    Issuer("Crescent Telecom", "CRTL", "telecommunications"),
    Issuer("Atlas Payments", "ATPY", "payments"),
)
FILING_SOURCE = "SEC EDGAR"
RESEARCH_DESKS = (
    "Alder & Finch Equity Research",
    "Kestrel Securities Research",
    "Ouray Capital Markets Research",
    "Bellhaven Partners Research",
)
TRADE_SYSTEMS = ("OMS us-east", "OMS london", "Prime brokerage confirms")
COUNTERPARTIES = ("Kestrel Securities", "Bellhaven Partners", "Ouray Capital", "Alder & Finch")
RATINGS = ("Buy", "Overweight", "Neutral", "Underweight", "Sell")
RISKS = (
    "interest rate sensitivity",
    "credit losses in commercial real estate",
    "supply chain concentration",
    "regulatory capital requirements",
    "foreign exchange exposure",
    "cybersecurity incidents",
    "customer concentration",
    "liquidity and funding costs",
)
FIRST_DAY = date(2022, 1, 1)
DAY_SPAN = 4 * 365


def seed_count_from_env() -> int:
    """How many documents the lab seeds: DRKIT_LAB_SEED_DOCS, default 5,000."""
    raw = os.environ.get(SEED_DOCS_ENV, str(DEFAULT_SEED_DOCS))
    try:
        count = int(raw)
    except ValueError:
        count = -1
    if count < 0:
        raise ConfigError(
            f"{SEED_DOCS_ENV}={raw!r} is not a document count; set it to a whole number "
            f"such as {DEFAULT_SEED_DOCS} (0 seeds nothing)"
        )
    return count


def seed_id(index: int) -> str:
    return f"seed-{index:06d}"


def generate_documents(count: int, rng_seed: int = DEFAULT_RNG_SEED) -> Iterator[Document]:
    """The first `count` documents of the seed set `rng_seed`."""
    for index in range(count):
        yield seed_document(index, rng_seed)


def seed_document(index: int, rng_seed: int = DEFAULT_RNG_SEED) -> Document:
    """Document `index` of the seed set: depends on nothing else."""
    rng = random.Random(f"drkit-seed:{rng_seed}:{index}")
    issuer = rng.choice(ISSUERS)
    doc_type = DOC_TYPES[index % len(DOC_TYPES)]
    day = FIRST_DAY + timedelta(days=rng.randrange(DAY_SPAN))
    make = {
        "10-K": _annual_report,
        "10-Q": _quarterly_report,
        "research_note": _research_note,
        "trade_confirmation": _trade_confirmation,
    }[doc_type]
    title, body, source, as_of = make(rng, issuer, day)
    return Document(
        id=seed_id(index),
        title=title,
        body=body,
        source=source,
        as_of=as_of,
        doc_type=doc_type,
        issuer=issuer.name,
        ticker=issuer.ticker,
    )


def _money(rng: random.Random, low: float, high: float) -> str:
    return f"${rng.uniform(low, high):,.1f} million"


def _pct(rng: random.Random, low: float, high: float) -> str:
    return f"{rng.uniform(low, high):.1f}%"


Made = tuple[str, str, str, date]  # title, body, source, as-of date


def _annual_report(rng: random.Random, issuer: Issuer, day: date) -> Made:
    year = day.year
    as_of = date(year, 12, 31)  # fiscal year end
    title = f"{issuer.name} ({issuer.ticker}) Form 10-K for fiscal year {year}"
    body = (
        f"Annual report of {issuer.name}, a {issuer.sector} company, for the fiscal year ended "
        f"December 31, {year}. Total revenue was {_money(rng, 400, 9000)}, a change of "
        f"{_pct(rng, -8, 18)} year over year; net income was {_money(rng, 20, 1500)} and "
        f"diluted earnings per share ${rng.uniform(0.4, 12):.2f}. Operating margin was "
        f"{_pct(rng, 4, 35)}. Management identifies {rng.choice(RISKS)} and "
        f"{rng.choice(RISKS)} as principal risk factors. The board declared a quarterly "
        f"dividend of ${rng.uniform(0.05, 1.5):.2f} per share and authorised a share "
        f"repurchase programme of {_money(rng, 50, 2000)}."
    )
    return title, body, FILING_SOURCE, as_of


def _quarterly_report(rng: random.Random, issuer: Issuer, day: date) -> Made:
    quarter = min((day.month - 1) // 3 + 1, 3)  # Q4 is covered by the 10-K
    as_of = date(day.year, 3 * quarter + 1, 1) - timedelta(days=1)  # the quarter's last day
    title = f"{issuer.name} ({issuer.ticker}) Form 10-Q for Q{quarter} {as_of.year}"
    body = (
        f"Quarterly report of {issuer.name} for the quarter ended {as_of.isoformat()}. "
        f"Quarterly revenue was {_money(rng, 100, 2500)} ({_pct(rng, -10, 20)} versus the "
        f"prior-year quarter). Gross margin was {_pct(rng, 15, 70)} and free cash flow "
        f"{_money(rng, -50, 600)}. Management reaffirmed full-year guidance of "
        f"{_money(rng, 400, 9000)} in revenue. Cash and equivalents stood at "
        f"{_money(rng, 50, 5000)}; long-term debt at {_money(rng, 0, 8000)}. Disclosed "
        f"exposure to {rng.choice(RISKS)} is unchanged."
    )
    return title, body, FILING_SOURCE, as_of


def _research_note(rng: random.Random, issuer: Issuer, as_of: date) -> Made:
    rating = rng.choice(RATINGS)
    price = rng.uniform(15, 450)
    target = price * rng.uniform(0.75, 1.4)
    desk = rng.choice(RESEARCH_DESKS)
    title = f"{desk}: {issuer.ticker} rated {rating}, price target ${target:.2f}"
    body = (
        f"Research note on {issuer.name} ({issuer.ticker}) dated {as_of.isoformat()}. We "
        f"rate the shares {rating} with a twelve-month price target of ${target:.2f} against "
        f"a last close of ${price:.2f}. Our thesis: {issuer.sector} demand "
        f"{rng.choice(('is accelerating', 'is stabilising', 'is softening'))}, and we model "
        f"earnings per share growth of {_pct(rng, -5, 25)} next year. Key risk: "
        f"{rng.choice(RISKS)}. Valuation at {rng.uniform(8, 40):.1f} times forward earnings."
    )
    return title, body, desk, as_of


def _next_business_day(day: date) -> date:
    day += timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def _trade_confirmation(rng: random.Random, issuer: Issuer, day: date) -> Made:
    as_of = day if day.weekday() < 5 else _next_business_day(day)  # markets trade on weekdays
    side = rng.choice(("BUY", "SELL"))
    quantity = rng.randrange(100, 50000, 100)
    price = rng.uniform(15, 450)
    trade_ref = f"T{rng.randrange(10**9):09d}"
    settle = _next_business_day(as_of)
    title = f"Trade confirmation {trade_ref}: {side} {quantity:,} {issuer.ticker} @ {price:.2f}"
    body = (
        f"Confirmation of trade {trade_ref} executed on {as_of.isoformat()}: {side} "
        f"{quantity:,} shares of {issuer.name} ({issuer.ticker}) at ${price:.4f} per share, "
        f"gross amount ${quantity * price:,.2f}, commission ${rng.uniform(1, 250):.2f}. "
        f"Counterparty {rng.choice(COUNTERPARTIES)}; settlement date {settle.isoformat()} "
        f"(T+1), delivery versus payment. Retained under SEC Rule 17a-4."
    )
    return title, body, rng.choice(TRADE_SYSTEMS), as_of
