package audit_test

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/kavachgate/kavach/audit"
	"github.com/kavachgate/kavach/audit/sinktest"
)

func TestFileSinkConformance(t *testing.T) {
	t.Parallel()
	for name, max := range map[string]int64{"one file": -1, "rotating": 4 << 10} {
		t.Run(name, func(t *testing.T) {
			sinktest.Run(t, func(t *testing.T) sinktest.Harness {
				path := filepath.Join(t.TempDir(), "audit.jsonl")
				return sinktest.Harness{
					Open: func() (audit.Sink, error) { return audit.OpenFile(path, audit.FileOptions{MaxSize: max}) },
					ReadBack: func() ([]byte, error) {
						files, err := audit.Files(path)
						if err != nil {
							return nil, err
						}
						var all []byte
						for _, f := range files {
							b, err := os.ReadFile(f)
							if err != nil {
								return nil, err
							}
							all = append(all, b...)
						}
						return all, nil
					},
					Persistent: true,
				}
			})
		})
	}
}

// lockedBuffer is what a log shipper reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}

func TestStdoutSinkConformance(t *testing.T) {
	t.Parallel()
	sinktest.Run(t, func(t *testing.T) sinktest.Harness {
		var buf lockedBuffer
		return sinktest.Harness{
			Open:     func() (audit.Sink, error) { return audit.NewStdoutSink(&buf), nil },
			ReadBack: func() ([]byte, error) { return buf.bytes(), nil },
		}
	})
}
