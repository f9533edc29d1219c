-- Distinct purchase days up to the end of day $cutoff_day and the gaps between consecutive ones: count, mean and
-- sample standard deviation of the gaps. The spread comes from exact integer sums (n, sum g, sum g^2 of the
-- gaps), so both engines return the same, correctly rounded double whatever their thread split.
-- Params: $cutoff_day INTEGER (days since 1970-01-01).
WITH days AS (
    SELECT DISTINCT customer_id, day
    FROM (
        SELECT customer_id, CAST(epoch_us(ts) // 86400000000 AS INTEGER) AS day
        FROM transactions
        WHERE amount >= 0 OR amount IS NULL
    )
    WHERE day <= $cutoff_day
),
steps AS (
    SELECT customer_id, day, day - LAG(day) OVER (PARTITION BY customer_id ORDER BY day) AS gap
    FROM days
),
sums AS (
    SELECT customer_id, COUNT(*) AS n, MIN(day) AS first_day, MAX(day) AS last_day,
           CAST(SUM(gap) AS BIGINT) AS s1, CAST(SUM(CAST(gap AS BIGINT) * gap) AS BIGINT) AS s2
    FROM steps
    GROUP BY customer_id
)
SELECT
    customer_id,
    n AS purchase_days_total,
    CASE WHEN n > 1 THEN (last_day - first_day) / (n - 1) END AS mean_gap_days,
    CASE WHEN n > 2 THEN sqrt(CAST((n - 1) * s2 - s1 * s1 AS DOUBLE) / ((n - 1) * (n - 2))) END AS std_gap_days
FROM sums
