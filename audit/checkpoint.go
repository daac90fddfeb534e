package audit

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Checkpoint is a signed chain head (DESIGN.md §6): "record Seq of Stream
// has hash Hash", at Time, signed with the audit Ed25519 key.
//
// In the trail a checkpoint is the record right after the head it signs:
//
//	{"seq":<Seq+1>,"stream":<Stream>,"time":<Time>,"prev":<Hash>,"kind":"checkpoint","sig":<Sig>,"hash":…}
//
// Every member of that record is signed or implied, so a valid checkpoint
// covers itself and every record of its stream up to it. The same
// checkpoint goes to the Witness, encoded by AppendJSON.
type Checkpoint struct {
	Stream string
	Seq    uint64   // the last record covered
	Hash   [32]byte // its hash
	Time   time.Time
	Sig    []byte // Ed25519 over SignedBytes
}

// checkpointContext separates checkpoint signatures from anything else the
// key could ever sign.
const checkpointContext = "kavach-audit-checkpoint-v1\n"

// SignedBytes returns the canonical byte string the signature covers:
//
//	"kavach-audit-checkpoint-v1\n" stream "\n" seq "\n" hash "\n" time "\n"
//
// with seq in decimal, hash as 64 lowercase hex digits and time in the
// trail's format (RFC 3339, UTC, six fractional digits). A stream id has no
// '\n' (it is [A-Za-z0-9._-]+), so the fields cannot run into each other.
func (c *Checkpoint) SignedBytes() []byte {
	b := make([]byte, 0, len(checkpointContext)+len(c.Stream)+20+64+timeLen+4)
	b = append(b, checkpointContext...)
	b = append(b, c.Stream...)
	b = append(b, '\n')
	b = strconv.AppendUint(b, c.Seq, 10)
	b = append(b, '\n')
	b = hex.AppendEncode(b, c.Hash[:])
	b = append(b, '\n')
	b = appendTime(b, c.Time)
	return append(b, '\n')
}

// Sign sets c.Time to its recorded precision and c.Sig.
func (c *Checkpoint) Sign(key ed25519.PrivateKey) {
	c.Time = c.Time.UTC().Truncate(time.Microsecond)
	c.Sig = ed25519.Sign(key, c.SignedBytes())
}

// ErrCheckpointSignature: a checkpoint's signature does not verify with the
// pinned key.
var ErrCheckpointSignature = errors.New("audit: checkpoint signature invalid")

// Verify checks c's signature with pub.
func (c *Checkpoint) Verify(pub ed25519.PublicKey) error {
	if !validStream(c.Stream) || c.Seq == 0 || !validTime(c.Time) {
		return fmt.Errorf("%w: malformed checkpoint", ErrCheckpointSignature)
	}
	if len(pub) != ed25519.PublicKeySize || len(c.Sig) != ed25519.SignatureSize || !ed25519.Verify(pub, c.SignedBytes(), c.Sig) {
		return ErrCheckpointSignature
	}
	return nil
}

// AppendJSON appends c as the witness stores it, members in this order:
//
//	{"stream":"…","seq":N,"hash":"<hex>","time":"…","sig":"<base64url>"}
func (c *Checkpoint) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"stream":"`...)
	dst = append(dst, c.Stream...)
	dst = append(dst, `","seq":`...)
	dst = strconv.AppendUint(dst, c.Seq, 10)
	dst = append(dst, `,"hash":"`...)
	dst = hex.AppendEncode(dst, c.Hash[:])
	dst = append(dst, `","time":"`...)
	dst = appendTime(dst, c.Time)
	dst = append(dst, `","sig":"`...)
	dst = sigEncoding.AppendEncode(dst, c.Sig)
	return append(dst, `"}`...)
}

// ParseCheckpoint decodes what AppendJSON wrote, strictly. It does not
// verify the signature.
func ParseCheckpoint(data []byte) (Checkpoint, error) {
	var c Checkpoint
	p := parser{b: data}
	bad := func(what string) (Checkpoint, error) {
		return Checkpoint{}, fmt.Errorf("audit: not a checkpoint: byte %d: %s", p.i, what)
	}
	if !p.lit(`{"stream":`) {
		return bad(`expected {"stream":`)
	}
	s, ok := p.rawString()
	if !ok || !validStream(s) {
		return bad("bad stream")
	}
	c.Stream = string(s)
	if !p.lit(`,"seq":`) {
		return bad(`expected ,"seq":`)
	}
	if c.Seq, ok = p.uint(); !ok {
		return bad("bad seq")
	}
	if !p.lit(`,"hash":`) {
		return bad(`expected ,"hash":`)
	}
	if s, ok = p.rawString(); !ok || !decodeHex(c.Hash[:], s) {
		return bad("bad hash")
	}
	if !p.lit(`,"time":`) {
		return bad(`expected ,"time":`)
	}
	if s, ok = p.rawString(); ok {
		c.Time, ok = parseTime(s)
	}
	if !ok {
		return bad("bad time")
	}
	if !p.lit(`,"sig":`) {
		return bad(`expected ,"sig":`)
	}
	if s, ok = p.rawString(); !ok || !validSigText(string(s)) {
		return bad("bad sig")
	}
	c.Sig, _ = sigEncoding.DecodeString(string(s))
	if !p.lit("}") || !p.done() {
		return bad("expected } and the end")
	}
	return c, nil
}

// verifyCheckpointView checks a checkpoint record's signature without allocating
// more than the signed bytes.
func verifyCheckpointView(pub ed25519.PublicKey, v *view, buf []byte) ([]byte, bool) {
	var sig [64]byte
	if n, err := sigEncoding.Decode(sig[:], v.sig); err != nil || n != 64 {
		return buf, false
	}
	buf = append(buf[:0], checkpointContext...)
	buf = append(buf, v.stream...)
	buf = append(buf, '\n')
	buf = strconv.AppendUint(buf, v.seq-1, 10)
	buf = append(buf, '\n')
	buf = append(buf, v.prev...)
	buf = append(buf, '\n')
	buf = append(buf, v.time...)
	buf = append(buf, '\n')
	return buf, len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, buf, sig[:])
}

// recordHash is the hash of the checkpoint record that carries c in its
// stream's trail (the record at seq c.Seq+1, see Checkpoint): the prev of
// the record after it, which a verifier can check against a witness
// checkpoint when the trail begins right after that record.
func (c *Checkpoint) recordHash() [32]byte {
	rec := Record{Kind: KindCheckpoint, Sig: sigEncoding.EncodeToString(c.Sig)}
	var ts [timeLen]byte
	body := appendHead(nil, c.Seq+1, c.Stream, appendTime(ts[:0], c.Time), &c.Hash)
	return hashOf(c.Hash, appendFields(body, &rec))
}
