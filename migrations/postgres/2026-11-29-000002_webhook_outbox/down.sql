-- Undo the webhook outbox.
DROP TABLE IF EXISTS webhook_outbox;
