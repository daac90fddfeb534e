-- Schema version 1.
--
-- {{bytes}} is BLOB on SQLite and BYTEA on PostgreSQL. Times are Unix
-- milliseconds, 0 meaning never. Lists, maps and constraints are JSON text,
-- '' when empty. A root's parent is NULL so that the foreign key holds.

CREATE TABLE users (
	id            TEXT PRIMARY KEY,
	name          TEXT NOT NULL UNIQUE,
	password_hash TEXT NOT NULL,
	entitlements  TEXT NOT NULL,
	created_at    BIGINT NOT NULL,
	revoked_at    BIGINT NOT NULL
);

CREATE TABLE grants (
	id          TEXT PRIMARY KEY,
	parent      TEXT REFERENCES grants (id),
	user_id     TEXT NOT NULL REFERENCES users (id),
	grantee     TEXT NOT NULL,
	scopes      TEXT NOT NULL,
	audience    TEXT NOT NULL,
	constraints TEXT NOT NULL,
	created_at  BIGINT NOT NULL,
	expires_at  BIGINT NOT NULL,
	revoked_at  BIGINT NOT NULL
);
CREATE INDEX grants_parent ON grants (parent);

-- grant_id is the last of chain_grants: the grant tree is what a
-- revocation walks, and this column leads from a grant to its agent.
CREATE TABLE agents (
	id           TEXT PRIMARY KEY,
	name         TEXT NOT NULL,
	owner        TEXT NOT NULL REFERENCES users (id),
	parent       TEXT REFERENCES agents (id),
	grant_id     TEXT NOT NULL UNIQUE REFERENCES grants (id),
	chain_grants TEXT NOT NULL,
	chain_agents TEXT NOT NULL,
	scopes       TEXT NOT NULL,
	constraints  TEXT NOT NULL,
	secret_hash  {{bytes}},
	public_key   {{bytes}},
	created_at   BIGINT NOT NULL,
	expires_at   BIGINT NOT NULL,
	revoked_at   BIGINT NOT NULL
);
CREATE INDEX agents_owner ON agents (owner);
CREATE INDEX agents_parent ON agents (parent);

CREATE TABLE clients (
	id            TEXT PRIMARY KEY,
	name          TEXT NOT NULL,
	kind          TEXT NOT NULL,
	redirect_uris TEXT NOT NULL,
	secret_hash   {{bytes}},
	created_at    BIGINT NOT NULL,
	revoked_at    BIGINT NOT NULL
);

-- Codes and refresh tokens name clients without a foreign key: a client
-- identified by a metadata document URL is never stored.
CREATE TABLE codes (
	hash         {{bytes}} PRIMARY KEY,
	client_id    TEXT NOT NULL,
	user_id      TEXT NOT NULL,
	grant_id     TEXT NOT NULL,
	redirect_uri TEXT NOT NULL,
	challenge    TEXT NOT NULL,
	resource     TEXT NOT NULL,
	scopes       TEXT NOT NULL,
	expires_at   BIGINT NOT NULL,
	used_at      BIGINT NOT NULL
);

CREATE TABLE refresh_tokens (
	hash       {{bytes}} PRIMARY KEY,
	family     TEXT NOT NULL,
	client_id  TEXT NOT NULL,
	user_id    TEXT NOT NULL,
	resource   TEXT NOT NULL,
	scopes     TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL,
	rotated_at BIGINT NOT NULL,
	revoked_at BIGINT NOT NULL
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);

CREATE TABLE auth_requests (
	id           TEXT PRIMARY KEY,
	client_id    TEXT NOT NULL,
	redirect_uri TEXT NOT NULL,
	state        TEXT NOT NULL,
	challenge    TEXT NOT NULL,
	resource     TEXT NOT NULL,
	scopes       TEXT NOT NULL,
	expires_at   BIGINT NOT NULL
);

CREATE TABLE sessions (
	hash       {{bytes}} PRIMARY KEY,
	user_id    TEXT NOT NULL REFERENCES users (id),
	csrf       TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL
);

CREATE TABLE signing_keys (
	kid         TEXT PRIMARY KEY,
	private_jwk {{bytes}} NOT NULL,
	created_at  BIGINT NOT NULL,
	active_at   BIGINT NOT NULL,
	retired_at  BIGINT NOT NULL,
	expires_at  BIGINT NOT NULL
);

-- cutoff is '' for an id revocation, so (cutoff, id) keeps a cutoff and an
-- id revocation of the same string apart, as revocation.Set does.
CREATE TABLE revocations (
	cutoff    TEXT NOT NULL,
	id        TEXT NOT NULL,
	before_at BIGINT NOT NULL,
	until_at  BIGINT NOT NULL,
	PRIMARY KEY (cutoff, id)
);
CREATE INDEX revocations_until ON revocations (until_at);
