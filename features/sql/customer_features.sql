-- One row per customer in the population at $cutoff (a purchase on or before it): RFM, order history,
-- gaps, mix, behaviour, profile, RFM scores and segment, and labels when $label_end is set.
-- Reads the per-cutoff step tables _rfm, _orders, _scores, _gaps, _mix, _events, _labels, _segments.
-- Params: $cutoff DATE, $label_end DATE (NULL at the scoring cutoff), $rfm_high INTEGER.
-- Without amounts (revenue_net_total NULL) rfm_m is NULL, rfm_score ends in '-', and the segment reads
-- M as F (every order one unit of value): R and F alone decide it.
WITH base AS (
    SELECT
        o.customer_id,
        CAST($cutoff AS DATE) AS cutoff,
        r.frequency, r.recency, r."T", r.monetary_value,
        date_diff('day', o.first_purchase_date, o.last_purchase_date) AS recency_days,
        date_diff('day', o.first_purchase_date, CAST($cutoff AS DATE)) AS tenure_days,
        date_diff('day', o.last_purchase_date, CAST($cutoff AS DATE)) AS days_since_last_purchase,
        o.* EXCLUDE (customer_id),
        CAST(o.returns_total AS DOUBLE) / o.orders_total AS return_rate,
        g.purchase_days_total,
        g.mean_gap_days,
        g.std_gap_days,
        date_diff('day', o.last_purchase_date, CAST($cutoff AS DATE)) / g.mean_gap_days
            AS days_since_last_over_mean_gap,
        COALESCE(m.n_channels, 0) AS n_channels,
        m.main_channel,
        CAST(m.main_channel_orders AS DOUBLE) / o.orders_total AS main_channel_share,
        COALESCE(m.n_categories, 0) AS n_categories,
        m.main_category,
        CAST(m.main_category_orders AS DOUBLE) / o.orders_total AS main_category_share,
        e.* EXCLUDE (customer_id),
        c.region, c.gender, c.age_band, c.acquisition_channel,
        date_diff('day', CAST(c.signup_ts AS DATE), CAST($cutoff AS DATE)) AS days_since_signup
    FROM _orders AS o
    JOIN _rfm AS r USING (customer_id)
    LEFT JOIN _gaps AS g USING (customer_id)
    LEFT JOIN _mix AS m USING (customer_id)
    LEFT JOIN _events AS e USING (customer_id)
    LEFT JOIN _profile AS c USING (customer_id)
),
scored AS (
    SELECT * FROM base JOIN _scores USING (customer_id)
)
SELECT
    s.* EXCLUDE ({event_count_columns_csv}),
    {event_count_coalesced},
    {event_rate_columns},
    CAST(s.rfm_r AS VARCHAR) || CAST(s.rfm_f AS VARCHAR) || COALESCE(CAST(s.rfm_m AS VARCHAR), '-') AS rfm_score,
    seg.slug AS rfm_segment,
    seg.label AS rfm_segment_label,
    CASE WHEN $label_end IS NULL THEN NULL ELSE COALESCE(l.future_purchases, 0) END AS future_purchases,
    CASE WHEN $label_end IS NULL THEN NULL WHEN l.customer_id IS NOT NULL THEN l.future_revenue
         WHEN s.revenue_net_total IS NOT NULL THEN 0.0 END AS future_revenue,
    CASE WHEN $label_end IS NULL THEN NULL
         ELSE CAST(COALESCE(l.future_purchases, 0) = 0 AS INTEGER) END AS churned
FROM scored AS s
JOIN _segments AS seg
  ON seg.r_high = (s.rfm_r >= $rfm_high)
 AND seg.f_high = (s.rfm_f >= $rfm_high)
 AND seg.m_high = (COALESCE(s.rfm_m, s.rfm_f) >= $rfm_high)
LEFT JOIN _labels AS l USING (customer_id)
