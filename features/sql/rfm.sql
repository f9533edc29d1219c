-- Lifetimes-compatible RFM at one cutoff, exactly as lifetimes.utils.summary_data_from_transaction_data:
-- purchases (amount >= 0, or no amount) up to the end of day $cutoff_day are merged per customer and period (a UTC
-- day, or a Monday-start week when $weekly); frequency = periods - 1; recency and T in periods / $freq_multiplier;
-- monetary_value = mean value of the repeat periods (0 for one-period customers; NULL without amounts).
-- On DuckDB, features/build.py rewrites COUNT(DISTINCT p.period) into a per-customer bitmap of period slots
-- (bitstring_agg): one aggregation instead of a distinct set per customer, same result.
-- Params: $cutoff_day INTEGER (days since 1970-01-01), $weekly BOOLEAN, $period_days INTEGER,
--         $freq_multiplier DOUBLE.
WITH purchases AS (
    SELECT customer_id, day - CASE WHEN $weekly THEN ((day + 3) % 7 + 7) % 7 ELSE 0 END AS period, amount
    FROM (
        SELECT customer_id, CAST(epoch_us(ts) // 86400000000 AS INTEGER) AS day, amount
        FROM transactions
        WHERE amount >= 0 OR amount IS NULL
    )
    WHERE day <= $cutoff_day
),
firsts AS (
    SELECT customer_id, MIN(period) AS first_period FROM purchases GROUP BY 1
),
per_customer AS (
    SELECT
        p.customer_id,
        f.first_period,
        MAX(p.period) AS last_period,
        COUNT(DISTINCT p.period) AS n_periods,
        CAST(SUM(CAST(p.amount AS DECIMAL(38, 9))) AS DOUBLE) AS total_value,  -- exact: the same digits whatever the thread split
        COUNT(p.amount) = COUNT(*) AS spend_known,
        CAST(SUM(CAST(p.amount AS DECIMAL(38, 9))) FILTER (WHERE p.period = f.first_period) AS DOUBLE) AS first_period_value
    FROM purchases AS p
    JOIN firsts AS f ON p.customer_id = f.customer_id
    GROUP BY p.customer_id, f.first_period
)
SELECT
    customer_id,
    CAST(n_periods - 1 AS DOUBLE) AS frequency,
    (last_period - first_period) / $period_days / $freq_multiplier AS recency,
    (($cutoff_day - CASE WHEN $weekly THEN (($cutoff_day + 3) % 7 + 7) % 7 ELSE 0 END) - first_period)
        / $period_days / $freq_multiplier AS "T",
    CASE WHEN NOT spend_known THEN NULL WHEN n_periods > 1 THEN (total_value - first_period_value) / (n_periods - 1) ELSE 0.0 END
        AS monetary_value
FROM per_customer
