package issuer

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
)

// oauthError is an RFC 6749 §5.2 error response. Description is public:
// it never echoes unescaped input (it is JSON-encoded) and never holds a
// secret.
type oauthError struct {
	Status      int    `json:"-"`
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

func (e *oauthError) Error() string { return e.Code + ": " + e.Description }

func errInvalidRequest(desc string) *oauthError {
	return &oauthError{http.StatusBadRequest, "invalid_request", desc}
}
func errInvalidClient(desc string) *oauthError {
	return &oauthError{http.StatusUnauthorized, "invalid_client", desc}
}
func errInvalidGrant(desc string) *oauthError {
	return &oauthError{http.StatusBadRequest, "invalid_grant", desc}
}
func errInvalidScope(desc string) *oauthError {
	return &oauthError{http.StatusBadRequest, "invalid_scope", desc}
}
func errInvalidTarget(desc string) *oauthError {
	return &oauthError{http.StatusBadRequest, "invalid_target", desc}
}
func errUnauthorizedClient(desc string) *oauthError {
	return &oauthError{http.StatusBadRequest, "unauthorized_client", desc}
}
func errServer() *oauthError {
	return &oauthError{http.StatusInternalServerError, "server_error", "internal error"}
}

// writeOAuthError answers err as RFC 6749 §5.2 JSON; anything that is not
// an *oauthError is logged and answered as server_error.
func (s *Server) writeOAuthError(w http.ResponseWriter, err error) {
	var oe *oauthError
	if !errors.As(err, &oe) {
		s.log.Error("issuer: request failed", "error", err)
		oe = errServer()
	}
	h := w.Header()
	if oe.Status == http.StatusUnauthorized {
		// RFC 6749 §5.2: a 401 for client authentication carries a challenge.
		h.Set("WWW-Authenticate", `Basic realm="kavach", charset="UTF-8"`)
	}
	writeJSON(w, oe.Status, oe)
}

// writeJSON writes v with the headers every issuer response carries:
// never cached (RFC 6749 §5.1), never sniffed.
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// parseForm reads an application/x-www-form-urlencoded POST body, at most
// maxFormBody bytes. Parameters may not repeat (RFC 6749 §3.1), except the
// repeatable ones named (resource, RFC 8707 §2), and are not read from
// the query string.
func parseForm(w http.ResponseWriter, r *http.Request, repeatable ...string) (url.Values, error) {
	if r.Method != http.MethodPost {
		return nil, &oauthError{http.StatusMethodNotAllowed, "invalid_request", "use POST"}
	}
	body, err := readBody(w, r, "application/x-www-form-urlencoded", maxFormBody)
	if err != nil {
		return nil, err
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, errInvalidRequest("malformed form body")
	}
	for k, v := range form {
		if len(v) > 1 && !slices.Contains(repeatable, k) {
			return nil, errInvalidRequest("parameter " + quote(k) + " is repeated")
		}
	}
	return form, nil
}

// readBody reads a request body of the given media type, at most limit
// bytes (413 beyond).
func readBody(w http.ResponseWriter, r *http.Request, mediaType string, limit int64) ([]byte, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != mediaType {
		return nil, errInvalidRequest("the body must be " + mediaType)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &oauthError{http.StatusRequestEntityTooLarge, "invalid_request", "request body too large"}
		}
		return nil, errInvalidRequest("could not read the body")
	}
	return body, nil
}

// quote makes a short, printable rendering of client input for an error.
func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	b, _ := json.Marshal(s)
	return string(b)
}

// hashSecret is how secrets, refresh tokens, codes and session ids are
// stored: SHA-256 (they are 128+ random bits, so no salt or stretching).
func hashSecret(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}
