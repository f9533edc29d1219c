-- Behavioural windows from events up to the end of day $cutoff: counts per event type over the last
-- N days (event_columns), days since the last event, and ticket / review ratings.
-- Params: $cutoff DATE.
WITH ev AS (
    SELECT customer_id, CAST(ts AS DATE) AS day, event_type, value
    FROM events
    WHERE CAST(ts AS DATE) <= $cutoff
)
SELECT
    customer_id,
    date_diff('day', MAX(day), CAST($cutoff AS DATE)) AS days_since_last_event,
    COUNT(*) FILTER (WHERE event_type = 'support_ticket') AS support_tickets_total,
    AVG(value) FILTER (WHERE event_type = 'support_ticket') AS support_ticket_rating_mean,
    AVG(value) FILTER (WHERE event_type = 'review') AS review_rating_mean,
    {event_columns}
FROM ev
GROUP BY customer_id
