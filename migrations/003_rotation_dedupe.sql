-- payvault schema, version 3: fingerprint-key rotation never sticks on a dedupe collision.
-- A token re-fingerprinted under a new fingerprint key can get the dedupe key another token of
-- the same card already holds (one tokenized again while the job ran). The older token keeps the
-- dedupe key; the newer one's is cleared, so it no longer deduplicates. The job counts them.
ALTER TABLE key_rotation_jobs ADD COLUMN dedupe_cleared bigint NOT NULL DEFAULT 0;
