"""features.privacy.protect on Spark (engine=spark ingest): the same policy, detection and SQL, transpiled.

PII columns are found with `privacy.classify` on up to SAMPLE_ROWS values per text column (collected to the
driver); kept and rejected rows are rewritten with privacy's own SELECT builders (DuckDB SQL, run through
features.ingest_spark.to_spark: the HMAC-SHA256 of `hash_sql` becomes sha2/unhex/encode on Spark with the same
digests); the consent filter keeps customers whose consent column is truthy. Nothing is written here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from features import contract
from features.ingest import SORT_KEYS, quote
from features.ingest_spark import SparkEngine
from features.privacy import SAMPLE_ROWS, TRUTHY, Policy, _kept_sql, _rejected_sql, consent_source, survey


def _samples(frame: Any, skip: Iterable[str]) -> dict[str, list[Any] | None]:
    """Up to SAMPLE_ROWS values of every text column of a DataFrame (None for the other columns)."""
    skip = set(skip)
    fields = [f for f in frame.schema.fields if f.name not in skip]
    text = [f.name for f in fields if type(f.dataType).__name__ == "StringType"]
    out: dict[str, list[Any] | None] = {f.name: None for f in fields}
    if text:
        rows = frame.select(*[frame[f"`{c}`"] for c in text]).limit(SAMPLE_ROWS).collect()
        for i, column in enumerate(text):
            out[column] = [row[i] for row in rows]
    return out


def _consent(engine: SparkEngine, checked: Mapping[str, Any], sources: Mapping[str, Any],
             column: str) -> tuple[str, dict[str, Any]]:
    """A view of the consenting customer ids; and the counts of who and what is excluded."""
    customers, match = consent_source(checked, sources, column)
    profiles = engine.view(customers.kept, "consent_src")
    truthy = ", ".join("'" + t + "'" for t in TRUTHY)
    table = engine.view(engine.relation(f"SELECT DISTINCT customer_id FROM {profiles} "
                                        f"WHERE lower(trim(CAST({quote(match)} AS VARCHAR))) IN ({truthy})"),
                        "consent")
    n_profiles = engine.rows(f"SELECT count(DISTINCT customer_id) FROM {profiles}")[0][0]
    consenting = engine.rows(f"SELECT count(*) FROM {table}")[0][0]
    counts: dict[str, Any] = {"column": column, "customers_with_consent": consenting,
                              "customers_excluded": n_profiles - consenting,
                              "customers_without_profile": 0, "rows_excluded": {}}
    without: set[Any] = set()
    for name, done in checked.items():
        rows = engine.view(done.kept, f"consent_{name}")
        outside = f"FROM {rows} WHERE customer_id NOT IN (SELECT customer_id FROM {table})"
        counts["rows_excluded"][name] = engine.rows(f"SELECT count(*) {outside}")[0][0]
        without.update(r[0] for r in engine.rows(
            f"SELECT DISTINCT customer_id {outside} AND customer_id NOT IN (SELECT customer_id FROM {profiles})"))
    counts["customers_without_profile"] = len(without)
    return table, counts


def protect(engine: SparkEngine, checked: Mapping[str, Any], sources: Mapping[str, Any],
            data: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Checked tables (Spark DataFrames) with PII dropped or hashed and non-consenting customers left out;
    and the privacy report (the same keys as features.privacy.protect)."""
    policy = Policy.from_params(data)
    found, hash_id, key, report = survey(policy, sources, _samples, environ)
    out = dict(checked)
    consent = None
    if policy.consent_column:
        consent, report["consent"] = _consent(engine, checked, sources, policy.consent_column)
    for name, done in checked.items():
        pii, spec = found.get(name, {}), sources[name].spec
        pii = {col: why for col, why in pii.items() if col != spec.columns.get("customer_id")}
        if not pii and not hash_id and consent is None:
            continue
        kept = done.kept
        if consent is not None:  # a semi join may reorder rows on Spark: sorted again by the table's keys
            view = engine.view(kept, f"kept_{name}")
            order = ", ".join(map(quote, SORT_KEYS[name]))
            kept = engine.relation(f"SELECT * FROM {view} WHERE customer_id IN (SELECT customer_id FROM {consent}) "
                                   f"ORDER BY {order}")
        view = engine.view(kept, f"consented_{name}")
        types = engine.types(kept)
        kept = engine.relation(_kept_sql(view, list(types), list(types.values()), spec, pii, policy.action, key,
                                         hash_id, contract.SCHEMAS[name].names))
        rejected_view = engine.view(done.rejected, f"rejected_{name}")
        rejected = engine.relation(_rejected_sql(rejected_view, done.rejected.columns, pii, policy.action, key,
                                                 spec.columns.get("customer_id"), hash_id))
        out[name] = replace(done, kept=kept, rejected=rejected)
    return out, report
