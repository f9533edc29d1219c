-- Labels for a cutoff: purchases in ($cutoff, $label_end], merged per period like lifetimes'
-- calibration_and_holdout_data. churned = 1 when there is no purchase in the horizon.
-- Params: $cutoff DATE, $label_end DATE, $weekly BOOLEAN.
WITH future AS (
    SELECT
        customer_id,
        CASE WHEN $weekly THEN CAST(date_trunc('week', CAST(ts AS DATE)) AS DATE)
             ELSE CAST(ts AS DATE) END AS period,
        amount
    FROM transactions
    WHERE CAST(ts AS DATE) > $cutoff AND CAST(ts AS DATE) <= $label_end
)
SELECT
    customer_id,
    COUNT(DISTINCT period) FILTER (WHERE amount >= 0) AS future_purchases,
    COALESCE(SUM(amount), 0.0) AS future_revenue
FROM future
GROUP BY 1
