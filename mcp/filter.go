package mcp

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"unicode/utf8"
)

// FilterConfig configures a ToolsFilter.
type FilterConfig struct {
	// Format of the upstream body, from PrepareToolsListResponse.
	Format Format
	// Request is the id of the tools/list request the response answers (a
	// POST). Then a response with another id is an error (the stream of a
	// POST answers that one request; batches are refused), and the
	// response with this id must carry result.tools or an error.
	//
	// Zero filters a stream that may replay earlier responses: a GET
	// stream resumed with Last-Event-ID (2025-11-25 "Resumability and
	// Redelivery") can redeliver a tools/list response the server stored
	// unfiltered. Then every response whose result has a "tools" member is
	// filtered (no other MCP result has one at top level), and every other
	// response passes. Every event of such a stream is bounded by MaxSize
	// too, so replaying an event larger than that fails closed.
	Request ID
	// Rules and Scopes are the route's rules and the token's scopes: a tool
	// stays in the list when Decide allows a tools/call of it.
	Rules  *Rules
	Scopes []string
	// MaxSize bounds the JSON body, or one SSE event; over it the filter
	// fails closed. Default DefaultMaxResponse.
	MaxSize int
}

// ToolsFilter removes from a tools/list response the tools the token may
// not call (DESIGN.md §4.1), deciding each with Decide as a tools/call of
// that tool. It is an io.WriteCloser: the caller writes the upstream body
// into it (as Caddy's reverse_proxy writes into a ResponseWriter) and
// closes it at the end of the body; it writes the filtered body to dst.
//
// It fails closed: anything it cannot parse, an event or body over
// MaxSize, a response for another request, a tools/list result without a
// tool list, or a tool without a string name is an ErrUpstream error, after
// which it writes nothing more. The gateway then answers 502 if nothing
// was sent yet, else aborts the stream.
//
// JSON (FormatJSON): the body is buffered (up to MaxSize) and written,
// filtered, by Close. The caller should hold the response header until
// Close returns, so that an error can still become a 502.
//
// SSE (FormatSSE, WHATWG HTML "Server-sent events" §9.2.6): the stream is
// cut into events (lines end in CRLF, LF or CR; an event ends at a blank
// line), and each event is written as soon as its blank line arrives, then
// dst is flushed (FlushError() error or http.Flusher), so streaming is not
// delayed beyond an event. Only events holding a JSON-RPC response in
// their data are inspected; an event whose data is a tools/list result is
// rewritten with one data line per line of the filtered JSON, its other
// fields (id, event, retry, comments) kept in place. Every other event,
// comment and blank line is written unchanged, byte for byte. Outside
// responses the filter still parses every event's data as a JSON-RPC
// message and refuses what it cannot parse. An event cut off by the end of
// the stream is processed as if it were complete.
//
// Filtering keeps every byte of the response outside the "tools" array;
// inside it, the kept tools' own bytes are joined with ','. A response in
// which every tool is allowed is written unchanged.
type ToolsFilter struct {
	dst io.Writer
	cfg FilterConfig
	w   walker
	err error

	buf       []byte // JSON: the body so far; SSE: the current event's bytes
	lineStart int    // SSE: where the current line starts in buf
	skipLF    bool   // SSE: the last byte seen was a CR ending a line
	started   bool   // SSE: the first line of the stream has ended
	firstBOM  bool   // SSE: the stream starts with a byte order mark
	events    int    // SSE: events dispatched so far
	closed    bool

	data  []byte     // SSE: the current event's data field
	names []toolSpan // the tools of the response being filtered
	out   []byte     // the filtered message
}

type toolSpan struct {
	start, end int
	name       string
}

// NewToolsFilter returns a filter writing to dst.
func NewToolsFilter(dst io.Writer, cfg FilterConfig) *ToolsFilter {
	if cfg.MaxSize <= 0 {
		cfg.MaxSize = DefaultMaxResponse
	}
	return &ToolsFilter{dst: dst, cfg: cfg}
}

// FilterTools copies src to dst through a ToolsFilter: a convenience for
// callers that hold the upstream body as a reader.
func FilterTools(dst io.Writer, src io.Reader, cfg FilterConfig) error {
	f := NewToolsFilter(dst, cfg)
	if _, err := io.Copy(f, src); err != nil {
		return err
	}
	return f.Close()
}

