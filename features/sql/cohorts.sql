-- Cohort retention: monthly acquisition cohorts (UTC calendar month of a customer's first purchase) x
-- months since that month (0, 1, 2, ... up to the month of $as_of_day), with the cohort's size and the
-- number and share of its customers who purchased in that month. A purchase is a row with amount >= 0 or no amount;
-- only rows up to the end of day $as_of_day count. Every cohort has a row for each offset up to the
-- as_of month, zero when nobody bought. Params: $as_of_day INTEGER (days since 1970-01-01, UTC);
-- {transactions} expands to the table or view holding the transactions.
WITH purchases AS (
    SELECT DISTINCT
        customer_id,
        year(DATE '1970-01-01' + day) * 12 + month(DATE '1970-01-01' + day) - 1 AS month_index
    FROM (
        SELECT customer_id, CAST(epoch_us(ts) // 86400000000 AS INTEGER) AS day
        FROM {transactions}
        WHERE amount >= 0 OR amount IS NULL
    )
    WHERE day <= $as_of_day
),
firsts AS (
    SELECT customer_id, MIN(month_index) AS cohort_index
    FROM purchases
    GROUP BY customer_id
),
sizes AS (
    SELECT cohort_index, COUNT(*) AS cohort_customers
    FROM firsts
    GROUP BY cohort_index
),
active AS (
    SELECT f.cohort_index, p.month_index - f.cohort_index AS month_offset, COUNT(*) AS active_customers
    FROM purchases AS p
    JOIN firsts AS f ON f.customer_id = p.customer_id
    GROUP BY f.cohort_index, p.month_index - f.cohort_index
),
grid AS (
    SELECT
        cohort_index,
        cohort_customers,
        CAST(unnest(range(0, year(DATE '1970-01-01' + $as_of_day) * 12 + month(DATE '1970-01-01' + $as_of_day)
                             - cohort_index)) AS INTEGER) AS month_offset
    FROM sizes
)
SELECT
    make_date(CAST(g.cohort_index // 12 AS INTEGER), CAST(g.cohort_index % 12 + 1 AS INTEGER), 1) AS cohort_month,
    g.month_offset,
    g.cohort_customers,
    COALESCE(a.active_customers, 0) AS active_customers,
    CAST(COALESCE(a.active_customers, 0) AS DOUBLE) / g.cohort_customers AS retention
FROM grid AS g
LEFT JOIN active AS a ON a.cohort_index = g.cohort_index AND a.month_offset = g.month_offset
ORDER BY cohort_month, g.month_offset
