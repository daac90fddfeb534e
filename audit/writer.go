package audit

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// now is the clock of record times, checkpoints and stream ids; tests
// replace it.
var now = time.Now

// Options configure a Writer. Zero values mean the defaults of limits.go.
type Options struct {
	// Stream is the stream id, [A-Za-z0-9._-]{1,128}. Default:
	// StreamID(hostname, now).
	Stream string
	// CheckpointEvery: a checkpoint after at most this many records.
	// Default DefaultCheckpointEvery (1000).
	CheckpointEvery int
	// CheckpointInterval: a checkpoint at least this often while records
	// are uncovered. Default DefaultCheckpointInterval (5 s).
	CheckpointInterval time.Duration
	// SummaryInterval: how often counted junk is written. Default
	// DefaultSummaryInterval (5 s).
	SummaryInterval time.Duration
	// QueueSize bounds the records accepted but not yet written. Default
	// DefaultQueueSize.
	QueueSize int
	// MaxBatch bounds the records of one group commit. Default
	// DefaultMaxBatch.
	MaxBatch int
	// BatchDelay is how long the writer gathers records after the first
	// one of a batch before it writes and fsyncs them, unless a
	// WriteDurable caller is waiting (then at once) or MaxBatch is reached:
	// under load one fsync per window instead of one per request. Default
	// DefaultBatchDelay; negative: no gathering.
	BatchDelay time.Duration
	// Witness, when set, receives every checkpoint (the Redis list
	// kavach:audit:ckpt:<stream>).
	Witness Witness
	// WitnessTimeout bounds one witness write. Default
	// DefaultWitnessTimeout.
	WitnessTimeout time.Duration
	// CloseTimeout bounds how long Close retries a failing sink. Default
	// DefaultCloseTimeout.
	CloseTimeout time.Duration
	// Logger gets sink failures and recoveries and witness errors.
	// Default slog.Default().
	Logger *slog.Logger
}

// Writer appends records to a Sink as one hash-chained stream (DESIGN.md
// §6). It is safe for concurrent use.
//
//   - Write never blocks: it encodes the record in the caller's goroutine
//     and puts it on a bounded queue, or fails at once with ErrQueueFull or
//     ErrSinkFailing (back-pressure: the gateway answers 503 and does not
//     proxy a request it could not record).
//   - One goroutine takes whatever is queued (up to MaxBatch), assigns seq
//     and hashes, appends the batch to the sink (durable when Append
//     returns: the file sink fsyncs), then acknowledges WriteDurable
//     callers: group commit, one fsync per batch.
//   - If the sink fails, the writer keeps the batch and retries it with
//     backoff (RetryMin…RetryMax) until it succeeds; meanwhile Write fails
//     with ErrSinkFailing. Records already accepted are never dropped while
//     the writer runs; Close gives up on them after CloseTimeout and says
//     how many were lost.
//   - A checkpoint (see Checkpoint) follows at most CheckpointEvery records
//     and is written at least every CheckpointInterval while records are
//     uncovered, before each rotation of a Rotator sink, and on Close. Each
//     is also handed to the Witness, off the commit path.
//   - Junk (requests without a verifiable token) is only counted
//     (CountJunk) and written as one summary record per reason per
//     SummaryInterval, so a flood cannot fill the disk.
type Writer struct {
	sink   Sink
	rot    Rotator
	key    ed25519.PrivateKey
	opts   Options
	stream string
	tail   Tail
	log    *slog.Logger

	mu       sync.RWMutex // held shared while enqueueing, exclusively by Close
	closed   bool
	q        chan *item
	kick     chan struct{} // ends gather early (durable record, full batch)
	gathered atomic.Int64  // records pending while gather waits
	stop     chan struct{}
	done     chan struct{}
	closeErr error

	failing atomic.Bool
	errMu   sync.Mutex
	lastErr error

	junkMu sync.RWMutex
	junk   map[string]*atomic.Uint64

	written, checkpoints, rejected, witnessErrs, lastSeq atomic.Uint64

	// State of the run goroutine only.
	seq       uint64
	head      [32]byte
	needPrev  bool
	uncovered int
	closing   bool
	// rotateFailing: the last Rotate failed (log once).
	rotateFailing bool
	batch         Batch
	pending       []*item
	ckpts         []Checkpoint
	h             *chainHasher
	scratch       []byte

	witnessCh     chan Checkpoint
	witnessDone   chan struct{}
	witnessCancel context.CancelFunc
	witnessCtx    context.Context
}

