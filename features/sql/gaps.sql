-- Distinct purchase days up to the end of day $cutoff and the gaps between them: count, mean and sample
-- standard deviation of the gaps (per-customer sorted day lists: no global sort).
-- Params: $cutoff_day INTEGER (days since 1970-01-01).
WITH days AS (
    SELECT customer_id, list_sort(list_distinct(list(day))) AS d
    FROM (
        SELECT customer_id, CAST(epoch_us(ts) // 86400000000 AS INTEGER) AS day
        FROM transactions
        WHERE amount >= 0 OR amount IS NULL
    )
    WHERE day <= $cutoff_day
    GROUP BY customer_id
)
SELECT
    customer_id,
    len(d) AS purchase_days_total,
    CASE WHEN len(d) > 1 THEN (d[len(d)] - d[1]) / (len(d) - 1) END AS mean_gap_days,
    CASE WHEN len(d) > 2
         THEN list_aggregate(list_transform(range(1, len(d)), lambda i: d[i + 1] - d[i]), 'stddev_samp')
    END AS std_gap_days
FROM days
