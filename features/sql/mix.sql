-- Channel and category mix of purchases up to the end of day $cutoff: number of distinct values, the
-- most frequent value (ties broken alphabetically) and its share of the customer's purchase rows.
-- Params: $cutoff DATE.
WITH tx AS (
    SELECT customer_id, channel, category
    FROM transactions
    WHERE CAST(ts AS DATE) <= $cutoff AND amount >= 0
),
channel_counts AS (
    SELECT customer_id, channel, COUNT(*) AS n,
           ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY COUNT(*) DESC, channel) AS rank_
    FROM tx WHERE channel IS NOT NULL GROUP BY 1, 2
),
category_counts AS (
    SELECT customer_id, category, COUNT(*) AS n,
           ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY COUNT(*) DESC, category) AS rank_
    FROM tx WHERE category IS NOT NULL GROUP BY 1, 2
),
totals AS (
    SELECT customer_id, COUNT(*) AS n_rows,
           COUNT(DISTINCT channel) AS n_channels, COUNT(DISTINCT category) AS n_categories
    FROM tx GROUP BY 1
)
SELECT
    t.customer_id,
    t.n_channels,
    ch.channel AS main_channel,
    ch.n / t.n_rows AS main_channel_share,
    t.n_categories,
    ca.category AS main_category,
    ca.n / t.n_rows AS main_category_share
FROM totals AS t
LEFT JOIN channel_counts AS ch ON ch.customer_id = t.customer_id AND ch.rank_ = 1
LEFT JOIN category_counts AS ca ON ca.customer_id = t.customer_id AND ca.rank_ = 1