// item is one record on the queue: its time and members from kind on,
// encoded by the caller's goroutine.
type item struct {
	kind     Kind
	buf      []byte // encoded time (timeLen bytes), then appendFields
	done     chan error
	notified bool // done has had its answer
}

var itemPool = sync.Pool{New: func() any { return &item{buf: make([]byte, 0, 512)} }}

func putItem(it *item) {
	if cap(it.buf) > 64<<10 {
		return
	}
	it.done, it.notified = nil, false
	itemPool.Put(it)
}

// NewWriter starts a writer on sink, signing checkpoints with key. It reads
// the sink's Tail and links the new stream's first record to it. On success
// the Writer owns sink and closes it in Close; on error the caller still
// owns it.
func NewWriter(ctx context.Context, sink Sink, key ed25519.PrivateKey, opts Options) (*Writer, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, errors.New("audit: no Ed25519 signing key")
	}
	setDefault(&opts.CheckpointEvery, DefaultCheckpointEvery)
	setDefault(&opts.CheckpointInterval, DefaultCheckpointInterval)
	setDefault(&opts.SummaryInterval, DefaultSummaryInterval)
	setDefault(&opts.QueueSize, DefaultQueueSize)
	setDefault(&opts.MaxBatch, DefaultMaxBatch)
	if opts.BatchDelay == 0 {
		opts.BatchDelay = DefaultBatchDelay
	}
	setDefault(&opts.WitnessTimeout, DefaultWitnessTimeout)
	setDefault(&opts.CloseTimeout, DefaultCloseTimeout)
	if opts.CheckpointEvery < 1 || opts.CheckpointInterval <= 0 || opts.SummaryInterval <= 0 ||
		opts.QueueSize < 1 || opts.MaxBatch < 1 {
		return nil, errors.New("audit: negative writer option")
	}
	if opts.Stream == "" {
		host, _ := os.Hostname()
		opts.Stream = StreamID(host, now())
	}
	if !validStream(opts.Stream) {
		return nil, fmt.Errorf("audit: stream id %q is not 1–%d bytes of [A-Za-z0-9._-]", opts.Stream, MaxStreamBytes)
	}
	tail, err := sink.Tail(ctx)
	if err != nil {
		return nil, err
	}
	if tail.Found && tail.Stream == opts.Stream {
		return nil, fmt.Errorf("audit: stream id %q is already in the trail", opts.Stream)
	}
	w := &Writer{
		sink:     sink,
		key:      key,
		opts:     opts,
		stream:   opts.Stream,
		tail:     tail,
		log:      opts.Logger,
		q:        make(chan *item, opts.QueueSize),
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		junk:     make(map[string]*atomic.Uint64),
		head:     tail.Hash,
		needPrev: tail.Found,
		h:        newChainHasher(),
	}
	if w.log == nil {
		w.log = slog.Default()
	}
	w.rot, _ = sink.(Rotator)
	if opts.Witness != nil {
		w.witnessCh = make(chan Checkpoint, 16)
		w.witnessDone = make(chan struct{})
		w.witnessCtx, w.witnessCancel = context.WithCancel(context.Background())
		go w.witnessLoop()
	}
	go w.run()
	return w, nil
}

func setDefault[T int | time.Duration](v *T, d T) {
	if *v == 0 {
		*v = d
	}
}

// Stream is the writer's stream id.
func (w *Writer) Stream() string { return w.stream }

// Tail is what the sink reported when the writer started: the record the
// stream links to, and an incomplete last line moved aside (log it).
func (w *Writer) Tail() Tail { return w.tail }

// Write queues rec without waiting for the disk. It fails at once, taking
// nothing, with ErrQueueFull, ErrSinkFailing or ErrClosed, or with
// ErrInvalidRecord / ErrRecordTooLarge for a record the format refuses.
// An outcome record is taken while the sink fails (only a full queue
// refuses it): its request was forwarded and answered, so refusing it
// would only lose it; it is written once the sink recovers.
// Time defaults to now; Seq, Stream, Prev, Sig and Hash must be empty. rec
// is encoded before Write returns and not kept.
func (w *Writer) Write(rec *Record) error { return w.write(rec, nil) }

