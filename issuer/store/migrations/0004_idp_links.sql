-- Schema version 4: users signed in through an upstream OpenID provider.
--
-- A user is linked to an account at an IdP by (idp_issuer, subject), the
-- pair OpenID Connect Core §5.7 says is the only stable identifier; never
-- by email. email, name and groups are what the IdP said at the last
-- sign-in (seen_at), for display only.
CREATE TABLE idp_links (
	idp_issuer TEXT NOT NULL,
	subject    TEXT NOT NULL,
	user_id    TEXT NOT NULL REFERENCES users (id),
	provider   TEXT NOT NULL,
	email      TEXT NOT NULL,
	name       TEXT NOT NULL,
	groups     TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	seen_at    BIGINT NOT NULL,
	PRIMARY KEY (idp_issuer, subject)
);
CREATE INDEX idp_links_user ON idp_links (user_id);

-- Where a user's entitlements come from: 'admin' (the admin API or user
-- creation), 'idp' (the config's entitle rules, evaluated at the user's
-- last IdP sign-in), '' for rows older than this migration; and when
-- they were set or evaluated.
ALTER TABLE users ADD COLUMN entitlements_source TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN entitlements_at BIGINT NOT NULL DEFAULT 0;

-- OpenID Connect prompt and max_age of an authorization request, passed on
-- to the IdP, and the oldest sign-in that satisfies the request (0: any).
ALTER TABLE auth_requests ADD COLUMN prompt TEXT NOT NULL DEFAULT '';
ALTER TABLE auth_requests ADD COLUMN max_age BIGINT NOT NULL DEFAULT 0;
ALTER TABLE auth_requests ADD COLUMN auth_after BIGINT NOT NULL DEFAULT 0;

-- Who authorized a root grant other than the user in person: '' (consent
-- or the admin API), or 'id-jag <issuer>' for an ID-JAG from that IdP.
ALTER TABLE grants ADD COLUMN via TEXT NOT NULL DEFAULT '';
