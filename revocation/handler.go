package revocation

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kavachgate/kavach/internal/strictjson"
)

// HandlerOptions configure the admin handler.
type HandlerOptions struct {
	// MaxLifetime is the issuer's max_token_lifetime, used for the default
	// Until. Default (when not positive): DefaultMaxLifetime.
	MaxLifetime time.Duration

	// Leeway is the gateway's clock leeway, used for the default Until.
	// Default (when not positive): DefaultLeeway.
	Leeway time.Duration

	// Now is the clock for the default Until. Default: time.Now.
	Now func() time.Time

	// Logger receives the detail of Set errors, which the client sees only
	// as a 503. Default: errors are not logged.
	Logger *slog.Logger
}

// RevocationsPath is the one path the admin handler serves.
const RevocationsPath = "/v1/revocations"

// NewHandler returns the Caddy-free admin API of a revocation set. It does
// no authentication: mount it behind the admin listener's.
//
// POST /v1/revocations with a JSON object, Content-Type application/json:
//
//	{"id":"agt_x"}                                        id revocation
//	{"id":"agt_x","until":"2030-01-01T00:00:00Z"}         with an explicit Until
//	{"cutoff":"sub","id":"usr_a","before":"2026-05-01T12:00:00Z"}
//
// The members are those of Entry; times are RFC 3339; Before is truncated
// to whole seconds, which is how it is compared with iat. Without until the
// entry lives DefaultUntil(now, MaxLifetime, Leeway), counted for a cutoff
// from Before when that is later than now (no token it revokes can be valid
// any longer than that). An until already past is refused: it would revoke
// nothing.
//
// Checks run in this order, each answering with its status: path (404),
// method (405, Allow: POST), Content-Type (415), body size over
// MaxBodyBytes (413), JSON and entry (400), the set (503 when Revoke fails).
// Success is 200 {"revoked": <the entry as stored>}. Errors are
// {"error": code, "error_description": reason}; a reason names the field at
// fault and never contains the input.
func NewHandler(set Set, opts HandlerOptions) http.Handler {
	if opts.MaxLifetime <= 0 {
		opts.MaxLifetime = DefaultMaxLifetime
	}
	if opts.Leeway <= 0 {
		opts.Leeway = DefaultLeeway
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &handler{set: set, opts: opts}
}

type handler struct {
	set  Set
	opts HandlerOptions
}

var tooLarge = "body: must be at most " + strconv.Itoa(MaxBodyBytes) + " bytes"

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != RevocationsPath {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "method must be POST")
		return
	}
	if !isJSON(r.Header.Get("Content-Type")) {
		writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json")
		return
	}
	if r.ContentLength > MaxBodyBytes {
		writeError(w, http.StatusRequestEntityTooLarge, "invalid_request", tooLarge)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeError(w, http.StatusRequestEntityTooLarge, "invalid_request", tooLarge)
			return
		}
		writeError(w, http.StatusBadRequest, "invalid_request", "body: could not be read")
		return
	}
	e, fe := h.entry(body)
	if fe != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", fe.Error())
		return
	}
	if err := h.set.Revoke(r.Context(), e); err != nil {
		if fe, ok := errors.AsType[*FieldError](err); ok {
			writeError(w, http.StatusBadRequest, "invalid_request", fe.Error())
			return
		}
		if h.opts.Logger != nil {
			h.opts.Logger.LogAttrs(r.Context(), slog.LevelError, "revocation not stored",
				slog.String("error", err.Error()))
		}
		writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "the revocation could not be stored; retry")
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Revoked Entry `json:"revoked"`
	}{e})
}

// isJSON accepts application/json with no parameter but charset=utf-8.
func isJSON(ct string) bool {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return false
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return false
		}
	}
	return true
}

// entry decodes a request body into a valid Entry with its defaults.
func (h *handler) entry(body []byte) (Entry, *FieldError) {
	e, hasUntil, fe := decodeEntry(body)
	if fe != nil {
		return Entry{}, fe
	}
	now := h.opts.Now()
	if !hasUntil {
		from := now
		if e.Cutoff != "" && e.Before.After(from) {
			from = e.Before
		}
		e.Until = DefaultUntil(from, h.opts.MaxLifetime, h.opts.Leeway).Round(0).UTC()
		if e.Until.Year() > 9999 {
			// RFC 3339 has four-digit years; the response could not say it.
			return Entry{}, &FieldError{"before", "is too far in the future"}
		}
	} else if !e.Until.After(now) {
		return Entry{}, &FieldError{"until", "must be in the future"}
	}
	if err := e.Validate(); err != nil {
		return Entry{}, err.(*FieldError)
	}
	return e, nil
}

// entryFields are the JSON member names of Entry, in field order.
var entryFields = [...]string{"id", "cutoff", "before", "until"}

// decodeEntry reads one JSON object strictly: case-sensitive member names,
// no unknown, repeated or null member, no trailing data (encoding/json
// would accept "ID", a repeated "id", or ignore a misspelt "untl" and
// store a different revocation from the one the operator wrote).
func decodeEntry(body []byte) (e Entry, hasUntil bool, fe *FieldError) {
	r := strictjson.NewReader(body)
	if r.Peek() != '{' {
		return Entry{}, false, &FieldError{"body", "must be a JSON object"}
	}
	var seen [len(entryFields)]bool
	err := r.Object(func(name []byte) error {
		i := -1
		for j, f := range entryFields {
			if string(name) == f {
				i = j
			}
		}
		if i < 0 {
			return &FieldError{"body", `unknown member (expected "id", "cutoff", "before" or "until")`}
		}
		field := entryFields[i]
		if seen[i] {
			return &FieldError{field, "appears twice"}
		}
		seen[i] = true
		if r.Peek() != '"' {
			return &FieldError{field, "must be a string"}
		}
		s, err := r.String()
		if err != nil {
			return err
		}
		switch i {
		case 0:
			e.ID = s
		case 1:
			e.Cutoff = Kind(s)
		case 2, 3:
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				return &FieldError{field, "must be an RFC 3339 time"}
			}
			if i == 2 {
				e.Before = t.Truncate(time.Second).UTC()
			} else {
				e.Until = t.UTC()
				hasUntil = true
			}
		}
		return nil
	})
	if err != nil {
		if fe, ok := errors.AsType[*FieldError](err); ok {
			return Entry{}, false, fe
		}
		return Entry{}, false, &FieldError{"body", "malformed JSON"}
	}
	if !r.End() {
		return Entry{}, false, &FieldError{"body", "trailing data after the object"}
	}
	if !seen[0] {
		return Entry{}, false, &FieldError{"id", "is required"}
	}
	return e, hasUntil, nil
}

func writeError(w http.ResponseWriter, status int, code, description string) {
	writeJSON(w, status, struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}{code, description})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Unreachable: every time in an entry has a four-digit year.
		status, body = http.StatusInternalServerError, []byte(`{"error":"server_error"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
