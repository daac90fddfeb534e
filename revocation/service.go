package revocation

import "context"

// Modes of a Service, as Status reports them.
const (
	ModeMemory = "memory" // one node: Memory
	ModeRedis  = "redis"  // a cluster sharing one Redis: Redis
)

// Service is a Set with its background work: what a gateway node holds,
// whether it is one process (Memory) or one of a cluster (Redis). The node
// runs it, waits for it and reseeds it the same way in both modes.
type Service interface {
	Set

	// Run does the background work (a Memory's sweep; a Redis set's
	// subscription, loads and sweep) until ctx is done or Close is
	// called. Call it once, in its own goroutine.
	Run(ctx context.Context)

	// WaitLoaded blocks until the set holds what was revoked before it
	// started (a Redis set's first full load; a Memory at once), or ctx
	// is done.
	WaitLoaded(ctx context.Context) error

	// Reseed writes entries back: a Redis set writes every entry and the
	// epoch (Redis lost its data); a Memory adds them (a restarted
	// process whose store holds revocations).
	Reseed(ctx context.Context, entries []Entry) error

	// Status is a snapshot for readiness and metrics; it visits every
	// entry, so it is not for the request path.
	Status() Status

	// Close stops Run and closes the connections the set owns.
	Close() error
}
