-- Labels for a cutoff: purchases in ($cutoff, $label_end], merged per period like lifetimes'
-- calibration_and_holdout_data. churned = 1 when there is no purchase in the horizon. A purchase has
-- amount >= 0 or no amount; future_revenue is NULL when a horizon row carries no amount.
-- Params: $cutoff_day INTEGER, $label_end_day INTEGER (days since 1970-01-01), $weekly BOOLEAN.
WITH future AS (
    SELECT customer_id, day - CASE WHEN $weekly THEN ((day + 3) % 7 + 7) % 7 ELSE 0 END AS period, amount
    FROM (
        SELECT customer_id, CAST(epoch_us(ts) // 86400000000 AS INTEGER) AS day, amount
        FROM transactions
    )
    WHERE day > $cutoff_day AND day <= $label_end_day
)
SELECT
    customer_id,
    COUNT(DISTINCT period) FILTER (WHERE amount >= 0 OR amount IS NULL) AS future_purchases,
    CASE WHEN COUNT(amount) = COUNT(*) THEN COALESCE(CAST(SUM(CAST(amount AS DECIMAL(38, 9))) AS DOUBLE), 0.0) END AS future_revenue
FROM future
GROUP BY 1
