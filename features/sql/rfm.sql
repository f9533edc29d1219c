-- Lifetimes-compatible RFM at one cutoff, exactly as lifetimes.utils.summary_data_from_transaction_data:
-- purchases (amount >= 0) up to the end of day $cutoff are merged per customer and period (a day,
-- or a Monday-start week when $weekly); frequency = periods - 1; recency and T in periods / $freq_multiplier;
-- monetary_value = mean value of the repeat periods (0 for one-period customers).
-- Params: $cutoff DATE, $weekly BOOLEAN, $period_days DOUBLE, $freq_multiplier DOUBLE.
WITH purchase_periods AS (
    SELECT
        customer_id,
        CASE WHEN $weekly THEN CAST(date_trunc('week', CAST(ts AS DATE)) AS DATE)
             ELSE CAST(ts AS DATE) END AS period,
        SUM(amount) AS period_value
    FROM transactions
    WHERE CAST(ts AS DATE) <= $cutoff AND amount >= 0
    GROUP BY 1, 2
),
per_customer AS (
    SELECT
        customer_id,
        MIN(period) AS first_period,
        MAX(period) AS last_period,
        COUNT(*) AS n_periods,
        SUM(period_value) AS total_value,
        arg_min(period_value, period) AS first_period_value
    FROM purchase_periods
    GROUP BY 1
),
observation AS (
    SELECT CASE WHEN $weekly THEN CAST(date_trunc('week', CAST($cutoff AS DATE)) AS DATE)
                ELSE CAST($cutoff AS DATE) END AS period_end
)
SELECT
    p.customer_id,
    CAST(p.n_periods - 1 AS DOUBLE) AS frequency,
    date_diff('day', p.first_period, p.last_period) / $period_days / $freq_multiplier AS recency,
    date_diff('day', p.first_period, o.period_end) / $period_days / $freq_multiplier AS "T",
    CASE WHEN p.n_periods > 1
         THEN (p.total_value - p.first_period_value) / (p.n_periods - 1)
         ELSE 0.0 END AS monetary_value
FROM per_customer AS p
CROSS JOIN observation AS o
