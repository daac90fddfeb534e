-- Schema version 2.
--
-- refresh_tokens.successor: the successor of a rotated refresh token,
-- sealed by the issuer under a key only the holder of the rotated token
-- can derive (the store cannot open it), so a retry inside the grace
-- window gets the same successor. Kept until successor_until (the end of
-- that window, Unix milliseconds), then cleared by Sweep.
ALTER TABLE refresh_tokens ADD COLUMN successor {{bytes}};
ALTER TABLE refresh_tokens ADD COLUMN successor_until BIGINT NOT NULL DEFAULT 0;

-- clients.resources: the resource URLs (token audiences) a resource
-- server serves, JSON text, '' when none; it may introspect only tokens
-- for one of them.
ALTER TABLE clients ADD COLUMN resources TEXT NOT NULL DEFAULT '';
