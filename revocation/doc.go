// Package revocation is Kavach's revocation set (DESIGN.md §5): the ids and
// issued-before cutoffs that stop tokens before they expire.
//
// Revoking any link of a delegation chain stops every token carrying it: the
// gateway asks IsRevoked for a token's jti and for every grant and agent id
// of its chain, and RevokedBefore for its sub, client_id and kid with its
// iat (DESIGN.md §4 step 5). Both are local lookups, allocation-free and
// nanoseconds long. An entry is kept until its Until, by default the
// revocation time + max_token_lifetime + 2 × leeway, when no token it could
// revoke can still be valid.
//
// Memory is the single-node Set. It stores 128-bit keyed hashes rather than
// ids, so a million revocations take a few tens of MB and the set cannot be
// listed. NewHandler is the Caddy-free admin API (POST /v1/revocations)
// that "kavach revoke" talks to; it does no authentication of its own.
//
//	set := revocation.NewMemory(revocation.MemoryOptions{})
//	go set.Run(ctx) // forget expired entries
//	until := revocation.DefaultUntil(time.Now(), time.Hour, 30*time.Second)
//	err := set.Revoke(ctx, revocation.Entry{ID: "agt_89", Until: until})
//	…
//	if set.IsRevoked(claims.JTI) || set.RevokedBefore(revocation.CutoffSubject, claims.Sub, claims.IAT) { … }
package revocation
