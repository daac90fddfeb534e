-- Schema version 2.
--
-- Clients identified by a client ID metadata document URL have no row in
-- clients; their revocation is kept here: kind 'client_id' is one such URL
-- (value), kind 'host' every such URL on the host value or a subdomain of
-- it (value is lower case, without a trailing dot). The first revocation
-- time stays.
CREATE TABLE client_revocations (
	kind       TEXT NOT NULL,
	value      TEXT NOT NULL,
	revoked_at BIGINT NOT NULL,
	PRIMARY KEY (kind, value)
);

-- A client's consents (root grants whose grantee is the client), for
-- revoking a client and for "has this user approved this client".
CREATE INDEX grants_grantee ON grants (grantee);
