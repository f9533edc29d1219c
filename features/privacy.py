"""Privacy by design: classify PII columns, drop or keyed-hash them, filter by consent, pseudonymise ids.

A column is PII when `data.pii` lists it, or (`data.pii_detect`) when its name or a sample of its values says so
(e-mail, phone, person name, postal address, ID number, birth date, IP address). PII columns are dropped or
replaced by their HMAC-SHA256 (`data.pii_action`) before anything is written; a customer_id that is itself PII is
always hashed, in every table alike, so joins still hold. The key comes only from the environment variable
CHURN_CLV_PII_KEY. Rejected rows lose their PII columns too, and their raw line when the table has any.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import duckdb
import pandas as pd

from features.errors import DataError
from features.ingest import REJECT_COLUMNS, ROW

KEY_ENV = "CHURN_CLV_PII_KEY"
MIN_KEY_CHARS = 16
ACTIONS = ("drop", "hash")
SAMPLE_ROWS = 1000
MAX_TEXT = 256  # characters of a sampled value the content rules read (the regexes backtrack on long free text)
TRUTHY = ("1", "true", "t", "yes", "y", "on", "granted", "given", "opt_in", "opt-in", "opted_in", "consent",
          "consented", "accepted")

# Column-name rules on the normalised name (lower case, words joined by "_"): the first match names the kind.
NAME_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple((kind, re.compile(rx)) for kind, rx in (
    ("email", r"(^|_)e_?mail(_?address)?($|_)|^mail$"),
    ("phone", r"(^|_)(phone|telephone|tel|mobile|cell|cellphone|fax|msisdn)(_?(number|no|nr))?($|_)"),
    ("name", r"^(customer_|contact_|client_|user_|display_|person_|account_holder_)?"
             r"(name|full_?name|first_?name|last_?name|given_?name|family_?name|middle_?name|maiden_?name|"
             r"surname|forename|nickname|user_?name)$"),
    ("ip_address", r"(^|_)ip(_?address)?($|_)"),
    ("address", r"(^|_)(address|street|street_?address|addr|address_?line_?\d?|house_?number|post_?code|"
                r"postal_?code|zip|zip_?code|zipcode)($|_)"),
    ("id_number", r"(^|_)(ssn|social_security(_number)?|national_?id|passport(_number|_no)?|tax_?id|tin|"
                  r"id_?number|id_?card|identity_?card|driver_?s?_?licen[cs]e|licen[cs]e_?number|iban|"
                  r"account_?number|card_?number|credit_?card|bsn|nino|nin)($|_)"),
    ("birth_date", r"(^|_)(date_of_birth|birth_?date|birthday|dob)($|_)"),
))

_EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_PHONE = re.compile(r"\+?\(?\d[\d ().-]{5,22}\d")
_DATE_LIKE = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}")
_SSN = re.compile(r"\d{3}-\d{2}-\d{4}")
_IBAN = re.compile(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}")
_PERSON = re.compile(r"[A-Z][a-z'’-]+(?: (?:[A-Z]\.|[A-Z][a-z'’-]+)){1,3}")
_STREET = re.compile(r"\b\d+[A-Za-z]?,? (?:[\w'’.-]+ ){0,4}(?:street|st|road|rd|avenue|ave|lane|ln|boulevard|"
                     r"blvd|drive|dr|way|court|ct|place|pl|square|sq|terrace|crescent|close|strasse|straße|weg|"
                     r"gasse|rue|via|calle|avenida)\b|\b(?:rue|via|calle|avenida) [\w'’ -]+ \d+", re.IGNORECASE)


def _is_phone(text: str) -> bool:
    """A phone number: 7-15 digits with a leading + or ( or two separators (not a date, an order number 2023-00123)."""
    if not _PHONE.fullmatch(text) or _DATE_LIKE.fullmatch(text):
        return False
    digits = sum(ch.isdigit() for ch in text)
    if not 7 <= digits <= 15:
        return False
    if text.startswith(("+", "(")):
        return True
    return sum(ch in " -()." for ch in text) >= 2


def _luhn(digits: str) -> bool:
    """The Luhn check of payment card numbers."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _is_card(text: str) -> bool:
    """A payment card number: 13-19 digits (spaces or dashes allowed) passing Luhn."""
    digits = text.replace(" ", "").replace("-", "")
    return digits.isdigit() and 13 <= len(digits) <= 19 and _luhn(digits)


# Content rules: (kind, test of one value, share of sampled values that must pass, minimum distinct share).
CONTENT_RULES: tuple[tuple[str, Callable[[str], bool], float, float], ...] = (
    ("email", lambda v: _EMAIL.search(v) is not None, 0.05, 0.0),
    ("id_number", lambda v: _SSN.fullmatch(v) is not None, 0.05, 0.0),
    ("id_number", lambda v: _IBAN.fullmatch(v.replace(" ", "")) is not None, 0.2, 0.0),
    ("id_number", _is_card, 0.5, 0.0),
    ("phone", _is_phone, 0.5, 0.0),
    ("address", lambda v: _STREET.search(v) is not None, 0.3, 0.3),
    ("name", lambda v: _PERSON.fullmatch(v) is not None, 0.5, 0.5),
)


def normalise_name(name: str) -> str:
    """A column name as lower-case words joined by '_' (camelCase split): 'eMailAddress' -> 'e_mail_address'."""
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", str(name).strip())
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def kind_by_name(name: str) -> str | None:
    """The PII kind a column name announces (email, phone, name, address, id_number, ...), or None."""
    normal = normalise_name(name)
    return next((kind for kind, rule in NAME_RULES if rule.search(normal)), None)


def kind_by_content(values: Iterable[Any]) -> str | None:
    """The PII kind most sampled values hold (see CONTENT_RULES), or None; blank values are ignored."""
    texts = [str(v).strip()[:MAX_TEXT] for v in values if v is not None and not (isinstance(v, float) and v != v)]
    texts = [t for t in texts if t]
    if not texts:
        return None
    distinct = len(set(texts)) / len(texts)
    for kind, test, share, min_distinct in CONTENT_RULES:
        if distinct >= min_distinct and sum(map(test, texts)) >= share * len(texts):
            return kind
    return None


def classify(samples: Mapping[str, Sequence[Any] | None], listed: Iterable[str] = (),
             detect: bool = True) -> dict[str, str]:
    """{column: why it is PII} for the columns of one table: 'listed', 'name: <kind>' or 'content: <kind>'.

    `samples` maps every column name to a sample of its values (None: not text, name rules only).
    """
    wanted = {normalise_name(col) for col in listed}
    found: dict[str, str] = {}
    for column, values in samples.items():
        if normalise_name(column) in wanted:
            found[column] = "listed"
        elif detect and (kind := kind_by_name(column)):
            found[column] = f"name: {kind}"
        elif detect and values is not None and (kind := kind_by_content(values)):
            found[column] = f"content: {kind}"
    return found


def pii_key(environ: Mapping[str, str] | None = None, needed_for: str = "data.pii_action: hash") -> bytes:
    """The HMAC key from CHURN_CLV_PII_KEY; DataError (one line) when unset or shorter than MIN_KEY_CHARS."""
    value = (os.environ if environ is None else environ).get(KEY_ENV, "")
    if len(value.strip()) < MIN_KEY_CHARS:
        got = "it is not set" if not value.strip() else f"it has {len(value.strip())} characters"
        raise DataError("environment", KEY_ENV, f"a secret key of at least {MIN_KEY_CHARS} characters in the "
                        f"environment variable {KEY_ENV} (needed for {needed_for}; never put it in a config file)",
                        got)
    return value.strip().encode("utf-8")


def keyed_hash(value: Any, key: bytes) -> str:
    """HMAC-SHA256 of the trimmed text of value, as 64 lower-case hex digits."""
    return hmac.new(key, str(value).strip().encode("utf-8"), hashlib.sha256).hexdigest()


def hash_sql(expr: str, key: bytes) -> str:
    """DuckDB SQL for keyed_hash(expr) (NULL stays NULL): HMAC-SHA256 built from sha256 on blobs."""
    block = key if len(key) <= 64 else hashlib.sha256(key).digest()
    block = block.ljust(64, b"\0")
    inner = bytes(b ^ 0x36 for b in block).hex()
    outer = bytes(b ^ 0x5C for b in block).hex()
    text = f"encode(TRIM(CAST({expr} AS VARCHAR)))"
    return (f"CASE WHEN {expr} IS NULL THEN NULL ELSE sha256(unhex('{outer}') || "
            f"unhex(sha256(unhex('{inner}') || {text}))) END")


@dataclass(frozen=True)
class Policy:
    """What to treat as PII and what to do with it (from the data config group)."""

    listed: tuple[str, ...] = ()
    detect: bool = True
    action: str = "drop"
    consent_column: str | None = None

    @classmethod
    def from_params(cls, data: Mapping[str, Any]) -> Policy:
        """The policy of data.pii, data.pii_detect, data.pii_action and data.consent_column."""
        listed = data.get("pii") or ()
        if isinstance(listed, str):
            listed = (listed,)
        action = str(data.get("pii_action") or "drop").strip().lower()
        if action not in ACTIONS:
            raise DataError("params", None, "data.pii_action to be drop or hash", f"got {data.get('pii_action')!r}")
        consent = data.get("consent_column")
        return cls(tuple(str(c) for c in listed), bool(data.get("pii_detect", True)), action,
                   str(consent) if consent not in (None, "") else None)


def quote(name: str) -> str:
    """A SQL identifier, double-quoted."""
    return '"' + str(name).replace('"', '""') + '"'


def _samples(relation: duckdb.DuckDBPyRelation, skip: Iterable[str]) -> dict[str, list[Any] | None]:
    """Up to SAMPLE_ROWS values of every text column of a relation (None for the other columns)."""
    skip = set(skip)
    columns = [(c, str(t)) for c, t in zip(relation.columns, relation.types, strict=True) if c not in skip]
    text = [c for c, t in columns if t.upper().startswith("VARCHAR")]
    out: dict[str, list[Any] | None] = {c: None for c, _ in columns}
    if text:
        rows = relation.select(", ".join(quote(c) for c in text)).limit(SAMPLE_ROWS).fetchall()
        for i, column in enumerate(text):
            out[column] = [row[i] for row in rows]
    return out


def _source_of(kept_column: str, spec: Any) -> str:
    """The source column a kept column came from (contract columns via the mapping, extras by name)."""
    if kept_column in spec.columns:
        return spec.columns[kept_column]
    return kept_column[: -len("_source")] if kept_column.endswith("_source") else kept_column


def _view(con: duckdb.DuckDBPyConnection, relation: duckdb.DuckDBPyRelation, label: str) -> str:
    """Register a relation as a uniquely named temp view; its name."""
    name = f"__privacy_{label}_{uuid.uuid4().hex[:12]}"
    relation.create_view(name, replace=True)
    return name


def _kept_sql(view: str, columns: Sequence[str], types: Sequence[str], spec: Any, pii: Mapping[str, str],
              action: str, key: bytes | None, hash_id: bool, contract_names: Sequence[str]) -> str:
    """SELECT of the kept rows with PII hashed, nulled (contract columns) or left out (extra columns)."""
    parts, names = [], []
    for column, type_name in zip(columns, types, strict=True):
        if column == "customer_id":
            parts.append(f"{hash_sql(quote(column), key)} AS {quote(column)}" if hash_id else quote(column))
        elif _source_of(column, spec) not in pii:
            parts.append(quote(column))
        elif action == "hash":
            parts.append(f"{hash_sql(quote(column), key)} AS {quote(column)}")
        elif column in contract_names:
            parts.append(f"CAST(NULL AS {type_name}) AS {quote(column)}")
        else:
            continue
        names.append(column)
    order = ""
    if hash_id:  # the ids changed: sort again (by every column, so the file is the same on every run)
        first = ["customer_id", *(["ts"] if "ts" in names else [])]
        keys = [*first, *(c for c in names if c not in first)]
        order = " ORDER BY " + ", ".join(quote(c) for c in keys)
    return f"SELECT {', '.join(parts)} FROM {view}{order}"


def _rejected_sql(view: str, columns: Sequence[str], pii: Mapping[str, str], action: str, key: bytes | None,
                  id_source: str | None, hash_id: bool) -> str:
    """SELECT of the rejected rows (original columns as text) without PII and, when the table has PII, raw lines."""
    parts = []
    for column in columns:
        original = column[: -len("_source")] if column.endswith("_source") else column
        original = original if original in REJECT_COLUMNS else column
        if column in ("reason", "source_file", "source_row"):
            parts.append(quote(column))
        elif column == "raw_line":
            parts.append("CAST(NULL AS VARCHAR) AS raw_line" if pii or hash_id else "raw_line")
        elif original == id_source and hash_id:
            parts.append(f"{hash_sql(quote(column), key)} AS {quote(column)}")
        elif original not in pii:
            parts.append(quote(column))
        elif action == "hash":
            parts.append(f"{hash_sql(quote(column), key)} AS {quote(column)}")
    return f"SELECT {', '.join(parts)} FROM {view}"


def consent_source(checked: Mapping[str, Any], sources: Mapping[str, Any], column: str) -> tuple[Any, str]:
    """The checked customers table and its column named by data.consent_column (DataError when either is missing)."""
    customers = checked.get("customers")
    file = sources["customers"].spec.file if "customers" in sources else "params"
    if customers is None or "customers" not in sources:
        raise DataError("params", None, "a customers table (data.customers) holding the consent column",
                        f"data.consent_column is {column!r} but there is no customers table")
    names = list(customers.kept.columns)
    match = next((c for c in (column, f"{column}_source") if c in names), None)
    if match is None:
        lowered = [c for c in names if c.lower() == column.lower()]
        match = lowered[0] if len(lowered) == 1 else None
    if match is None:
        raise DataError(file, column, "the consent column named by data.consent_column",
                        f"found columns: {', '.join(names)}")
    return customers, match


def _consent_filter(con: duckdb.DuckDBPyConnection, checked: Mapping[str, Any], sources: Mapping[str, Any],
                    column: str) -> tuple[str, dict[str, Any]]:
    """A temp table of the consenting customer ids; and the counts of who and what is excluded."""
    customers, match = consent_source(checked, sources, column)
    view = _view(con, customers.kept, "consent_src")
    table = f"__privacy_consent_{uuid.uuid4().hex[:12]}"
    truthy = ", ".join("'" + t + "'" for t in TRUTHY)
    con.execute(f"CREATE TEMP TABLE {table} AS SELECT DISTINCT customer_id FROM {view} "
                f"WHERE lower(trim(CAST({quote(match)} AS VARCHAR))) IN ({truthy})")
    profiles = con.execute(f"SELECT count(DISTINCT customer_id) FROM {view}").fetchall()[0][0]
    consenting = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    counts: dict[str, Any] = {"column": column, "customers_with_consent": consenting,
                              "customers_excluded": profiles - consenting,
                              "customers_without_profile": 0, "rows_excluded": {}}
    without = set()
    for name, done in checked.items():
        v = _view(con, done.kept, f"consent_{name}")
        n_rows, ids = con.execute(
            f"SELECT count(*), list(DISTINCT customer_id) FILTER (WHERE customer_id NOT IN "
            f"(SELECT customer_id FROM {view})) FROM {v} WHERE customer_id NOT IN "
            f"(SELECT customer_id FROM {table})").fetchall()[0]
        counts["rows_excluded"][name] = n_rows
        without.update(ids or [])
    counts["customers_without_profile"] = len(without)
    return table, counts


def survey(policy: Policy, sources: Mapping[str, Any], samples: Any, environ: Mapping[str, str] | None
           ) -> tuple[dict[str, dict[str, str]], bool, Any, dict[str, Any]]:
    """PII columns per table (from samples(relation, skip)), whether customer_id is hashed, the key, the report."""
    found: dict[str, dict[str, str]] = {}
    hash_id = False
    for name, src in sources.items():
        pii = classify(samples(src.relation, {ROW}), policy.listed, policy.detect)
        hash_id = hash_id or src.spec.columns.get("customer_id") in pii
        found[name] = pii
    key = None
    if hash_id or (policy.action == "hash" and any(found.values())):
        key = pii_key(environ, "data.pii_action: hash" if not hash_id else
                      "customer_id, which holds personal data and is hashed in every table")
    report: dict[str, Any] = {"action": policy.action, "detect": policy.detect, "columns": found,
                              "customer_id": "hashed" if hash_id else "kept", "consent": None}
    return found, hash_id, key, report


def protect(con: duckdb.DuckDBPyConnection, checked: Mapping[str, Any], sources: Mapping[str, Any],
            data: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Checked tables with PII dropped or hashed and non-consenting customers left out; and the privacy report.

    `checked` maps table name -> features.ingest.Checked; `sources` maps table name -> an object with the
    source `relation` (original columns) and its `spec` (features.ingest.TableSpec). Nothing is written here.
    """
    from features import contract

    policy = Policy.from_params(data)
    found, hash_id, key, report = survey(policy, sources, _samples, environ)
    out = dict(checked)
    consent_table = None
    if policy.consent_column:
        consent_table, report["consent"] = _consent_filter(con, checked, sources, policy.consent_column)
    for name, done in checked.items():
        pii, spec = found.get(name, {}), sources[name].spec
        pii = {col: why for col, why in pii.items() if col != spec.columns.get("customer_id")}
        if not pii and not hash_id and consent_table is None:
            continue
        kept_view = _view(con, done.kept, f"kept_{name}")
        if consent_table is not None:
            kept_view = _view(con, con.sql(f"SELECT * FROM {kept_view} WHERE customer_id IN "
                                           f"(SELECT customer_id FROM {consent_table})"), f"consented_{name}")
        rel = con.table(kept_view)
        kept = con.sql(_kept_sql(kept_view, rel.columns, [str(t) for t in rel.types], spec, pii,
                                 policy.action, key, hash_id, contract.SCHEMAS[name].names))
        rejected_view = _view(con, done.rejected, f"rejected_{name}")
        rejected = con.sql(_rejected_sql(rejected_view, done.rejected.columns, pii, policy.action, key,
                                         spec.columns.get("customer_id"), hash_id))
        out[name] = replace(done, kept=kept, rejected=rejected)
    return out, report


def pseudonymiser(params: Mapping[str, Any], environ: Mapping[str, str] | None = None
                  ) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """A function replacing customer_id by its keyed hash when scoring.pseudonymise_ids is on (else identity)."""
    if not bool((params.get("scoring") or {}).get("pseudonymise_ids", False)):
        return lambda frame: frame
    key = pii_key(environ, "scoring.pseudonymise_ids: true")

    def apply(frame: pd.DataFrame) -> pd.DataFrame:
        if "customer_id" not in frame.columns:
            return frame
        out = frame.copy()
        out["customer_id"] = [None if v is None else keyed_hash(v, key) for v in out["customer_id"].tolist()]
        out["customer_id"] = out["customer_id"].astype(frame["customer_id"].dtype)
        return out

    return apply


def pseudonymise(frame: pd.DataFrame, params: Mapping[str, Any]) -> pd.DataFrame:
    """frame with customer_id replaced by its keyed hash when scoring.pseudonymise_ids is on."""
    return pseudonymiser(params)(frame)


def id_forms(ids: Iterable[Any], key: bytes | None) -> set[str]:
    """Every form a customer id can take in the outputs: as given, hashed at ingest, and pseudonymised on top."""
    forms = {str(v).strip() for v in ids}
    if key is not None:
        hashed = {keyed_hash(v, key) for v in forms}
        forms |= hashed | {keyed_hash(v, key) for v in hashed}
    return forms