// WriteDurable queues rec like Write and waits until it is durable in the
// sink (for audit: required, DESIGN.md §2). It fails at once where Write
// would, taking nothing. An error wrapping ErrNotDurable (and what ended
// the wait: ErrSinkFailing, ErrClosed, ctx's error) means the record is
// queued but not known to be durable: it may still be written, and the
// request must not be forwarded.
func (w *Writer) WriteDurable(ctx context.Context, rec *Record) error {
	done := make(chan error, 1)
	if err := w.write(rec, done); err != nil {
		return err
	}
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotDurable, err)
	}
	return nil
}

func (w *Writer) write(rec *Record, done chan error) error {
	// Outcomes only follow decisions that were taken, so no request adds
	// to what waits for a failing sink beyond its own two records.
	if w.failing.Load() && rec.Kind != KindOutcome {
		w.rejected.Add(1)
		return ErrSinkFailing
	}
	it, err := encodeItem(rec)
	if err != nil {
		return err
	}
	it.done = done
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		putItem(it)
		return ErrClosed
	}
	select {
	case w.q <- it:
		w.mu.RUnlock()
		// The writer gathers without waking per record; a durable record
		// or a full batch ends its gathering early.
		if done != nil || len(w.q)+int(w.gathered.Load()) >= w.opts.MaxBatch {
			select {
			case w.kick <- struct{}{}:
			default:
			}
		}
		return nil
	default:
		w.mu.RUnlock()
		putItem(it)
		w.rejected.Add(1)
		return ErrQueueFull
	}
}

// encodeItem checks rec and encodes its time and members from kind on.
func encodeItem(rec *Record) (*item, error) {
	if rec.Seq != 0 || rec.Stream != "" || rec.Prev != "" || rec.Sig != "" || rec.Hash != "" {
		return nil, fmt.Errorf("%w: seq, stream, prev, sig and hash are set by the writer", ErrInvalidRecord)
	}
	if !callerKind(rec.Kind) {
		return nil, fmt.Errorf("%w: kind %q is not one a caller writes", ErrInvalidRecord, rec.Kind)
	}
	if err := checkFields(rec); err != nil {
		return nil, err
	}
	t := rec.Time
	if t.IsZero() {
		t = now()
	}
	if !validTime(t) {
		return nil, fmt.Errorf("%w: time outside years 0–9999", ErrInvalidRecord)
	}
	it := itemPool.Get().(*item)
	it.kind = rec.Kind
	it.buf = appendTime(it.buf[:0], t)
	it.buf = appendFields(it.buf, rec)
	if len(it.buf)-timeLen > maxFieldsLen {
		putItem(it)
		return nil, fmt.Errorf("%w: line over %d bytes", ErrRecordTooLarge, MaxLineBytes)
	}
	return it, nil
}

// CountJunk counts one request that had no verifiable token (no token, a
// bad signature, …) under reason, a short fixed string such as
// "missing_token". Counts are written as summary records, one per reason
// per SummaryInterval. It never blocks and never fails.
func (w *Writer) CountJunk(reason string) {
	if reason == "" {
		reason = "unspecified"
	}
	w.junkMu.RLock()
	c := w.junk[reason]
	w.junkMu.RUnlock()
	if c == nil {
		w.junkMu.Lock()
		if c = w.junk[reason]; c == nil {
			if len(w.junk) >= MaxJunkReasons {
				reason = JunkOther
				c = w.junk[reason]
			}
			if c == nil {
				c = new(atomic.Uint64)
				w.junk[reason] = c
			}
		}
		w.junkMu.Unlock()
	}
	c.Add(1)
}

// Stats is a snapshot of a writer, for metrics and health.
type Stats struct {
	Stream      string
	Queued      int    // accepted, not yet durable
	Written     uint64 // lines durably appended (checkpoints and summaries included)
	LastSeq     uint64 // seq of the last durable line
	Checkpoints uint64 // durable checkpoints
	Rejected    uint64 // Write calls refused for back-pressure
	WitnessErrs uint64 // failed witness writes
	Failing     bool   // the sink is failing; Write refuses records
	Err         error  // the sink's last error while Failing
}