// Write consumes upstream body bytes. It returns len(p) or the filter's
// error (the first one, for every later call too).
func (f *ToolsFilter) Write(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	if f.closed {
		return 0, upstream("write after close")
	}
	switch f.cfg.Format {
	case FormatJSON:
		if len(f.buf)+len(p) > f.cfg.MaxSize {
			return 0, f.fail(upstream("tools/list response over " + strconv.Itoa(f.cfg.MaxSize) + " bytes"))
		}
		f.buf = append(f.buf, p...)
	case FormatSSE:
		if err := f.writeSSE(p); err != nil {
			return 0, f.fail(err)
		}
	default:
		return 0, f.fail(upstream("no format to filter"))
	}
	return len(p), nil
}

// Close ends the body: JSON is filtered and written now; an SSE event cut
// off by the end of the stream is processed.
func (f *ToolsFilter) Close() error {
	if f.err != nil {
		return f.err
	}
	if f.closed {
		return nil
	}
	f.closed = true
	var err error
	switch f.cfg.Format {
	case FormatJSON:
		err = f.closeJSON()
	case FormatSSE:
		if !f.started && bytes.HasPrefix(f.buf, bom) {
			f.firstBOM = true
		}
		if len(f.buf) > 0 {
			err = f.dispatch(f.buf)
			f.buf = f.buf[:0]
		}
		f.flush()
	}
	if err != nil {
		return f.fail(err)
	}
	return nil
}

func (f *ToolsFilter) fail(err error) error {
	f.err = err
	f.buf, f.out = nil, nil
	return err
}

func (f *ToolsFilter) closeJSON() error {
	out, _, isResponse, err := f.filterMessage(f.buf)
	if err != nil {
		return err
	}
	if !isResponse {
		return upstream("the body is not a JSON-RPC response")
	}
	_, err = f.dst.Write(out)
	return err
}

// writeSSE cuts p into lines and dispatches each event at its blank line.
func (f *ToolsFilter) writeSSE(p []byte) error {
	wrote := false
	for len(p) > 0 {
		if f.skipLF {
			f.skipLF = false
			if p[0] == '\n' {
				// The second half of a CRLF whose CR ended a line already.
				p = p[1:]
				if len(f.buf) == 0 {
					// That line was the blank line of an event already
					// written: the LF follows it.
					if _, err := f.dst.Write([]byte{'\n'}); err != nil {
						return err
					}
					wrote = true
				} else {
					f.buf = append(f.buf, '\n')
					f.lineStart = len(f.buf)
				}
				continue
			}
		}
		i := bytes.IndexAny(p, "\r\n")
		if i < 0 {
			if len(f.buf)+len(p) > f.cfg.MaxSize {
				return upstream("SSE event over " + strconv.Itoa(f.cfg.MaxSize) + " bytes")
			}
			f.buf = append(f.buf, p...)
			break
		}
		if len(f.buf)+i+1 > f.cfg.MaxSize {
			return upstream("SSE event over " + strconv.Itoa(f.cfg.MaxSize) + " bytes")
		}
		f.buf = append(f.buf, p[:i+1]...)
		f.skipLF = p[i] == '\r'
		p = p[i+1:]
		line := f.buf[f.lineStart : len(f.buf)-1]
		if !f.started {
			// The stream's first line: a leading byte order mark is not
			// part of it (§9.2.6 "one leading U+FEFF … is ignored").
			f.started = true
			if bytes.HasPrefix(line, bom) {
				f.firstBOM = true
				line = line[len(bom):]
			}
		}
		if len(line) > 0 {
			f.lineStart = len(f.buf)
			continue
		}
		// A blank line: the event ends here.
		if err := f.dispatch(f.buf); err != nil {
			return err
		}
		wrote = true
		f.buf = f.buf[:0]
		f.lineStart = 0
	}
	if wrote {
		f.flush()
	}
	return nil
}

var bom = []byte("\xEF\xBB\xBF")

// flush pushes what was written to the client, when dst can.
func (f *ToolsFilter) flush() {
	switch d := f.dst.(type) {
	case interface{ FlushError() error }:
		_ = d.FlushError()
	case http.Flusher:
		d.Flush()
	}
}

