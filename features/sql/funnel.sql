-- Conversion funnel over ordered steps, per entry channel and per RFM segment (features/funnel.py fills the
-- placeholders in braces; the rest is plain SQL: GROUPING SETS, window functions, MEDIAN).
-- Input: _funnel_journeys holds one row per customer who entered the funnel (customer_id, entry_channel,
-- rfm_segment at as_of or 'no_purchase', t_1 .. t_K in epoch microseconds, t_k NULL when step k was not reached
-- within the window). Output: one row per (dimension, value, step): customers reaching the step, conversions,
-- drop-off and the hours from the entry to the step (mean, median) for those who reached it.
WITH reached AS (  -- one row per customer and step reached; hours since the entry
    {reached_union}
),
grouped AS (
    SELECT
        CASE WHEN GROUPING(entry_channel) = 0 THEN 'channel'
             WHEN GROUPING(rfm_segment) = 0 THEN 'rfm_segment' ELSE 'all' END AS dimension,
        CASE WHEN GROUPING(entry_channel) = 0 THEN COALESCE(entry_channel, 'unknown')
             WHEN GROUPING(rfm_segment) = 0 THEN rfm_segment ELSE 'all' END AS dimension_value,
        step_index,
        COUNT(*) AS customers,
        AVG(hours) AS mean_hours_from_entry,
        MEDIAN(hours) AS median_hours_from_entry  -- exact, interpolated on both engines (SQLGlot turns
        -- PERCENTILE_CONT ... WITHIN GROUP into Spark's PERCENTILE_APPROX)
    FROM reached
    GROUP BY GROUPING SETS ((step_index), (step_index, entry_channel), (step_index, rfm_segment))
),
groups AS (
    SELECT DISTINCT dimension, dimension_value FROM grouped
),
grid AS (  -- every step of every group, zero when nobody reached it
    SELECT g.dimension, g.dimension_value, s.step_index, s.step
    FROM groups AS g
    CROSS JOIN ({steps}) AS s
),
counts AS (
    SELECT
        g.dimension, g.dimension_value, g.step_index, g.step,
        COALESCE(r.customers, 0) AS customers,
        r.mean_hours_from_entry,
        r.median_hours_from_entry
    FROM grid AS g
    LEFT JOIN grouped AS r
        ON r.dimension = g.dimension AND r.dimension_value = g.dimension_value AND r.step_index = g.step_index
),
ordered AS (
    SELECT
        c.*,
        LAG(c.customers) OVER (PARTITION BY c.dimension, c.dimension_value ORDER BY c.step_index) AS previous,
        FIRST_VALUE(c.customers) OVER (PARTITION BY c.dimension, c.dimension_value ORDER BY c.step_index)
            AS entered
    FROM counts AS c
)
SELECT
    dimension,
    dimension_value,
    step_index,
    step,
    customers,
    CASE WHEN step_index = 1 THEN 1.0 WHEN previous > 0 THEN CAST(customers AS DOUBLE) / previous END
        AS step_conversion,
    CASE WHEN entered > 0 THEN CAST(customers AS DOUBLE) / entered END AS overall_conversion,
    COALESCE(previous, customers) - customers AS drop_off,
    mean_hours_from_entry,
    median_hours_from_entry
FROM ordered
ORDER BY CASE dimension WHEN 'all' THEN 0 WHEN 'channel' THEN 1 ELSE 2 END, dimension_value, step_index
