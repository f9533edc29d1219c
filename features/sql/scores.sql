-- RFM scores 1-5 per customer at one cutoff, from the step tables _orders and _rfm: percentile ranks over the whole
-- population (most recent last purchase ranks highest on R; M only for customers with amounts).
-- A step of its own, ranked on these narrow tables: the window sorts carry three columns, not every feature, and
-- they run before (not beside) the final join, whose memory they would otherwise share.
SELECT
    o.customer_id,
    LEAST(5, 1 + CAST(floor(5 * percent_rank() OVER (ORDER BY o.last_purchase_date)) AS INTEGER)) AS rfm_r,
    LEAST(5, 1 + CAST(floor(5 * percent_rank() OVER (ORDER BY r.frequency)) AS INTEGER)) AS rfm_f,
    CASE WHEN o.revenue_net_total IS NOT NULL THEN LEAST(5, 1 + CAST(floor(5 * percent_rank() OVER (
        PARTITION BY o.revenue_net_total IS NULL ORDER BY o.revenue_net_total)) AS INTEGER)) END AS rfm_m
FROM _orders AS o
JOIN _rfm AS r USING (customer_id)
