-- Order history at one cutoff (rows up to the end of day $cutoff), one row per customer with a purchase
-- (amount >= 0, or no amount at all) on or before $cutoff: totals, order values, returns, and trend windows.
-- Spend columns are NULL for a customer whose rows carry no amount (a file without amounts).
-- Sums of amounts are exact (DECIMAL), so the digits do not depend on DuckDB's thread split; a mean is that exact sum
-- as DOUBLE over the count (Spark's AVG of a DECIMAL rounds to 13 places, DuckDB's does not: the engines would differ).
-- Days are UTC day numbers (days since 1970-01-01). Params: $cutoff_day INTEGER.
-- trend_columns expands to last-N-days and previous-N-days counts per configured window.
WITH tx AS (
    SELECT customer_id, CAST(epoch_us(ts) // 86400000000 AS INTEGER) AS day, amount
    FROM transactions
)
SELECT
    customer_id,
    DATE '1970-01-01' + MIN(day) FILTER (WHERE amount >= 0 OR amount IS NULL) AS first_purchase_date,
    DATE '1970-01-01' + MAX(day) FILTER (WHERE amount >= 0 OR amount IS NULL) AS last_purchase_date,
    COUNT(*) FILTER (WHERE amount >= 0 OR amount IS NULL) AS orders_total,
    CASE WHEN COUNT(amount) = COUNT(*) THEN COALESCE(CAST(SUM(CAST(amount AS DECIMAL(38, 9))) FILTER (WHERE amount >= 0) AS DOUBLE), 0.0) END
        AS revenue_gross_total,
    CASE WHEN COUNT(amount) = COUNT(*) THEN COALESCE(CAST(SUM(CAST(amount AS DECIMAL(38, 9))) AS DOUBLE), 0.0) END AS revenue_net_total,
    CASE WHEN COUNT(amount) = COUNT(*) THEN CAST(SUM(CAST(amount AS DECIMAL(38, 9))) FILTER (WHERE amount >= 0) AS DOUBLE) / NULLIF(COUNT(amount) FILTER (WHERE amount >= 0), 0) END AS avg_order_value,
    CASE WHEN COUNT(amount) = COUNT(*) THEN MAX(amount) FILTER (WHERE amount >= 0) END AS max_order_value,
    COUNT(*) FILTER (WHERE amount < 0) AS returns_total,
    CASE WHEN COUNT(amount) = COUNT(*) THEN COALESCE(-CAST(SUM(CAST(amount AS DECIMAL(38, 9))) FILTER (WHERE amount < 0) AS DOUBLE), 0.0) END
        AS returned_amount_total,
    {trend_columns}
FROM tx
WHERE day <= $cutoff_day
GROUP BY customer_id
HAVING COUNT(*) FILTER (WHERE amount >= 0 OR amount IS NULL) > 0
