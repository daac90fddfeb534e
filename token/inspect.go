package token

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
)

// Inspection is a token decoded without verification: for operators reading
// a token, never for a decision.
type Inspection struct {
	Header   json.RawMessage `json:"header"`
	Claims   json.RawMessage `json:"claims"`
	Verified bool            `json:"verified"`
}

// Inspect decodes the header and payload of a compact JWS without checking
// anything: its result must not be trusted.
func Inspect(token string) (*Inspection, error) {
	token = strings.TrimSpace(token)
	if len(token) > MaxTokenSize {
		return nil, ErrTooLarge
	}
	if _, _, ok := compactSplit(token); !ok {
		return nil, errors.New("not a compact JWS (header.payload.signature)")
	}
	parts := strings.Split(token, ".")
	out := &Inspection{}
	for i, dst := range []*json.RawMessage{&out.Header, &out.Claims} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			return nil, errors.New("segment is not base64url")
		}
		if !json.Valid(raw) {
			return nil, errors.New("segment is not JSON")
		}
		*dst = raw
	}
	return out, nil
}
