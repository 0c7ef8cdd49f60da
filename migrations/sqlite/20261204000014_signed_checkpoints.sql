-- A checkpoint of the audit chain (retention's pruned prefix) carries the SSH signature
-- of the server that made it for its own site, over its site, position, hash and detail
-- (store/audit/chain.rs `checkpoint_content`); NULL: made unsigned (no signing key, or
-- by another site's retention in a shared database).
ALTER TABLE config_audit_chain ADD COLUMN signature TEXT;
