"""A customer_scores (or segment_summary) chunk as an Arrow table typed by the output contract."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from models.scoring.schema import Column

ARROW_TYPES = {
    "text": pa.string(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "integer": pa.int32(),  # SQL INTEGER
    "decimal": pa.float64(),  # full precision; CSV and SQL round to Column.decimals
}


def arrow_schema(columns: list[Column]) -> pa.Schema:
    """The Arrow schema of the contract columns (nullability from Column.nullable)."""
    return pa.schema([pa.field(c.name, ARROW_TYPES[c.kind], nullable=c.nullable) for c in columns])


def first_customer(frame: pd.DataFrame, bad: np.ndarray) -> str:
    """The customer_id of the first flagged row (or its position when the frame has no customer_id)."""
    pos = int(np.argmax(bad))
    return repr(frame["customer_id"].iloc[pos]) if "customer_id" in frame.columns else f"at row {pos}"


def check_batch(frame: pd.DataFrame, columns: list[Column], as_of: dt.date, table: str) -> None:
    """Raise ValueError naming column and customer for a wrong as_of, a missing value or a non-finite number."""
    names = [c.name for c in columns]
    if list(frame.columns) != names:
        raise ValueError(f"{table}: columns {list(frame.columns)} differ from the contract {names}")
    for col in columns:
        values = frame[col.name]
        missing = values.isna().to_numpy()
        if missing.any() and not col.nullable:
            raise ValueError(f"{table} column {col.name!r}: {int(missing.sum())} missing values "
                             f"(first at customer {first_customer(frame, missing)})")
        if col.numeric:
            bad = ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan)) & ~missing  # nulls: nullable only
            if bad.any():
                raise ValueError(f"{table} column {col.name!r}: {int(bad.sum())} NaN/inf values "
                                 f"(first at customer {first_customer(frame, bad)})")
    wrong = (frame["as_of"] != as_of).to_numpy()
    if wrong.any():
        raise ValueError(f"{table} column 'as_of': {frame['as_of'].iloc[int(np.argmax(wrong))]!r} is not the "
                         f"batch date {as_of.isoformat()} (first at customer {first_customer(frame, wrong)})")


def to_arrow(frame: pd.DataFrame, columns: list[Column], table: str) -> pa.Table:
    """Convert a checked frame column by column to the contract's Arrow types (integers checked for overflow)."""
    if len(frame) == 0:  # an empty frame's dtypes say nothing (pandas makes them float64 or object)
        return arrow_schema(columns).empty_table()
    arrays = []
    for col in columns:
        try:
            arrays.append(pa.array(frame[col.name], type=ARROW_TYPES[col.kind], from_pandas=True))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError) as exc:
            raise ValueError(f"{table} column {col.name!r} cannot be stored as {col.kind}: {exc}") from exc
    return pa.Table.from_arrays(arrays, schema=arrow_schema(columns))


def naive_utc(table: pa.Table) -> pa.Table:
    """The same table with UTC timestamps as naive UTC wall times (SQL TIMESTAMP, no session time zone)."""
    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type) and field.type.tz is not None:
            naive = pc.cast(table.column(i), pa.timestamp(field.type.unit))
            table = table.set_column(i, pa.field(field.name, naive.type, field.nullable), naive)
    return table