// dispatch writes one event block (its lines and the blank line ending
// it, if any), filtered when it holds a tools/list result.
func (f *ToolsFilter) dispatch(block []byte) error {
	lines := block
	if f.events == 0 && f.firstBOM {
		lines = lines[len(bom):]
	}
	f.events++
	// Collect the data field (§9.2.6: each "data" line's value plus LF;
	// the last LF removed).
	data := f.data[:0]
	dataLines := 0
	for rest := lines; len(rest) > 0; {
		line, _, next := cutLine(rest)
		rest = next
		if len(line) == 0 || line[0] == ':' {
			continue
		}
		name, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			name, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		if string(name) != "data" {
			continue
		}
		if dataLines > 0 {
			data = append(data, '\n')
		}
		data = append(data, value...)
		dataLines++
	}
	f.data = data
	if len(data) == 0 {
		// No data, or empty data (a priming event): clients dispatch
		// nothing.
		_, err := f.dst.Write(block)
		return err
	}
	out, changed, _, err := f.filterMessage(data)
	if err != nil {
		return err
	}
	if !changed {
		_, err := f.dst.Write(block)
		return err
	}
	// Rewrite: the filtered JSON in place of the first data line, the other
	// data lines dropped, every other line kept.
	var b bytes.Buffer
	b.Grow(len(block) + 16)
	if f.events == 1 && f.firstBOM {
		b.Write(bom)
	}
	first := true
	for rest := lines; len(rest) > 0; {
		line, term, next := cutLine(rest)
		rest = next
		if !isDataLine(line) {
			b.Write(line)
			b.Write(term)
			continue
		}
		if !first {
			continue
		}
		first = false
		for piece := range bytes.SplitSeq(out, []byte{'\n'}) {
			b.WriteString("data: ")
			b.Write(piece)
			b.WriteByte('\n')
		}
	}
	_, err = f.dst.Write(b.Bytes())
	return err
}

// isDataLine reports whether an SSE line is a "data" field.
func isDataLine(line []byte) bool {
	return bytes.HasPrefix(line, []byte("data")) && (len(line) == 4 || line[4] == ':')
}

// cutLine splits off the first line of b and its terminator (CRLF, LF, CR
// or none at the end).
func cutLine(b []byte) (line, term, rest []byte) {
	i := bytes.IndexAny(b, "\r\n")
	if i < 0 {
		return b, nil, nil
	}
	n := 1
	if b[i] == '\r' && i+1 < len(b) && b[i+1] == '\n' {
		n = 2
	}
	return b[:i], b[i : i+n], b[i+n:]
}

// filterMessage parses one JSON-RPC message from upstream and returns it
// with the tools the token may not call removed (data itself, changed
// false, when nothing is removed), and whether it is a response.
func (f *ToolsFilter) filterMessage(data []byte) (out []byte, changed, isResponse bool, err error) {
	if !utf8.Valid(data) {
		return nil, false, false, upstream("not UTF-8")
	}
	w := &f.w
	w.reset(data)
	defer w.reset(nil)
	msg, err := w.serverMessage(&f.names)
	if err != nil {
		return nil, false, false, upstream(err.Error())
	}
	if msg.hasMethod {
		// A server request or notification on the stream.
		return data, false, false, nil
	}
	if !f.cfg.Request.IsZero() {
		switch {
		case msg.id != f.cfg.Request:
			return nil, false, true, upstream("a response for id " + excerpt(msg.id.String()) + ", not " + excerpt(f.cfg.Request.String()))
		case msg.hasError:
			return data, false, true, nil
		case msg.toolsEnd == 0:
			return nil, false, true, upstream("tools/list result without a tools array")
		}
	} else if msg.toolsEnd == 0 {
		return data, false, true, nil
	}
	// Keep what Decide allows as a tools/call of the tool.
	kept := f.out[:0]
	n := 0
	for _, t := range f.names {
		call := Message{Kind: KindRequest, Method: MethodToolsCall, Name: t.name}
		if ok, _ := Decide(f.cfg.Rules, f.cfg.Scopes, &call); !ok {
			continue
		}
		if n == 0 {
			kept = append(kept, data[:msg.toolsStart]...)
			kept = append(kept, '[')
		} else {
			kept = append(kept, ',')
		}
		kept = append(kept, data[t.start:t.end]...)
		n++
	}
	if n == len(f.names) {
		return data, false, true, nil
	}
	if n == 0 {
		kept = append(kept, data[:msg.toolsStart]...)
		kept = append(kept, '[')
	}
	kept = append(kept, ']')
	kept = append(kept, data[msg.toolsEnd:]...)
	f.out = kept
	return kept, true, true, nil
}

