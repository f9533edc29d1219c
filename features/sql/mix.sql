-- Channel and category mix of purchases up to the end of day $cutoff: number of distinct values, the
-- most frequent value (ties go to the alphabetically first) and how many purchase rows it has.
-- Params: $cutoff_day INTEGER (days since 1970-01-01).
WITH tx AS (
    SELECT customer_id, channel, category
    FROM transactions
    WHERE (amount >= 0 OR amount IS NULL) AND CAST(epoch_us(ts) // 86400000000 AS INTEGER) <= $cutoff_day
),
channel_counts AS (
    SELECT customer_id, channel, COUNT(*) AS n FROM tx WHERE channel IS NOT NULL GROUP BY 1, 2
),
category_counts AS (
    SELECT customer_id, category, COUNT(*) AS n FROM tx WHERE category IS NOT NULL GROUP BY 1, 2
),
channels AS (
    SELECT customer_id, COUNT(*) AS n_channels,
           arg_min(channel, {'neg_n': -n, 'value': channel}) AS main_channel, MAX(n) AS main_channel_orders
    FROM channel_counts GROUP BY 1
),
categories AS (
    SELECT customer_id, COUNT(*) AS n_categories,
           arg_min(category, {'neg_n': -n, 'value': category}) AS main_category, MAX(n) AS main_category_orders
    FROM category_counts GROUP BY 1
)
SELECT
    COALESCE(ch.customer_id, ca.customer_id) AS customer_id,
    COALESCE(ch.n_channels, 0) AS n_channels,
    ch.main_channel,
    ch.main_channel_orders,
    COALESCE(ca.n_categories, 0) AS n_categories,
    ca.main_category,
    ca.main_category_orders
FROM channels AS ch
FULL OUTER JOIN categories AS ca USING (customer_id)
