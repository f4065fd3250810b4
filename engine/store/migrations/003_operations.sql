-- Operations: the outbox gauges read the notices not yet sent (pending and failed) on
-- every refresh; sent ones pile up for ever, so they are kept out of the index.
CREATE INDEX outbox_unsent ON outbox (channel, created_at) WHERE status <> 'sent';