// serverMsg is what the filter needs of a message from upstream.
type serverMsg struct {
	hasMethod, hasError bool
	id                  ID
	// toolsStart and toolsEnd delimit result.tools (toolsEnd 0: none).
	toolsStart, toolsEnd int
}

// serverMessage reads a JSON-RPC message from upstream with the walker's
// strict rules. Member names are case-sensitive, and a case variant of a
// name the filter or a client interprets ("Result", "Tools", "Name") is an
// error, as is any shape JSON-RPC 2.0 and MCP do not allow; other members
// are kept as they are. It records result.tools and each tool's span and
// name in names.
func (w *walker) serverMessage(names *[]toolSpan) (serverMsg, error) {
	var msg serverMsg
	*names = (*names)[:0]
	if w.r.Peek() != '{' {
		return msg, invalid(pubSyntax, "not a JSON object")
	}
	seen := 0
	for key, err := range w.members(1) {
		if err != nil {
			return msg, err
		}
		bit := topMember(key)
		if bit == 0 {
			for _, n := range [...]string{"jsonrpc", "id", "method", "params", "result", "error"} {
				if foldEqual(key, n) {
					return msg, invalid(pubSyntax, "case variant "+excerpt(string(key)))
				}
			}
			if err := w.value(1); err != nil {
				return msg, err
			}
			continue
		}
		seen |= bit
		switch bit {
		case memID:
			if msg.id, err = w.id(); err != nil {
				return msg, err
			}
		case memResult:
			if w.r.Peek() != '{' {
				return msg, invalid(pubSyntax, "result is not an object")
			}
			if err := w.result(&msg, names); err != nil {
				return msg, err
			}
		case memError, memParams:
			if w.r.Peek() != '{' {
				return msg, invalid(pubSyntax, "error or params is not an object")
			}
			fallthrough
		default:
			if err := w.value(1); err != nil {
				return msg, err
			}
		}
	}
	if !w.r.End() {
		return msg, invalid(pubSyntax, "data after the JSON object")
	}
	msg.hasMethod = seen&memMethod != 0
	msg.hasError = seen&memError != 0
	switch {
	case msg.hasMethod && seen&(memResult|memError) == 0:
	case !msg.hasMethod && seen&memID != 0 && (seen&(memResult|memError) == memResult || seen&(memResult|memError) == memError):
	default:
		return msg, invalid(pubSyntax, "neither a request, a notification nor a response")
	}
	return msg, nil
}

// result reads a result object, recording its "tools" array.
func (w *walker) result(msg *serverMsg, names *[]toolSpan) error {
	for key, err := range w.members(2) {
		if err != nil {
			return err
		}
		switch {
		case string(key) == "tools":
			if w.r.Peek() != '[' {
				return invalid(pubSyntax, "result.tools is not an array")
			}
			msg.toolsStart = w.r.Offset()
			if err := w.tools(names); err != nil {
				return err
			}
			msg.toolsEnd = w.r.Offset()
		case foldEqual(key, "tools"):
			return invalid(pubSyntax, "case variant "+excerpt(string(key)))
		default:
			if err := w.value(2); err != nil {
				return err
			}
		}
	}
	return nil
}

// tools reads the tools array: objects, each with a string "name".
func (w *walker) tools(names *[]toolSpan) error {
	for err := range w.elements(3) {
		if err != nil {
			return err
		}
		if w.r.Peek() != '{' {
			return invalid(pubSyntax, "a tool is not an object")
		}
		start := w.r.Offset()
		name, err := w.tool()
		if err != nil {
			return err
		}
		*names = append(*names, toolSpan{start: start, end: w.r.Offset(), name: name})
	}
	return nil
}

// tool reads one tool object and returns its name.
func (w *walker) tool() (string, error) {
	var tok []byte
	for key, err := range w.members(4) {
		if err != nil {
			return "", err
		}
		switch {
		case string(key) == "name":
			if tok, err = w.stringToken(); err != nil {
				return "", invalid(pubSyntax, "a tool name is not a string")
			}
		case foldEqual(key, "name"):
			return "", invalid(pubSyntax, "case variant "+excerpt(string(key)))
		default:
			if err := w.value(4); err != nil {
				return "", err
			}
		}
	}
	if tok == nil {
		return "", invalid(pubSyntax, "a tool without a name")
	}
	return unquote(tok)
}