// Stats returns a snapshot.
func (w *Writer) Stats() Stats {
	s := Stats{
		Stream:      w.stream,
		Queued:      len(w.q),
		Written:     w.written.Load(),
		LastSeq:     w.lastSeq.Load(),
		Checkpoints: w.checkpoints.Load(),
		Rejected:    w.rejected.Load(),
		WitnessErrs: w.witnessErrs.Load(),
		Failing:     w.failing.Load(),
	}
	if s.Failing {
		s.Err = w.Err()
	}
	return s
}

// Err returns the sink's last error (nil if it never failed).
func (w *Writer) Err() error {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	return w.lastErr
}

// Close stops accepting records, writes everything queued, the pending
// summaries and a final checkpoint, hands that to the witness, and closes
// the sink. If the sink keeps failing for CloseTimeout, Close gives up and
// its error says how many records were not written. Calling Close again
// returns the same error.
func (w *Writer) Close() error {
	w.mu.Lock()
	first := !w.closed
	w.closed = true
	w.mu.Unlock()
	if first {
		close(w.stop)
	}
	<-w.done
	return w.closeErr
}

func (w *Writer) run() {
	defer close(w.done)
	ckpt := time.NewTicker(w.opts.CheckpointInterval)
	defer ckpt.Stop()
	sum := time.NewTicker(w.opts.SummaryInterval)
	defer sum.Stop()
	var err error
	for err == nil && !w.closing {
		var ckptDue, sumDue bool
		select {
		case it := <-w.q:
			w.pending = append(w.pending, it)
		case <-ckpt.C:
			ckptDue = true
		case <-sum.C:
			sumDue = true
		case <-w.stop:
			w.closing = true
			continue
		}
		w.fill()
		w.gather()
		err = w.commit(sumDue, ckptDue)
	}
	// Closed: Write can no longer enqueue, so what is queued now is all
	// there will be.
	for err == nil {
		w.fill()
		last := len(w.q) == 0
		if err = w.commit(last, last); last {
			break
		}
	}
	if err != nil {
		lost := len(w.pending)
		for _, it := range w.pending {
			w.answer(it, ErrClosed)
		}
		for len(w.q) > 0 {
			w.answer(<-w.q, ErrClosed)
			lost++
		}
		err = fmt.Errorf("audit: closing with %d records not written: %w", lost, err)
	}
	w.stopWitness()
	if cerr := w.sink.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	w.closeErr = err
}

// gather waits up to BatchDelay for more records to join the pending
// ones, so one write and fsync serve many requests, then takes what is
// queued. It does not wake per record (a request would pay a goroutine
// wake-up each): it returns early when a WriteDurable caller is waiting or
// a batch is full (Write kicks it), or the writer is closing.
func (w *Writer) gather() {
	if w.opts.BatchDelay <= 0 || len(w.pending) == 0 || len(w.pending) >= w.opts.MaxBatch || w.closing || w.durablePending() {
		return
	}
	w.gathered.Store(int64(len(w.pending)))
	if len(w.q) < w.opts.MaxBatch-len(w.pending) {
		// A kick left from an earlier batch only ends this one early.
		t := time.NewTimer(w.opts.BatchDelay)
		select {
		case <-w.kick:
		case <-t.C:
		case <-w.stop:
			w.closing = true
		}
		t.Stop()
	}
	w.gathered.Store(0)
	w.fill()
}

func (w *Writer) durablePending() bool {
	for _, it := range w.pending {
		if it.done != nil {
			return true
		}
	}
	return false
}

// fill moves queued items to pending, without waiting, up to MaxBatch.
func (w *Writer) fill() {
	for len(w.pending) < w.opts.MaxBatch {
		select {
		case it := <-w.q:
			w.pending = append(w.pending, it)
		default:
			return
		}
	}
}

// answer gives a WriteDurable caller its answer, once.
func (w *Writer) answer(it *item, err error) {
	if it.done != nil && !it.notified {
		it.notified = true
		it.done <- err
	}
}

