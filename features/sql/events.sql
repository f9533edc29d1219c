-- Behavioural windows from events up to the end of day $cutoff: counts per event type over the last
-- N days (event_columns expands to one count per configured type and window), days since the last
-- event, and ticket / review ratings. Params: $cutoff_day INTEGER (days since 1970-01-01).
WITH ev AS (
    SELECT customer_id, $cutoff_day - CAST(epoch_us(ts) // 86400000000 AS INTEGER) AS age_days, event_type, value
    FROM events
)
SELECT
    customer_id,
    MIN(age_days) FILTER (WHERE event_type <> 'email_sent') AS days_since_last_event,  -- sends are ours, not theirs
    CAST(COUNT_IF(event_type = 'support_ticket') AS BIGINT) AS support_tickets_total,  -- COUNT_IF: HUGEINT on DuckDB
    CAST(AVG(CAST(value AS DECIMAL(38, 9))) FILTER (WHERE event_type = 'support_ticket') AS DOUBLE) AS support_ticket_rating_mean,
    CAST(AVG(CAST(value AS DECIMAL(38, 9))) FILTER (WHERE event_type = 'review') AS DOUBLE) AS review_rating_mean,
    {event_columns}
FROM ev
WHERE age_days >= 0
GROUP BY customer_id
