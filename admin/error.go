package admin

import (
	"fmt"
	"net/http"
)

// Error is an error answer of the admin listener: {"error": Code,
// "error_description": Description}, the shape of OAuth errors (RFC 6749
// §5.2), with the HTTP status beside it (not in the body). The issuer
// answers with it and the Client returns it, as x/oauth2's RetrieveError
// carries a token endpoint's error.
//
// Codes the listener uses: invalid_request, invalid_scope, invalid_target,
// not_found, conflict, inactive, too_large, unauthorized, unknown_issuer,
// method_not_allowed, unsupported_media_type, temporarily_unavailable,
// server_error. Description is for people; it never holds a secret and
// never echoes input unescaped.
type Error struct {
	Status      int    `json:"-"`
	Code        string `json:"error"`
	Description string `json:"error_description"`
}

func (e *Error) Error() string {
	status := fmt.Sprintf("%d %s", e.Status, http.StatusText(e.Status))
	switch {
	case e.Code == "":
		return status + ": " + e.Description
	case e.Description == "":
		return status + ": " + e.Code
	}
	return status + ": " + e.Code + ": " + e.Description
}