// commit encodes the pending items (and, when asked, the summaries and a
// checkpoint) into one batch, appends it, and acknowledges. It returns an
// error only when closing and the sink kept failing past CloseTimeout.
func (w *Writer) commit(summaries, checkpoint bool) error {
	b := &w.batch
	b.reset(w.stream)
	w.ckpts = w.ckpts[:0]
	for _, it := range w.pending {
		w.appendLine(b, it.kind, it.buf[:timeLen], it.buf[timeLen:])
		w.counted(b)
	}
	if summaries {
		w.appendSummaries(b)
	}
	if checkpoint && w.uncovered > 0 {
		w.appendCheckpoint(b)
	}
	if b.Len() == 0 {
		return nil
	}
	if err := w.appendRetry(b); err != nil {
		return err
	}
	w.durable(b)
	for _, it := range w.pending {
		w.answer(it, nil)
		putItem(it)
	}
	clear(w.pending)
	w.pending = w.pending[:0]
	if w.rot != nil && w.rot.Full() {
		return w.rotate()
	}
	return nil
}

// durable accounts for a batch the sink accepted and passes its
// checkpoints to the witness.
func (w *Writer) durable(b *Batch) {
	w.written.Add(uint64(b.Len()))
	w.lastSeq.Store(b.Lines[b.Len()-1].Seq)
	w.checkpoints.Add(uint64(len(w.ckpts)))
	for _, c := range w.ckpts {
		w.toWitness(c)
	}
}

// rotate closes the sink's segment with a checkpoint and starts the next.
func (w *Writer) rotate() error {
	if w.uncovered > 0 {
		b := &w.batch
		b.reset(w.stream)
		w.ckpts = w.ckpts[:0]
		w.appendCheckpoint(b)
		if err := w.appendRetry(b); err != nil {
			return err
		}
		w.durable(b)
	}
	if err := w.rot.Rotate(); err != nil {
		// The sink stays usable (Append finishes a half-done rotation);
		// the next commit tries again. Logged once per failing spell.
		if !w.rotateFailing {
			w.log.Error("audit: rotation failed; writing on into the current file", "stream", w.stream, "error", err)
		}
		w.rotateFailing = true
	} else {
		w.rotateFailing = false
	}
	// The next record names prev, so the new segment verifies on its own
	// (and, if the rotation failed, a redundant prev is harmless).
	w.needPrev = true
	return nil
}

// appendLine appends the next line of the stream to b.
func (w *Writer) appendLine(b *Batch, kind Kind, ts, fields []byte) {
	w.seq++
	start := len(b.Data)
	var prev *[32]byte
	if w.needPrev || kind == KindCheckpoint {
		prev = &w.head
	}
	w.needPrev = false
	b.Data = appendHead(b.Data, w.seq, w.stream, ts, prev)
	b.Data = append(b.Data, fields...)
	h := w.h.sum(&w.head, b.Data[start:])
	b.Data = appendSuffix(b.Data, &h)
	b.Lines = append(b.Lines, LineInfo{Seq: w.seq, Kind: kind, Hash: h, End: len(b.Data)})
	w.head = h
}

// counted notes one more uncovered record and checkpoints every N.
func (w *Writer) counted(b *Batch) {
	if w.uncovered++; w.uncovered >= w.opts.CheckpointEvery {
		w.appendCheckpoint(b)
	}
}

// appendCheckpoint signs the current head and appends the checkpoint
// record (which the signature covers, so it leaves nothing uncovered).
func (w *Writer) appendCheckpoint(b *Batch) {
	c := Checkpoint{Stream: w.stream, Seq: w.seq, Hash: w.head, Time: now()}
	c.Sign(w.key)
	rec := Record{Kind: KindCheckpoint, Sig: sigEncoding.EncodeToString(c.Sig)}
	var ts [timeLen]byte
	w.scratch = appendFields(w.scratch[:0], &rec)
	w.appendLine(b, KindCheckpoint, appendTime(ts[:0], c.Time), w.scratch)
	w.uncovered = 0
	w.ckpts = append(w.ckpts, c)
}

