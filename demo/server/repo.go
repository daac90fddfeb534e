package main

import (
	"errors"
	"path"
	"slices"
	"strings"
	"sync"
	"time"
)

// The demo repository: one small Go project with one open pull request,
// kept in memory (a restart starts over).

const (
	repoName = "demo"
	prNumber = 1
	prTitle  = "ratelimit: refill the bucket by elapsed time, not by calls"
)

// prDiff is the unified diff of pull request #1 against main; the files
// below are the pull request's head.
const prDiff = `diff --git a/ratelimit/bucket.go b/ratelimit/bucket.go
index cc95fc2..3b9b9ad 100644
--- a/ratelimit/bucket.go
+++ b/ratelimit/bucket.go
@@ -1,25 +1,34 @@
 // Package ratelimit is a token bucket.
 package ratelimit
 
-import "sync"
+import (
+	"sync"
+	"time"
+)
 
 // Bucket allows rate requests per second on average, and bursts of up to
 // capacity.
 type Bucket struct {
 	mu       sync.Mutex
 	capacity int
-	tokens   int
+	rate     float64 // tokens per second
+	tokens   float64
+	last     time.Time
+	now      func() time.Time
 }
 
 // Allow reports whether one more request may pass now.
 func (b *Bucket) Allow() bool {
 	b.mu.Lock()
 	defer b.mu.Unlock()
-	b.tokens++
-	if b.tokens > b.capacity {
-		b.tokens = b.capacity
+	now := b.now()
+	elapsed := now.Sub(b.last).Seconds()
+	b.last = now
+	b.tokens += elapsed * b.rate
+	if b.tokens > float64(b.capacity) {
+		b.tokens = float64(b.capacity)
 	}
-	if b.tokens == 0 {
+	if b.tokens < 1 {
 		return false
 	}
 	b.tokens--
@@ -28,5 +37,5 @@ func (b *Bucket) Allow() bool {
 
 // New returns a full bucket.
 func New(capacity int, rate float64) *Bucket {
-	return &Bucket{capacity: capacity, tokens: capacity}
+	return &Bucket{capacity: capacity, rate: rate, tokens: float64(capacity), last: time.Now(), now: time.Now}
 }
`

var initialFiles = map[string]string{
	"README.md": `# demo

A token-bucket rate limiter, used by the Kavach demo as the repository a
code-review agent works on. Pull request #1 fixes the refill.
`,
	"go.mod": "module example.com/demo\n\ngo 1.26\n",
	"ratelimit/bucket.go": `// Package ratelimit is a token bucket.
package ratelimit

import (
	"sync"
	"time"
)

// Bucket allows rate requests per second on average, and bursts of up to
// capacity.
type Bucket struct {
	mu       sync.Mutex
	capacity int
	rate     float64 // tokens per second
	tokens   float64
	last     time.Time
	now      func() time.Time
}

// Allow reports whether one more request may pass now.
func (b *Bucket) Allow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	elapsed := now.Sub(b.last).Seconds()
	b.last = now
	b.tokens += elapsed * b.rate
	if b.tokens > float64(b.capacity) {
		b.tokens = float64(b.capacity)
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// New returns a full bucket.
func New(capacity int, rate float64) *Bucket {
	return &Bucket{capacity: capacity, rate: rate, tokens: float64(capacity), last: time.Now(), now: time.Now}
}
`,
	"ratelimit/bucket_test.go": `package ratelimit

import "testing"

func TestBurst(t *testing.T) {
	b := New(2, 1)
	if !b.Allow() || !b.Allow() {
		t.Fatal("a full bucket allows its capacity")
	}
	if b.Allow() {
		t.Fatal("an empty bucket refuses")
	}
}
`,
}

// Limits keep the demo's memory bounded whoever calls it.
const (
	maxFileSize   = 64 << 10
	maxFiles      = 200
	maxComments   = 1000
	maxCommentLen = 8 << 10
)

var (
	errNotFound = errors.New("no such file")
	errBadPath  = errors.New("path must be relative, clean and without . or .. segments")
	errTooLarge = errors.New("too large")
	errFull     = errors.New("the demo repository is full")
	errEmpty    = errors.New("the comment body is empty")
)

// Comment is one review comment on the pull request.
type Comment struct {
	ID     int       `json:"id"`
	Body   string    `json:"body"`
	Path   string    `json:"path,omitempty"`
	Line   int       `json:"line,omitempty"`
	Author Caller    `json:"author"`
	Time   time.Time `json:"time"`
}

// Repo is the in-memory repository shared by the MCP tools and the REST API.
type Repo struct {
	mu       sync.Mutex
	files    map[string]string
	comments []Comment
}

// NewRepo returns the repository at the pull request's head.
func NewRepo() *Repo {
	r := &Repo{files: map[string]string{}}
	for p, c := range initialFiles {
		r.files[p] = c
	}
	return r
}

// cleanPath accepts "a/b.go" and "/a/b.go"; refuses anything that cleans
// to something else.
func cleanPath(p string) (string, error) {
	p = strings.TrimPrefix(p, "/")
	if p == "" || strings.Contains(p, `\`) || path.Clean(p) != p || p == "." || strings.HasPrefix(p, "../") || p == ".." {
		return "", errBadPath
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return "", errBadPath
		}
	}
	return p, nil
}

// Read returns a file's content.
func (r *Repo) Read(p string) (string, string, error) {
	p, err := cleanPath(p)
	if err != nil {
		return "", "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.files[p]
	if !ok {
		return p, "", errNotFound
	}
	return p, c, nil
}

// Write creates or replaces a file and reports whether it existed.
func (r *Repo) Write(p, content string) (string, bool, error) {
	p, err := cleanPath(p)
	if err != nil {
		return "", false, err
	}
	if len(content) > maxFileSize {
		return p, false, errTooLarge
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	_, existed := r.files[p]
	if !existed && len(r.files) >= maxFiles {
		return p, false, errFull
	}
	r.files[p] = content
	return p, existed, nil
}

// Files lists the repository's paths, sorted.
func (r *Repo) Files() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.files))
	for p := range r.files {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// AddComment appends a review comment.
func (r *Repo) AddComment(c Comment) (Comment, error) {
	if strings.TrimSpace(c.Body) == "" {
		return c, errEmpty
	}
	if len(c.Body) > maxCommentLen {
		return c, errTooLarge
	}
	if c.Path != "" {
		p, err := cleanPath(c.Path)
		if err != nil {
			return c, err
		}
		c.Path = p
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.comments) >= maxComments {
		return c, errFull
	}
	c.ID = len(r.comments) + 1
	c.Time = time.Now().UTC().Truncate(time.Second)
	r.comments = append(r.comments, c)
	return c, nil
}

// Comments returns the review comments, oldest first.
func (r *Repo) Comments() []Comment {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.comments)
}
