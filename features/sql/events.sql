-- Behavioural windows from events up to the end of day $cutoff_day: days since the last event and ticket / review
-- ratings over every event, and counts per event type over the last N days (event_columns expands to one count per
-- configured type and window) over the rows inside the widest window only ($widest_days): on two years of history
-- that is about an eighth of the rows, and those ~30 counts per row are most of this step's cost.
-- A customer with events but none in the widest window gets 0 counts.
-- Params: $cutoff_day INTEGER (days since 1970-01-01), $widest_days INTEGER.
WITH ev AS (
    SELECT customer_id, $cutoff_day - CAST(epoch_us(ts) // 86400000000 AS INTEGER) AS age_days, event_type, value
    FROM events
),
history AS (
    SELECT
        customer_id,
        MIN(age_days) FILTER (WHERE event_type <> 'email_sent') AS days_since_last_event,  -- sends are ours, not theirs
        CAST(COUNT_IF(event_type = 'support_ticket') AS BIGINT) AS support_tickets_total,  -- COUNT_IF: HUGEINT on DuckDB
        CAST(SUM(CAST(value AS DECIMAL(38, 9))) FILTER (WHERE event_type = 'support_ticket') AS DOUBLE) / NULLIF(COUNT(value) FILTER (WHERE event_type = 'support_ticket'), 0) AS support_ticket_rating_mean,
        CAST(SUM(CAST(value AS DECIMAL(38, 9))) FILTER (WHERE event_type = 'review') AS DOUBLE) / NULLIF(COUNT(value) FILTER (WHERE event_type = 'review'), 0) AS review_rating_mean
    FROM ev
    WHERE age_days >= 0
    GROUP BY customer_id
),
recent AS (
    SELECT
        customer_id,
        {event_columns}
    FROM ev
    WHERE age_days >= 0 AND age_days < $widest_days
    GROUP BY customer_id
)
SELECT
    h.customer_id,
    h.days_since_last_event,
    h.support_tickets_total,
    h.support_ticket_rating_mean,
    h.review_rating_mean,
    {recent_columns}
FROM history AS h
LEFT JOIN recent AS r ON r.customer_id = h.customer_id