// appendSummaries appends one summary record per junk reason counted since
// the last summary, in reason order.
func (w *Writer) appendSummaries(b *Batch) {
	w.junkMu.RLock()
	reasons := make([]string, 0, len(w.junk))
	for r := range w.junk {
		reasons = append(reasons, r)
	}
	w.junkMu.RUnlock()
	slices.Sort(reasons)
	for _, reason := range reasons {
		w.junkMu.RLock()
		n := w.junk[reason].Swap(0)
		w.junkMu.RUnlock()
		if n == 0 {
			continue
		}
		rec := Record{Kind: KindSummary, Decision: Deny, Reason: reason, Count: n}
		var ts [timeLen]byte
		w.scratch = appendFields(w.scratch[:0], &rec)
		w.appendLine(b, KindSummary, appendTime(ts[:0], now()), w.scratch)
		w.counted(b)
	}
}

// appendRetry appends b until the sink takes it. While the sink fails,
// Write refuses records and waiting WriteDurable callers are told; when
// closing it gives up after CloseTimeout.
func (w *Writer) appendRetry(b *Batch) error {
	backoff := RetryMin
	var deadline time.Time
	for {
		ctx, cancel := context.Background(), context.CancelFunc(func() {})
		if !deadline.IsZero() {
			ctx, cancel = context.WithDeadline(ctx, deadline)
		}
		err := w.sink.Append(ctx, b)
		cancel()
		if err == nil {
			if w.failing.Swap(false) {
				w.log.Info("audit: sink recovered", "stream", w.stream)
			}
			return nil
		}
		w.errMu.Lock()
		w.lastErr = err
		w.errMu.Unlock()
		if !w.failing.Swap(true) {
			w.log.Error("audit: sink failing; refusing new records until it recovers", "stream", w.stream, "error", err)
		}
		failing := fmt.Errorf("%w: %w", ErrSinkFailing, err)
		for _, it := range w.pending {
			w.answer(it, failing)
		}
		if w.closing {
			if deadline.IsZero() {
				deadline = time.Now().Add(w.opts.CloseTimeout)
			}
			if !time.Now().Before(deadline) {
				return err
			}
			backoff = min(backoff, time.Until(deadline))
		}
		t := time.NewTimer(backoff)
		var stop <-chan struct{}
		if !w.closing {
			stop = w.stop
		}
		select {
		case <-t.C:
		case <-stop:
			t.Stop()
			w.closing = true
		}
		backoff = min(2*backoff, RetryMax)
	}
}

// toWitness hands c to the witness goroutine; when it lags, the oldest
// waiting checkpoint gives way (a newer one covers more).
func (w *Writer) toWitness(c Checkpoint) {
	if w.witnessCh == nil {
		return
	}
	for {
		select {
		case w.witnessCh <- c:
			return
		default:
		}
		select {
		case <-w.witnessCh:
			w.witnessErrs.Add(1)
		default:
		}
	}
}

func (w *Writer) witnessLoop() {
	defer close(w.witnessDone)
	// First the stream and its key, so a verifier can tell the trail
	// re-signed with another key, or the whole stream deleted.
	ctx, cancel := context.WithTimeout(w.witnessCtx, w.opts.WitnessTimeout)
	err := w.opts.Witness.Begin(ctx, w.stream, KeyFingerprint(w.key.Public().(ed25519.PublicKey)))
	cancel()
	if err != nil {
		w.witnessErrs.Add(1)
		w.log.Warn("audit: witness could not record the stream's key", "stream", w.stream, "error", err)
	}
	for c := range w.witnessCh {
		ctx, cancel := context.WithTimeout(w.witnessCtx, w.opts.WitnessTimeout)
		err := w.opts.Witness.Put(ctx, c)
		cancel()
		if err != nil {
			w.witnessErrs.Add(1)
			w.log.Warn("audit: witness write failed", "stream", c.Stream, "seq", c.Seq, "error", err)
		}
	}
}

// stopWitness lets the witness goroutine write what is waiting (the final
// checkpoint last), for at most twice WitnessTimeout.
func (w *Writer) stopWitness() {
	if w.witnessCh == nil {
		return
	}
	close(w.witnessCh)
	t := time.NewTimer(2 * w.opts.WitnessTimeout)
	defer t.Stop()
	select {
	case <-w.witnessDone:
	case <-t.C:
		w.witnessCancel()
		<-w.witnessDone
	}
	w.witnessCancel()
}
