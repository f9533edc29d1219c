-- Inter-purchase gaps between distinct purchase days up to the end of day $cutoff.
-- Params: $cutoff DATE.
WITH days AS (
    SELECT DISTINCT customer_id, CAST(ts AS DATE) AS day
    FROM transactions
    WHERE CAST(ts AS DATE) <= $cutoff AND amount >= 0
),
gaps AS (
    SELECT customer_id,
           date_diff('day', LAG(day) OVER (PARTITION BY customer_id ORDER BY day), day) AS gap_days
    FROM days
)
SELECT
    customer_id,
    AVG(gap_days) AS mean_gap_days,
    STDDEV_SAMP(gap_days) AS std_gap_days
FROM gaps
WHERE gap_days IS NOT NULL
GROUP BY 1
