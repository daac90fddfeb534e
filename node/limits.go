package node

import "time"

// Waits, periods and timeouts of a node, in one place.
const (
	// FirstLoadWait is how long a node that has just started holds
	// requests for the first key fetch of each issuer trusted by URL and
	// for a Redis revocation set's first load (DESIGN.md §5): an issuer or
	// a Redis that is down costs at most this, then requests get 401 or
	// 503 until they are back.
	FirstLoadWait = 2 * time.Second

	// keysWaitSlack is added to FirstLoadWait for a request that arrives
	// before Start has given the keys their chance (Caddy may serve before
	// the kavach app starts).
	keysWaitSlack = time.Second

	// firstKeysPoll is how often Start looks whether the first keys came.
	firstKeysPoll = 20 * time.Millisecond

	// OpenTimeout bounds opening an issuer's store or the audit trail at
	// start (a database that cannot be reached fails the start).
	OpenTimeout = 30 * time.Second

	// SeedTimeout bounds one seeding of the revocation set from a store or
	// the admin journal.
	SeedTimeout = 30 * time.Second

	// ReseedCheck is how often a Redis node looks whether Redis lost its
	// revocation data (the epoch is missing) and re-seeds it.
	ReseedCheck = 2 * time.Second

	// LocalKeysWatch is how often the key sets of the issuers in this
	// process are re-read for rotations.
	LocalKeysWatch = 10 * time.Second

	// localKeysNudge is the least time between two on-demand re-reads of
	// local key sets for a token with an unknown kid (attacker input).
	localKeysNudge = time.Second

	// MemorySweep is how often a memory revocation set forgets expired
	// entries.
	MemorySweep = time.Minute

	// ShutdownTimeout bounds the admin listener's graceful shutdown.
	ShutdownTimeout = 5 * time.Second

	// AdminReadHeaderTimeout bounds reading an admin request's headers.
	AdminReadHeaderTimeout = 10 * time.Second

	// adminTokenBytes is the size of a generated admin token (before
	// base64url).
	adminTokenBytes = 32
)
